"""The stack the report measures: the run command's own launcher (`scripts/stack.py`) on free
ports with generated keys, genai-service pointed (over the Azure URL scheme) at the local
OpenAI-compatible server `tests/fakes/fake_openai.py`, whose `/_admin/*` routes script the LLM's
faults, and a private `redis-server` that can be stopped and started again."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.resilience.common import say, wait_until
from scripts.stack import (
    GATEWAY,
    GENAI,
    ML,
    REDIS,
    REPO_ROOT,
    LocalStack,
    ManagedProcess,
    StackConfig,
    StackError,
    free_port,
    http_status,
    inherited_env,
    new_secret,
    redis_answers,
)

FAKE_LLM = REPO_ROOT / "tests" / "fakes" / "fake_openai.py"
FAKE_LLM_KEY = "resilience-fake-llm-key"
DEPLOYMENT = "gpt-4o"
FAKE_LLM_NAME = "fake-llm"


@dataclass
class ReportStack:
    """A running stack plus its fake LLM server, with the handles the report needs."""

    stack: LocalStack
    llm_process: ManagedProcess
    llm_url: str
    settings: dict[str, str]
    """The settings this run gave the stack (deadlines, limits), as the report quotes them."""

    @property
    def gateway_url(self) -> str:
        return self.stack.gateway_url

    @property
    def ml_url(self) -> str:
        url = self.stack.service_url(ML)
        assert url is not None
        return url

    @property
    def genai_url(self) -> str:
        url = self.stack.service_url(GENAI)
        assert url is not None
        return url

    @property
    def client_key(self) -> str:
        return self.stack.config.client_keys[0]

    @property
    def admin_key(self) -> str:
        return self.stack.config.admin_keys[0]

    @property
    def service_token(self) -> str:
        return self.stack.config.service_token

    @property
    def has_redis(self) -> bool:
        return REDIS in self.stack.processes

    def setting(self, name: str) -> float:
        return float(self.settings[name])

    def pids(self) -> dict[str, int]:
        """The pid of each process of the stack that runs now (the fake LLM included)."""
        found = {
            name: process.pid
            for name, process in self.stack.processes.items()
            if process.pid is not None and process.running()
        }
        if self.llm_process.pid is not None and self.llm_process.running():
            found[FAKE_LLM_NAME] = self.llm_process.pid
        return found

    # --- the fake LLM's admin routes ----------------------------------------------------------

    def llm_admin(self, route: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST (or GET for `stats`) one of the fake LLM server's `/_admin/*` routes."""
        data = None if body is None else json.dumps(body).encode()
        method = "GET" if route in ("stats", "requests") else "POST"
        request = urllib.request.Request(
            f"{self.llm_url}/_admin/{route}",
            data=data if method == "POST" else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer

    def llm_behave(self, behaviour: Mapping[str, Any]) -> None:
        """What the fake LLM answers from now on (`{"kind": "computed"}` is a valid answer)."""
        self.llm_admin("config", {"default": dict(behaviour)})

    # --- faults -------------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL a service's process group (no graceful shutdown), then forget it."""
        process = self.stack.processes[name]
        if process.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        wait_until(lambda: not process.running(), within_s=10)
        self.stack.stop_service(name)

    def restart(self, name: str) -> None:
        """Start a killed service again and wait until it is ready."""
        self.stack.start_service(name)

    def stop_redis(self) -> None:
        process = self.stack.processes[REDIS]
        process.stop()

    def start_redis(self) -> None:
        process = self.stack.processes[REDIS]
        url = self.settings["REDIS_URL"]
        process.start()
        if not wait_until(lambda: redis_answers(url), within_s=10, every_s=0.05):
            raise StackError(f"redis-server did not come back:\n{process.log_tail()}")

    def close(self) -> None:
        self.stack.close()
        self.llm_process.stop()


@contextlib.contextmanager
def report_stack(run_dir: Path, overrides: Mapping[str, str]) -> Iterator[ReportStack]:
    """Start the fake LLM and the stack on free ports; stop both at the end, whatever happens."""
    env = inherited_env(os.environ)
    port = free_port()
    llm = ManagedProcess(
        FAKE_LLM_NAME,
        [sys.executable, str(FAKE_LLM), "--port", str(port), "--api-key", FAKE_LLM_KEY],
        env=env,
        log_path=run_dir / "logs" / "fake-llm.log",
    )
    llm.start()
    llm_url = f"http://127.0.0.1:{port}"
    handle: ReportStack | None = None
    try:
        if (
            not wait_until(
                lambda: http_status(f"{llm_url}/_admin/stats") == 200 or not llm.running(),
                within_s=30,
            )
            or not llm.running()
        ):
            raise StackError(f"the fake LLM server did not start:\n{llm.log_tail()}")
        if shutil.which("redis-server") is None:
            raise StackError(
                "redis-server is not installed (Debian/Ubuntu: `apt-get install redis-server`);"
                " the report stops and restarts a Redis of its own"
            )
        redis_port = free_port()
        settings = {
            # Each client is its own key's traffic; the per-key limit would cut the load.
            "RATE_LIMIT_PER_MINUTE": "0",
            "GENAI_DEADLINE_S": "30",
            "ML_TIMEOUT_S": "10",
            "GENAI_TIMEOUT_S": "100",
            "HEALTH_PROBE_INTERVAL_S": "5",
            "HEALTH_PROBE_TIMEOUT_S": "2",
            "BODY_READ_TIMEOUT_S": "15",
            "HEADER_READ_TIMEOUT_S": "10",
            "GENAI_MAX_CONCURRENCY": "64",
            "GENAI_MAX_QUEUED": "32",
            "UPSTREAM_MAX_CONNECTIONS": "100",
            "CIRCUIT_COOLDOWN_S": "10",
            "GENAI_CACHE_RETRY_INTERVAL_S": "2",
        }
        settings.update(overrides)
        settings["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        env.update(settings)
        env.pop("REDIS_URL")
        env.update(
            GATEWAY_PORT=str(free_port()),
            ML_PORT=str(free_port()),
            GENAI_PORT=str(free_port()),
            REDIS_PORT=str(redis_port),
            API_KEY=new_secret(),
            ADMIN_API_KEYS=new_secret(),
            SERVICE_TOKEN=new_secret(),
            LOG_FORMAT="json",
            STACK_RUN_DIR=str(run_dir),
            GENAI_CACHE_NAMESPACE=f"sepsis-resilience-{secrets.token_hex(4)}",
            LLM_PROVIDER="auto",  # azure: AZURE_OPENAI_ENDPOINT is set
            AZURE_OPENAI_ENDPOINT=llm_url,
            AZURE_OPENAI_API_KEY=FAKE_LLM_KEY,
            AZURE_OPENAI_API_VERSION="2024-06-01",
            AZURE_OPENAI_DEPLOYMENT_NAME=DEPLOYMENT,
            AZURE_OPENAI_MODEL=DEPLOYMENT,
        )
        stack = LocalStack(StackConfig.from_env(env))
        started = time.monotonic()
        stack.start()
        say(
            f"stack up in {time.monotonic() - started:.1f} s: gateway {stack.gateway_url}, "
            f"logs under {run_dir / 'logs'}"
        )
        handle = ReportStack(stack=stack, llm_process=llm, llm_url=llm_url, settings=settings)
        yield handle
    finally:
        if handle is not None:
            handle.close()
        llm.stop()


__all__ = ["GATEWAY", "GENAI", "ML", "REDIS", "ReportStack", "report_stack"]
