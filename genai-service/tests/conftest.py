"""Fixtures of the GenAI service tests: real Redis, the local OpenAI-compatible server, the app.

- Redis: `REDIS_URL` (default redis://127.0.0.1:6379/15); when nothing answers there and
  `redis-server` is installed, a private one is started on a spare port for the session. Each
  test gets its own key namespace and deletes only its own keys.
- LLM: `tests/fakes/fake_openai.py` at the repository root, started in-process per test on a
  free port and driven through the real `openai` SDK.
- App: `create_app(settings)` run with its lifespan over ASGI (httpx + asgi-lifespan).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager

from sepsis_genai.app import create_app
from sepsis_genai.config import GenAISettings
from sepsis_shared.patient import STRUCTURED_EXAMPLE

if TYPE_CHECKING:
    from tests.fakes.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOKEN = "genai-test-token-0123456789abcdef"
DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/15"
_FAKE_MODULE = "sepsis_fake_openai"

# Settings the environment must not leak into a test (a developer's real LLM keys included).
_HERMETIC_PREFIXES = ("AZURE_OPENAI_", "OPENAI_", "GENAI_")
_HERMETIC_NAMES = ("LLM_PROVIDER", "GUARDRAIL_CONFIG_PATH", "SERVICE_TOKEN", "REDIS_URL")


def fake_module() -> ModuleType:
    """`tests/fakes/fake_openai.py`, loaded by path (the root `tests` is not a package here)."""
    module = sys.modules.get(_FAKE_MODULE)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            _FAKE_MODULE, ROOT / "tests" / "fakes" / "fake_openai.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_FAKE_MODULE] = module
        spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """A `redis-server` process of our own on a spare port (stoppable mid-test)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _pings(self.url):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A reachable Redis: REDIS_URL / the machine's test db, else a private redis-server."""
    url = os.environ.get("REDIS_URL", DEFAULT_TEST_REDIS)
    if _pings(url):
        yield url
        return
    if shutil.which("redis-server") is None:
        pytest.skip(f"no Redis answers at {url} and redis-server is not installed")
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop and restart."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A key namespace of this test only; its keys are deleted afterwards."""
    ns = f"test-genai:{uuid.uuid4().hex[:12]}"
    yield ns
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{ns}:*", count=500))
        if keys:
            client.delete(*keys)
    except (redis.RedisError, OSError):
        pass
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_HERMETIC_PREFIXES) or name in _HERMETIC_NAMES:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    """The local OpenAI-compatible server, in-process on a free port."""
    server: FakeOpenAI = fake_module().FakeOpenAI()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


SettingsFactory = Callable[..., GenAISettings]
RunApp = Callable[[GenAISettings], AbstractAsyncContextManager[httpx.AsyncClient]]


def _offline_settings(**overrides: Any) -> GenAISettings:
    values: dict[str, Any] = {
        "SERVICE_TOKEN": TOKEN,
        "LOG_FORMAT": "text",
        "LLM_PROVIDER": "offline",
        "GENAI_CACHE_ENABLED": False,
    }
    values.update(overrides)
    return GenAISettings.model_validate(values)


def _llm_settings(
    fake: FakeOpenAI, *, redis_url: str | None, namespace: str, **overrides: Any
) -> GenAISettings:
    values: dict[str, Any] = {
        "SERVICE_TOKEN": TOKEN,
        "LOG_FORMAT": "text",
        "LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": fake.openai_base_url,
        "OPENAI_API_KEY": fake.api_key,
        "OPENAI_MODEL": "gpt-test",
        "GENAI_CACHE_ENABLED": redis_url is not None,
        "REDIS_URL": redis_url or DEFAULT_TEST_REDIS,
        "GENAI_CACHE_NAMESPACE": namespace,
        "GENAI_DEADLINE_S": 20,
        "GENAI_RETRY_BASE_S": 0.01,
        "GENAI_RETRY_MAX_S": 0.05,
        "GENAI_CACHE_RETRY_INTERVAL_S": 0,
    }
    values.update(overrides)
    return GenAISettings.model_validate(values)


@pytest.fixture
def offline_settings() -> SettingsFactory:
    """Settings of the offline provider (cache off unless overridden)."""
    return _offline_settings


@pytest.fixture
def llm_settings(fake_llm: FakeOpenAI) -> SettingsFactory:
    """Settings of the OpenAI provider pointed at the fake server, cache off."""

    def make(**overrides: Any) -> GenAISettings:
        return _llm_settings(fake_llm, redis_url=None, namespace="unused", **overrides)

    return make


@pytest.fixture
def cached_llm_settings(fake_llm: FakeOpenAI, redis_url: str, namespace: str) -> SettingsFactory:
    """Settings of the OpenAI provider pointed at the fake server, cache on real Redis."""

    def make(**overrides: Any) -> GenAISettings:
        return _llm_settings(fake_llm, redis_url=redis_url, namespace=namespace, **overrides)

    return make


@asynccontextmanager
async def _running(settings: GenAISettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://genai.test",
            headers={"X-Service-Token": TOKEN},
            timeout=60,
        ) as client:
            yield client


@pytest.fixture
def run_app() -> RunApp:
    """`async with run_app(settings) as client`: the app with its lifespan over ASGI; the
    client carries the service token."""
    return _running


@pytest.fixture
def guide_request() -> dict[str, Any]:
    """The original deployment guide's /genai-classify request (DESIGN §8)."""
    return copy.deepcopy(dict(STRUCTURED_EXAMPLE))


def make_answer(
    *,
    risk: int = 40,
    priority: str = "Elevated",
    probability: float = 0.35,
    rationale: str = "Scripted answer.",
) -> dict[str, Any]:
    return {
        "risk_score": risk,
        "priority": priority,
        "sepsis_probability_6h": probability,
        "rationale": rationale,
        "key_findings": ["scripted finding"],
        "recommended_actions": ["scripted action"],
    }


@pytest.fixture
def answer() -> Callable[..., dict[str, Any]]:
    """`answer(risk=..., priority=..., probability=...)`: a valid LLM answer to script."""
    return make_answer


@pytest.fixture
def sample_patients() -> list[dict[str, Any]]:
    """The original system's sample patients with their expected priority bands."""
    data: list[dict[str, Any]] = json.loads((FIXTURES / "sample_patients.json").read_text("utf-8"))
    return data
