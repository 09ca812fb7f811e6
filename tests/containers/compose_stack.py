"""The compose stack driven with testcontainers: the handle of `STACK=compose` end-to-end runs
and of the container tier's own tests (`scripts/test-containers`).

testcontainers' `DockerCompose` runs `<docker> compose ...` against whatever Docker-compatible
engine `DOCKER_HOST` names: Docker, or podman's socket (`podman system service`), which is
what the tier starts on these machines. The images are built before (the tier builds them with
`podman build --format docker`); compose only runs them. Where neither the engine nor a compose
command can be found, the caller is told why (`ComposeUnavailable`) so the tests skip saying so.

Environment read here:
    DOCKER_HOST             the engine (default: Docker's own socket)
    SEPSIS_COMPOSE_COMMAND  a `docker`-like command whose `compose` subcommand is Compose v2
                            (default: `docker`)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from testcontainers.compose import ComposeContainer, DockerCompose
from testcontainers.core.docker_client import DockerClient

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("redis", "ml-service", "genai-service", "gateway")
# What the stack under test is handed through compose's env file (and nothing else of the
# caller's environment): the keys, the token, where the gateway is published, and the
# settings the tests choose.
_PASSED = (
    "API_KEY",
    "API_KEYS",
    "ADMIN_API_KEYS",
    "SERVICE_TOKEN",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "LLM_PROVIDER",
    "HEALTH_PROBE_INTERVAL_S",
    "HEALTH_PROBE_TIMEOUT_S",
    "CIRCUIT_COOLDOWN_S",
    "ML_INFERENCE_THREADS",
    "GENAI_CACHE_NAMESPACE",
    "GENAI_CACHE_ENABLED",
    "RATE_LIMIT_PER_MINUTE",
    "IMAGE_PREFIX",
    "IMAGE_TAG",
)


class ComposeUnavailable(RuntimeError):
    """No Docker-compatible engine or no Compose v2 command here; the message says which."""


def compose_command() -> str:
    """The `docker`-like command whose `compose` subcommand runs Compose v2."""
    command = os.environ.get("SEPSIS_COMPOSE_COMMAND") or "docker"
    found = shutil.which(command)
    if found is None:
        raise ComposeUnavailable(f"no {command!r} command (set SEPSIS_COMPOSE_COMMAND)")
    probe = subprocess.run(
        [found, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        raise ComposeUnavailable(f"`{command} compose version` failed: {probe.stderr.strip()}")
    return found


def engine() -> DockerClient:
    """testcontainers' client of the engine DOCKER_HOST names; raises when it does not answer."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    parts = urlsplit(host)
    if parts.scheme == "unix" and not Path(parts.path).exists():
        raise ComposeUnavailable(f"no container engine socket at {parts.path} (DOCKER_HOST)")
    try:
        client = DockerClient()
        client.client.ping()
    except Exception as exc:  # the docker SDK raises several unrelated types here
        raise ComposeUnavailable(f"the container engine at {host} does not answer: {exc}") from exc
    return client


class ComposeStack:
    """compose.yaml as one project, under testcontainers' DockerCompose."""

    def __init__(
        self,
        *,
        project: str,
        env: Mapping[str, str],
        gateway_port: int,
        run_dir: Path,
        start_timeout_s: float = 300.0,
        config: Any = None,
    ) -> None:
        self.config = config
        """The launcher's StackConfig when the end-to-end suite made this stack (its keys)."""
        self.project = project
        self.gateway_port = gateway_port
        self.start_timeout_s = start_timeout_s
        values = {k: env[k] for k in _PASSED if env.get(k)}
        values["COMPOSE_PROJECT_NAME"] = project
        # loopback only: nothing outside this machine reaches the stack under test
        values["GATEWAY_PORT"] = f"127.0.0.1:{gateway_port}"
        run_dir.mkdir(parents=True, exist_ok=True)
        self.env_file = run_dir / f"{project}.env"
        # Holds keys: readable by this user only, removed on close.
        fd = os.open(self.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.writelines(f"{k}={v}\n" for k, v in values.items())
        self.compose = DockerCompose(
            context=ROOT,
            compose_file_name="compose.yaml",
            env_file=str(self.env_file),
            docker_command_path=compose_command(),
            build=False,
            wait=True,
        )
        self.client = engine()

    @classmethod
    def from_config(cls, config: Any, *, project: str) -> ComposeStack:
        """The stack of an end-to-end run: the keys and settings of the launcher's StackConfig
        (scripts/stack.py), which the tests read back from `stack.config`."""
        env = dict(config.base_env)
        env.update(
            API_KEY=config.api_key or config.client_keys[0],
            API_KEYS=",".join(config.api_keys),
            ADMIN_API_KEYS=",".join(config.admin_keys),
            SERVICE_TOKEN=config.service_token,
            LOG_LEVEL=config.log_level,
        )
        return cls(
            project=project,
            env=env,
            gateway_port=config.gateway_port,
            run_dir=Path(config.run_dir),
            config=config,
        )

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def service_url(self, name: str) -> str | None:
        # Only the gateway is published; the services are reachable inside the network only.
        return self.gateway_url if name == "gateway" else None

    def run(self, *args: str, timeout_s: float = 300.0) -> str:
        """One more `compose` command on this project (scale, stop, ...); its output."""
        result = subprocess.run(
            [*self.compose.docker_compose_command(), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"`compose {' '.join(args)}` failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        return result.stdout

    def start(self) -> None:
        """Start the project and wait until every service is healthy."""
        try:
            self.run("up", "--detach", "--no-build", "--wait", "--wait-timeout", "240")
            self.wait_healthy()
        except BaseException:
            self.close()
            raise

    def containers(self, service: str | None = None) -> list[ComposeContainer]:
        """The project's containers (of one service), running or not."""
        found = self.compose.get_containers(include_all=True)
        return [c for c in found if service is None or c.Service == service]

    def inspect(self, container: ComposeContainer) -> dict[str, Any]:
        """The engine's inspect record of a container (state, health, restart count)."""
        attrs: dict[str, Any] = self.client.client.api.inspect_container(container.ID)
        return attrs

    def wait_healthy(self, *, within_s: float | None = None) -> None:
        """Wait until every container of the project runs and is healthy."""
        deadline = time.monotonic() + (within_s or self.start_timeout_s)
        state: dict[str, str] = {}
        while time.monotonic() < deadline:
            state = {}
            for container in self.containers():
                info = self.inspect(container)["State"]
                state[str(container.Name)] = str((info.get("Health") or {}).get("Status"))
                if not info.get("Running"):
                    state[str(container.Name)] = str(info.get("Status"))
            if state and all(s == "healthy" for s in state.values()):
                return
            time.sleep(1.0)
        raise TimeoutError(f"not all healthy within the wait: {state}")

    def stop_service(self, name: str) -> None:
        self.run("stop", "--timeout", "30", name, timeout_s=90)

    def start_service(self, name: str) -> None:
        self.run("up", "--detach", "--no-build", "--no-deps", "--wait", name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run("down", "--volumes", "--remove-orphans", "--timeout", "30", timeout_s=180)
        self.env_file.unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
