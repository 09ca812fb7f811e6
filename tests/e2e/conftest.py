"""The whole stack for the end-to-end tests, started once per test session.

It is started by the run command's own launcher (`scripts/stack.py`), on free ports, with keys
and a service token generated here, and a private `redis-server` when one is installed (else
the machine's Redis). The real Azure OpenAI cannot be reached from here, so genai-service is
pointed, through the original deployment's AZURE_OPENAI_* variables, at the local
OpenAI-compatible server of `tests/fakes/fake_openai.py`, which speaks the Azure URL scheme.

`STACK=compose` runs the same tests against compose.yaml under testcontainers instead (the
built images, GenAI on its offline provider; `scripts/test-containers` runs them so); without a
container engine and Compose v2 those tests are skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, cast

import httpx
import pytest

from tests.conftest import load_launcher

if TYPE_CHECKING:
    from scripts.stack import StackHandle

ROOT = Path(__file__).resolve().parents[2]
FAKE_LLM = ROOT / "tests" / "fakes" / "fake_openai.py"
FAKE_LLM_KEY = "e2e-fake-llm-key"
DEPLOYMENT = "gpt-4o"


def load_module(path: Path) -> ModuleType:
    """A helper module of the tests (not a package) loaded by path, once."""
    name = f"sepsis_tests_{path.stem}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before it runs: dataclasses look their module up
        spec.loader.exec_module(module)
    return module


def caller_env() -> dict[str, str]:
    """This process's environment without the settings a stack under test chooses itself
    (and without any real LLM credentials): the launcher's own rule."""
    env: dict[str, str] = load_launcher().inherited_env(os.environ)
    return env


@dataclass(frozen=True)
class LLMSetup:
    """What genai-service talks to in this run."""

    provider: str
    """`azure` (the local fake over the Azure URL scheme) or `offline`."""
    origin: str | None
    """The fake server's URL, for its `/_admin/*` routes; None when offline."""


def _stack_mode() -> str:
    mode = os.environ.get("STACK", "local")
    if mode not in ("local", "compose"):
        raise pytest.UsageError(f"STACK must be `local` or `compose`, not {mode!r}")
    return mode


@pytest.fixture(scope="session")
def llm(stack_launcher: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMSetup]:
    """The LLM endpoint of this run: the local fake for a local stack, offline under compose."""
    if _stack_mode() == "compose":
        yield LLMSetup(provider="offline", origin=None)
        return
    port = stack_launcher.free_port()
    process = stack_launcher.ManagedProcess(
        "fake-llm",
        [sys.executable, str(FAKE_LLM), "--port", str(port), "--api-key", FAKE_LLM_KEY],
        env=caller_env(),
        log_path=tmp_path_factory.mktemp("fake-llm") / "fake-llm.log",
    )
    process.start()
    try:
        origin = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30.0
        while stack_launcher.http_status(f"{origin}/_admin/stats") != 200:
            assert process.running(), f"the fake LLM server exited:\n{process.log_tail()}"
            assert time.monotonic() < deadline, "the fake LLM server did not start"
            time.sleep(0.1)
        yield LLMSetup(provider="azure", origin=origin)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def stack(
    stack_launcher: ModuleType, llm: LLMSetup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackHandle]:
    """The running stack (local processes, or `docker compose` under STACK=compose)."""
    mod = stack_launcher
    mode = _stack_mode()
    env = caller_env()
    env.update(
        GATEWAY_PORT=str(mod.free_port()),
        ML_PORT=str(mod.free_port()),
        GENAI_PORT=str(mod.free_port()),
        # The original single key plus two rotated keys, all valid at once.
        API_KEY=mod.new_secret(),
        API_KEYS=f"{mod.new_secret()},{mod.new_secret()}",
        ADMIN_API_KEYS=mod.new_secret(),
        SERVICE_TOKEN=mod.new_secret(),
        LOG_FORMAT="json",
        STACK_RUN_DIR=str(tmp_path_factory.mktemp("stack")),
        # Find a stopped upstream and its return quickly, so the failure test stays short.
        HEALTH_PROBE_INTERVAL_S="0.5",
        HEALTH_PROBE_TIMEOUT_S="1",
        CIRCUIT_COOLDOWN_S="1",
        ML_INFERENCE_THREADS="1",
        # A per-run namespace: cached answers of earlier runs never leak into this one.
        GENAI_CACHE_NAMESPACE=f"sepsis-e2e-{secrets.token_hex(4)}",
    )
    if llm.origin is None:
        env["LLM_PROVIDER"] = "offline"
    else:
        env.update(
            LLM_PROVIDER="auto",  # resolves to azure because AZURE_OPENAI_ENDPOINT is set
            AZURE_OPENAI_ENDPOINT=llm.origin,
            AZURE_OPENAI_API_KEY=FAKE_LLM_KEY,
            AZURE_OPENAI_API_VERSION="2024-06-01",
            AZURE_OPENAI_DEPLOYMENT_NAME=DEPLOYMENT,
            AZURE_OPENAI_MODEL=DEPLOYMENT,
        )
    if mode == "local" and shutil.which("redis-server") is not None:
        env["REDIS_PORT"] = str(mod.free_port())  # nothing answers there: a private one starts
    config = mod.StackConfig.from_env(env)

    handle: StackHandle
    if mode == "local":
        handle = cast("StackHandle", mod.LocalStack(config))
    else:
        # compose.yaml under testcontainers' DockerCompose, on the engine DOCKER_HOST names
        # (scripts/test-containers sets up podman's socket and Compose v2 for it).
        compose = load_module(ROOT / "tests" / "containers" / "compose_stack.py")
        project = f"sepsis-e2e-{secrets.token_hex(4)}"
        try:
            handle = cast("StackHandle", compose.ComposeStack.from_config(config, project=project))
        except compose.ComposeUnavailable as exc:
            pytest.skip(f"STACK=compose: {exc} (scripts/test-containers sets one up)")
    handle.start()
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def gateway(stack: StackHandle) -> Iterator[httpx.Client]:
    """An HTTP client on the gateway's real port (no key set)."""
    with httpx.Client(base_url=stack.gateway_url, timeout=30.0) as client:
        yield client


@pytest.fixture
def clean_env() -> dict[str, str]:
    """A copy of the environment fit for starting another stack (see `caller_env`)."""
    return caller_env()


@pytest.fixture
def client_key(stack: StackHandle) -> str:
    return stack.config.client_keys[0]


@pytest.fixture
def admin_key(stack: StackHandle) -> str:
    return stack.config.admin_keys[0]
