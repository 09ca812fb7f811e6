"""Each image as built: its user, size, exposed port, healthcheck and installed packages.

The figures (size, and the build time the tier measured) are printed in the test report.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# service -> (port, probe path, distributions it must carry, distributions it must not)
IMAGES = {
    "gateway": (
        8000,
        "/health",
        {"aiohttp", "uvicorn", "sepsis-gateway"},
        {"onnxruntime", "openai"},
    ),
    "ml-service": (8001, "/readyz", {"onnxruntime", "numpy", "sepsis-ml"}, {"openai", "aiohttp"}),
    "genai-service": (8002, "/readyz", {"openai", "redis", "sepsis-genai"}, {"onnxruntime"}),
}
# never in a runtime image: the build tool, the dev tools, the training stack
NEVER = {
    "pip",
    "uv",
    "pytest",
    "ruff",
    "mypy",
    "pandas",
    "lightgbm",
    "scikit-learn",
    "testcontainers",
}
MAX_IMAGE_MB = 600  # base image (about 220 MB here) plus the service's own stack
_LIST_DISTS = (
    "import importlib.metadata as m, json, os, shutil; "
    "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), "
    "'dists': sorted({d.metadata['Name'].lower() for d in m.distributions()}), "
    "'curl': bool(shutil.which('curl') or shutil.which('wget'))}))"
)


def _image(engine: Any, service: str) -> dict[str, Any]:
    attrs: dict[str, Any] = engine.client.images.get(f"sepsis/{service}:local").attrs
    return attrs


def _build_time(service: str) -> str:
    path = os.environ.get("SEPSIS_BUILD_TIMES")
    if not path or not Path(path).exists():
        return "not measured"
    times = dict(line.split("\t") for line in Path(path).read_text().split("\n") if line)
    return f"{times.get(service, '?').strip()} s"


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_image_config_user_port_healthcheck_size(engine: Any, service: str) -> None:
    port, probe, _, _ = IMAGES[service]
    attrs = _image(engine, service)
    config = attrs["Config"]
    assert config["User"] == "10001:10001"
    assert set(config["ExposedPorts"]) == {f"{port}/tcp"}
    # Kept only in the docker image format (the tier builds with --format docker). Read from a
    # container made from the image: what every engine hands a container, whatever its image
    # inspect shows (podman's Docker-compatible API leaves it out of the image's).
    created = engine.client.containers.create(f"sepsis/{service}:local", ["true"])
    try:
        health = created.attrs["Config"].get("Healthcheck") or {}
    finally:
        created.remove()
    assert health.get("Test"), "HEALTHCHECK lost (an OCI-format build drops it)"
    assert f"http://127.0.0.1:{port}{probe}" in " ".join(health["Test"])
    assert health["Interval"] == 10 * 10**9
    assert config["Cmd"][0] == "uvicorn"
    size_mb = attrs["Size"] / 1e6
    print(f"{service}: {size_mb:.0f} MB, built in {_build_time(service)}")  # noqa: T201
    assert size_mb < MAX_IMAGE_MB


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_image_holds_only_its_own_stack_and_runs_unprivileged(engine: Any, service: str) -> None:
    _, _, needed, foreign = IMAGES[service]
    output = engine.client.containers.run(
        f"sepsis/{service}:local", ["python", "-c", _LIST_DISTS], remove=True
    )
    found = json.loads(output)
    assert (found["uid"], found["gid"]) == (10001, 10001)
    dists = set(found["dists"])
    assert needed <= dists, needed - dists
    assert not (dists & foreign), dists & foreign
    assert not (dists & NEVER), dists & NEVER
    assert "sepsis-shared" in dists
    assert not found["curl"], "the probe needs no curl and the image carries none"
    print(f"{service}: {len(dists)} distributions")  # noqa: T201


@pytest.mark.parametrize(
    ("service", "env", "named"),
    [
        # what an older compose implementation passed on for `API_KEYS: ${API_KEYS:-}`
        ("gateway", {"API_KEYS": "${API_KEYS:-}"}, "API_KEYS"),
        ("gateway", {"ADMIN_API_KEYS": "changeme"}, "ADMIN_API_KEYS"),
        ("ml-service", {"SERVICE_TOKEN": "sepsis_secret_key_2024"}, "SERVICE_TOKEN"),
        ("genai-service", {"SERVICE_TOKEN": "short"}, "SERVICE_TOKEN"),
    ],
)
def test_the_image_refuses_to_start_on_a_placeholder_secret(
    engine: Any, service: str, env: dict[str, str], named: str
) -> None:
    good = {
        "API_KEY": secrets.token_urlsafe(32),
        "ADMIN_API_KEYS": secrets.token_urlsafe(32),
        "SERVICE_TOKEN": secrets.token_urlsafe(32),
    }
    container = engine.client.containers.run(
        f"sepsis/{service}:local", environment={**good, **env}, detach=True
    )
    try:
        status = container.wait(timeout=60)
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
    assert status["StatusCode"] != 0, logs[-2000:]
    assert named in logs
    for value in env.values():
        # (the message's own examples, in backquotes, aside)
        shown = logs.replace("`${...}`", "").replace("`changeme`", "")
        assert value not in shown, "the refused value is echoed"
