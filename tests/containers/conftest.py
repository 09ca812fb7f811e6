"""Fixtures of the container tier (`scripts/test-containers`): the engine, and one compose
stack of the built images shared by the tests of a run.

Without a Docker-compatible engine and Compose v2 these tests skip, saying so; inside the tier
(SEPSIS_CONTAINER_TIER=1) a missing engine is a failure instead.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from tests.containers.compose_stack import ComposeStack

HERE = Path(__file__).resolve().parent


def compose_module() -> ModuleType:
    """tests/containers/compose_stack.py, loaded once (the e2e suite loads the same one)."""
    name = "sepsis_tests_compose_stack"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, HERE / "compose_stack.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def _unavailable(exc: Exception) -> None:
    if os.environ.get("SEPSIS_CONTAINER_TIER") == "1":
        pytest.fail(f"the container tier has no engine: {exc}")
    pytest.skip(f"no container engine here ({exc}); scripts/test-containers sets one up")


@pytest.fixture(scope="session")
def engine() -> Any:
    """testcontainers' DockerClient of the engine (its `.client` is the Docker SDK's)."""
    mod = compose_module()
    try:
        return mod.engine()
    except mod.ComposeUnavailable as exc:
        _unavailable(exc)


@pytest.fixture(scope="session")
def keys() -> dict[str, str]:
    return {
        "API_KEY": secrets.token_urlsafe(32),
        "ADMIN_API_KEYS": secrets.token_urlsafe(32),
        "SERVICE_TOKEN": secrets.token_urlsafe(32),
    }


@pytest.fixture(scope="session")
def stack(
    engine: Any,  # noqa: ARG001  (first: a missing engine skips or fails before anything else)
    keys: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ComposeStack]:
    """compose.yaml up (the built images), all four services healthy."""
    mod = compose_module()
    env = {
        **keys,
        "LLM_PROVIDER": "offline",
        "LOG_FORMAT": "json",
        # the load tests send more than the default per-key budget in a few seconds
        "RATE_LIMIT_PER_MINUTE": "0",
        "HEALTH_PROBE_INTERVAL_S": "0.5",
        "HEALTH_PROBE_TIMEOUT_S": "1",
        "CIRCUIT_COOLDOWN_S": "1",
        "GENAI_CACHE_NAMESPACE": f"sepsis-ct-{secrets.token_hex(4)}",
    }
    try:
        handle = mod.ComposeStack(
            project=f"sepsis-ct-{secrets.token_hex(4)}",
            env=env,
            gateway_port=mod.free_port(),
            run_dir=tmp_path_factory.mktemp("compose"),
        )
    except mod.ComposeUnavailable as exc:
        _unavailable(exc)
    handle.start()
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def gateway(stack: ComposeStack, keys: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.gateway_url, headers={"X-API-Key": keys["API_KEY"]}, timeout=30.0
    ) as client:
        yield client
