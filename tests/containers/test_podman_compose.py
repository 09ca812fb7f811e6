"""compose.yaml under podman-compose 1.6 as well (the tier installs it: SEPSIS_PODMAN_COMPOSE):
the same built images come up healthy and answer through the gateway with a key."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sepsis_shared.patient import FLAT_EXAMPLE

ROOT = Path(__file__).resolve().parents[2]


def test_the_stack_runs_under_podman_compose(engine: Any) -> None:
    command = os.environ.get("SEPSIS_PODMAN_COMPOSE")
    if not command:
        if os.environ.get("SEPSIS_CONTAINER_TIER") == "1":
            pytest.fail("the container tier sets SEPSIS_PODMAN_COMPOSE")
        pytest.skip("SEPSIS_PODMAN_COMPOSE names no podman-compose here")
    project = f"sepsis-pc-{secrets.token_hex(4)}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    key = secrets.token_urlsafe(32)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST",)},
        "API_KEY": key,
        "ADMIN_API_KEYS": secrets.token_urlsafe(32),
        "SERVICE_TOKEN": secrets.token_urlsafe(32),
        "LLM_PROVIDER": "offline",
        "GATEWAY_PORT": f"127.0.0.1:{port}",
    }
    base = [command, "-p", project, "-f", str(ROOT / "compose.yaml")]

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        deadline = time.monotonic() + 120
        health: dict[str, str | None] = {}
        while time.monotonic() < deadline:
            found = engine.client.containers.list(
                all=True, filters={"label": f"com.docker.compose.project={project}"}
            )
            health = {c.name: (c.attrs["State"].get("Health") or {}).get("Status") for c in found}
            if len(health) == 4 and set(health.values()) == {"healthy"}:
                break
            time.sleep(1)
        assert len(health) == 4, health
        assert set(health.values()) == {"healthy"}, health
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "healthy"
        answer = httpx.post(
            f"{url}/classify", json=FLAT_EXAMPLE, headers={"X-API-Key": key}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        refused = httpx.post(f"{url}/classify", json=FLAT_EXAMPLE, timeout=10)
        assert refused.status_code == 401
    finally:
        compose("down", "-t", "30")
