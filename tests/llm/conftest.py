"""Fixtures of the real-LLM tier: a llama.cpp server (xllamacpp) with SmolLM2-135M-Instruct.

The tier runs from `scripts/test-llm`, which builds the server's own environment and names its
interpreter in `LLM_TIER_PYTHON`; without it these tests are not collected (the default suite
stays fast and needs no model). The server is a separate process speaking the OpenAI wire
protocol on a free loopback port; genai-service runs in-process (its lifespan over ASGI) and
reaches it through the `openai` SDK, as it reaches Azure OpenAI in production.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from sepsis_genai.app import create_app
from sepsis_genai.config import GenAISettings

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "llama_server.py"
PYTHON_VAR = "LLM_TIER_PYTHON"
# One generation thread: llama.cpp's threads spin while they wait for each other, and beside
# the service and the test process on the same cores two of them ran a 64-token answer in
# 31 s against 2 s for one (measured on this project's 2-core machines under load).
TOKEN = "llm-tier-service-token-0123456789abcdef"
START_TIMEOUT_S = 120.0

collect_ignore_glob = [] if os.environ.get(PYTHON_VAR) else ["test_*.py"]

_HERMETIC_PREFIXES = ("AZURE_OPENAI_", "OPENAI_", "GENAI_")
_HERMETIC_NAMES = ("LLM_PROVIDER", "GUARDRAIL_CONFIG_PATH", "SERVICE_TOKEN", "REDIS_URL")


@dataclass
class LlamaServer:
    """One llama.cpp server process of the tier's environment."""

    proc: subprocess.Popen[str]
    origin: str
    model: str
    api_key: str

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def get(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        response = httpx.get(f"{self.origin}{path}", headers=headers, timeout=10)
        response.raise_for_status()
        return response.json()

    def busy_slots(self) -> int:
        """Slots generating right now (the server's own account)."""
        return sum(1 for slot in self.get("/slots") if slot.get("is_processing"))

    def wait_idle(self, timeout_s: float) -> float:
        """Seconds until no slot is generating; raises when it takes longer than `timeout_s`."""
        started = time.monotonic()
        while self.busy_slots():
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"the server was still generating after {timeout_s} s")
            time.sleep(0.1)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_llama(*, parallel: int = 1, threads: int | None = None) -> LlamaServer:
    """Start the server and wait for its listening line."""
    python = os.environ.get(PYTHON_VAR)
    if not python:
        raise RuntimeError(f"{PYTHON_VAR} is not set: run the tier with scripts/test-llm")
    api_key = secrets.token_urlsafe(16)
    args = [
        python,
        str(LAUNCHER),
        "--api-key",
        api_key,
        "--parallel",
        str(parallel),
        "--threads",
        str(threads or int(os.environ.get("LLM_TIER_THREADS", "1"))),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line: list[str] = []
    reader = threading.Thread(
        target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(START_TIMEOUT_S)
    if not line or not line[0].strip():
        proc.kill()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()
        raise RuntimeError(f"the llama.cpp server did not start (exit code {proc.poll()})")
    info = json.loads(line[0])
    return LlamaServer(proc=proc, origin=info["listening"], model=info["model"], api_key=api_key)


@pytest.fixture(scope="session")
def llama() -> Iterator[LlamaServer]:
    """The tier's server: one slot, so it answers one call at a time (serialises)."""
    server = start_llama(parallel=1)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def llama_two_slots() -> Iterator[LlamaServer]:
    """A server of this test's own that generates for two calls at once."""
    server = start_llama(parallel=2)
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class HospitalCA:
    """A private CA (as a hospital runs) and a server certificate it signed for 127.0.0.1."""

    bundle: Path
    server_cert: Path
    server_key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def hospital_ca(tmp_path_factory: pytest.TempPathFactory) -> HospitalCA:
    where = tmp_path_factory.mktemp("hospital-ca")
    ca_key, ca = where / "ca.key", where / "ca.pem"
    key, csr, cert = where / "server.key", where / "server.csr", where / "server.pem"
    ext = where / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n", "utf-8")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
        str(ca), "-days", "2", "-subj", "/CN=Test Hospital Root CA",
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=llm.hospital.test",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return HospitalCA(bundle=ca, server_cert=cert, server_key=key)


@pytest.fixture
async def tls_front(llama: LlamaServer, hospital_ca: HospitalCA) -> AsyncIterator[str]:
    """HTTPS in front of the llama.cpp server (its wheel has no TLS), as a hospital's reverse
    proxy would be: a certificate of the hospital's CA, bytes passed through. Yields the
    OpenAI base URL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(hospital_ca.server_cert, hospital_ca.server_key)
    upstream = httpx.URL(llama.origin)
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(upstream.host, upstream.port)
        except OSError:
            writer.close()
            return
        pair = [
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ]
        tasks.update(pair)
        for task in pair:
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*pair, return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/v1"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await server.wait_closed()


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_HERMETIC_PREFIXES) or name in _HERMETIC_NAMES:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _server_idle(llama: LlamaServer) -> None:
    """Each test starts with the server idle (a previous test's abandoned call is over)."""
    llama.wait_idle(timeout_s=60)


SettingsFactory = Callable[..., GenAISettings]


@pytest.fixture
def settings(llama: LlamaServer) -> SettingsFactory:
    """Settings of the OpenAI-compatible provider pointed at the real server, cache off."""

    def make(**overrides: Any) -> GenAISettings:
        values: dict[str, Any] = {
            "SERVICE_TOKEN": TOKEN,
            "LOG_FORMAT": "text",
            "LLM_PROVIDER": "openai",
            "OPENAI_BASE_URL": llama.base_url,
            "OPENAI_API_KEY": llama.api_key,
            "OPENAI_MODEL": llama.model,
            "GENAI_CACHE_ENABLED": False,
            "GENAI_DEADLINE_S": 100,
            "GENAI_MAX_OUTPUT_TOKENS": 160,
            "GENAI_MAX_RETRIES": 0,
        }
        values.update(overrides)
        return GenAISettings.model_validate(values)

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
            timeout=300,
        ) as client:
            yield client


RunApp = Callable[[GenAISettings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def run_app() -> RunApp:
    """`async with run_app(settings) as client`: genai-service with its lifespan over ASGI."""
    return _running
