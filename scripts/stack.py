"""The whole stack as local processes: Redis, ml-service, genai-service and the gateway.

`scripts/run` runs this file; the end-to-end tests import it and start the very same stack on
free ports with their own keys. Every process started here lives in its own process group and
is stopped with that group, so Ctrl-C (SIGINT) or SIGTERM leaves nothing running. Under
`scripts/run`, a process that dies is reported with its log and started again after a bounded
back-off (1 s, doubling to at most 30 s; see `RestartBackoff`).

Environment (all optional):
    GATEWAY_PORT 8000, ML_PORT 8001, GENAI_PORT 8002, REDIS_PORT 6379, STACK_HOST 127.0.0.1
    REDIS_URL          a Redis to use; default redis://127.0.0.1:$REDIS_PORT/0, launched if silent
    API_KEY, API_KEYS  client keys (generated when neither is set)
    ADMIN_API_KEYS     admin keys (generated when unset)
    SERVICE_TOKEN      the internal gateway-to-service token (generated when unset)
    LOG_LEVEL INFO, LOG_FORMAT text, STACK_RUN_DIR .run, STACK_START_TIMEOUT_S 90
Everything else in the environment (AZURE_OPENAI_*, LLM_PROVIDER, ML_*, GENAI_*, ...) reaches
the services unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Literal, Protocol, TextIO
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]

ML = "ml-service"
GENAI = "genai-service"
GATEWAY = "gateway"
REDIS = "redis"

# Client secrets reach the gateway only; the services behind it see the service token alone.
_GATEWAY_ONLY = frozenset({"API_KEY", "API_KEYS", "ADMIN_API_KEYS"})
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """The stack could not be started; the message says what failed and where to look."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service process: its package's app module, its port and the URL that says ready."""

    name: str
    module: str
    port: int
    ready_path: str

    @property
    def app(self) -> str:
        return f"{self.module}:create_app"


STACK_CHOSEN_SETTINGS = frozenset(
    {
        "API_KEY",
        "API_KEYS",
        "ADMIN_API_KEYS",
        "SERVICE_TOKEN",
        "INTERNAL_SERVICE_TOKEN",
        "REDIS_URL",
        "REDIS_PORT",
        "LLM_PROVIDER",
        "GATEWAY_PORT",
        "ML_PORT",
        "GENAI_PORT",
        "STACK_HOST",
        "STACK_RUN_DIR",
    }
)
"""What a stack started on free ports for tests or measurements chooses itself."""


def inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without the settings such a stack chooses itself and without any real LLM
    credentials (AZURE_OPENAI_*, OPENAI_*)."""
    return {
        k: v
        for k, v in environ.items()
        if k not in STACK_CHOSEN_SETTINGS and not k.startswith(("AZURE_OPENAI_", "OPENAI_"))
    }


def new_secret() -> str:
    """A random key or token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def split_csv(raw: str | None) -> tuple[str, ...]:
    """Comma-separated values, stripped, empties dropped, order kept."""
    if not raw:
        return ()
    return tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise StackError(f"{name} must be a port number, got {raw!r}") from exc


@dataclass(frozen=True)
class StackConfig:
    """Ports, keys and logging of one stack; `from_env` is what the run command uses."""

    base_env: Mapping[str, str]
    host: str = "127.0.0.1"
    gateway_port: int = 8000
    ml_port: int = 8001
    genai_port: int = 8002
    redis_port: int = 6379
    redis_url: str | None = None
    api_key: str | None = None
    api_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()
    service_token: str = field(default_factory=new_secret)
    generated: frozenset[str] = frozenset()
    log_level: str = "INFO"
    log_format: str = "text"
    run_dir: Path = REPO_ROOT / ".run"
    start_timeout_s: float = 90.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StackConfig:
        """Read the stack's settings; keys and the service token are generated when unset."""
        generated: set[str] = set()
        api_key = env.get("API_KEY", "").strip() or None
        api_keys = split_csv(env.get("API_KEYS"))
        if api_key is None and not api_keys:
            api_keys = (new_secret(),)
            generated.add("API_KEYS")
        admin_keys = split_csv(env.get("ADMIN_API_KEYS"))
        if not admin_keys:
            admin_keys = (new_secret(),)
            generated.add("ADMIN_API_KEYS")
        token = (env.get("SERVICE_TOKEN") or env.get("INTERNAL_SERVICE_TOKEN") or "").strip()
        if not token:
            token = new_secret()
            generated.add("SERVICE_TOKEN")
        run_dir = Path(env.get("STACK_RUN_DIR") or REPO_ROOT / ".run")
        try:
            timeout = float(env.get("STACK_START_TIMEOUT_S") or 90.0)
        except ValueError as exc:
            raise StackError("STACK_START_TIMEOUT_S must be a number of seconds") from exc
        return cls(
            base_env=dict(env),
            host=env.get("STACK_HOST") or "127.0.0.1",
            gateway_port=_int_env(env, "GATEWAY_PORT", 8000),
            ml_port=_int_env(env, "ML_PORT", 8001),
            genai_port=_int_env(env, "GENAI_PORT", 8002),
            redis_port=_int_env(env, "REDIS_PORT", 6379),
            redis_url=env.get("REDIS_URL", "").strip() or None,
            api_key=api_key,
            api_keys=api_keys,
            admin_keys=admin_keys,
            service_token=token,
            generated=frozenset(generated),
            log_level=env.get("LOG_LEVEL") or "INFO",
            log_format=env.get("LOG_FORMAT") or "text",
            run_dir=run_dir if run_dir.is_absolute() else REPO_ROOT / run_dir,
            start_timeout_s=timeout,
        )

    @property
    def client_keys(self) -> tuple[str, ...]:
        """Every valid client key, the legacy API_KEY first."""
        legacy = (self.api_key,) if self.api_key else ()
        return tuple(dict.fromkeys(legacy + self.api_keys))

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    def specs(self) -> dict[str, ServiceSpec]:
        return {
            ML: ServiceSpec(ML, "sepsis_ml.app", self.ml_port, "/readyz"),
            GENAI: ServiceSpec(GENAI, "sepsis_genai.app", self.genai_port, "/readyz"),
            GATEWAY: ServiceSpec(GATEWAY, "sepsis_gateway.app", self.gateway_port, "/health"),
        }

    def service_env(
        self, name: str, *, redis_url: str, redis_available: bool = True
    ) -> dict[str, str]:
        """The environment one service process starts with."""
        env = {k: v for k, v in self.base_env.items() if k not in _GATEWAY_ONLY}
        env.pop("INTERNAL_SERVICE_TOKEN", None)
        env.update(
            SERVICE_TOKEN=self.service_token,
            LOG_LEVEL=self.log_level,
            LOG_FORMAT=self.log_format,
            PYTHONUNBUFFERED="1",
        )
        if name in (GENAI, GATEWAY):
            # genai-service: its answer cache; the gateway: CDS Hooks feedback and seen JWT ids
            env["REDIS_URL"] = redis_url
        if name == GENAI and not redis_available:
            # No Redis at all: say so plainly (cache "disabled") instead of retrying it.
            env.setdefault("GENAI_CACHE_ENABLED", "false")
        if name == GATEWAY:
            if self.api_key:
                env["API_KEY"] = self.api_key
            env["API_KEYS"] = ",".join(self.api_keys)
            env["ADMIN_API_KEYS"] = ",".join(self.admin_keys)
            env["ML_SERVICE_URL"] = f"http://{self.host}:{self.ml_port}"
            env["GENAI_SERVICE_URL"] = f"http://{self.host}:{self.genai_port}"
        return env


# --- Redis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisPlan:
    """Which Redis the GenAI cache talks to, and where it came from."""

    url: str
    origin: Literal["existing", "launched", "missing"]


def redis_answers(url: str, *, timeout_s: float = 1.0) -> bool:
    """True when a Redis server answers a PING at `url` (an auth error counts as an answer)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return False
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 6379
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-"))


# --- processes ---------------------------------------------------------------------------------


def _parent_death_hook() -> Callable[[], None] | None:
    """On Linux, make a child receive SIGTERM if this process dies without cleaning up."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return hook


class ManagedProcess:
    """A child process in its own process group, logging to a file."""

    def __init__(
        self, name: str, argv: list[str], *, env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.started_at: float | None = None
        """time.monotonic() of the last start."""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the process (a new session, so a terminal's Ctrl-C reaches only the launcher)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self._proc = subprocess.Popen(
            self.argv,
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_parent_death_hook(),
        )

    def exit_code(self) -> int | None:
        """None while running (or never started), else the exit status."""
        return self._proc.poll() if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """SIGTERM the whole process group, SIGKILL it if it outlives the timeout."""
        proc = self._proc
        if proc is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=timeout_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
            # Reap whatever else is left in the group (a worker the service forked, say).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class RestartBackoff:
    """When to start a process again that died: after `first_s`, doubling with each death that
    follows quickly on a restart, at most `max_s` apart; a process that had stayed up for
    `stable_s` starts the count afresh. Bounded in wait, not in attempts: a service that keeps
    failing is tried again every `max_s` and each death is reported with its log."""

    first_s: float = 1.0
    max_s: float = 30.0
    stable_s: float = 60.0
    failures: int = 0
    due_at: float | None = None

    def schedule(self, *, now: float, up_for_s: float) -> float:
        """Note a death; the delay before the restart (also kept as `due_at`)."""
        if up_for_s >= self.stable_s:
            self.failures = 0
        delay = min(self.max_s, self.first_s * 2.0**self.failures)
        self.failures += 1
        self.due_at = now + delay
        return delay

    def due(self, now: float) -> bool:
        """Whether a scheduled restart should happen now (it is then no longer scheduled)."""
        if self.due_at is None or now < self.due_at:
            return False
        self.due_at = None
        return True


def http_status(url: str, *, timeout_s: float = 2.0) -> int | None:
    """The status code of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def package_has_app(module: str) -> bool:
    """Whether a service package ships its app module yet."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# --- the stack ---------------------------------------------------------------------------------


class StackHandle(Protocol):
    """What the end-to-end tests need from a running stack, local or compose."""

    config: StackConfig

    @property
    def gateway_url(self) -> str: ...

    def service_url(self, name: str) -> str | None: ...

    def start(self) -> None: ...

    def stop_service(self, name: str) -> None: ...

    def start_service(self, name: str) -> None: ...

    def close(self) -> None: ...


class LocalStack:
    """Redis (found or launched), ml-service, genai-service and the gateway as local processes."""

    def __init__(self, config: StackConfig, *, out: TextIO | None = None) -> None:
        self.config = config
        self.specs = config.specs()
        self.processes: dict[str, ManagedProcess] = {}
        self.redis: RedisPlan | None = None
        self.missing: list[str] = []
        self._out = out
        self.log_dir = config.run_dir / "logs"

    @property
    def gateway_url(self) -> str:
        return self.config.gateway_url

    def service_url(self, name: str) -> str | None:
        spec = self.specs.get(name)
        return f"http://{self.config.host}:{spec.port}" if spec else None

    def _say(self, message: str) -> None:
        if self._out is not None:
            print(message, file=self._out, flush=True)

    def start(self) -> None:
        """Start everything and wait until each service is ready; on failure stop it all."""
        try:
            self.redis = self._ensure_redis()
            backends = [name for name in (ML, GENAI) if self._available(name)]
            for name in backends:
                self._spawn(name)
            self._wait_ready(backends)
            if not self._available(GATEWAY):
                raise StackError("the gateway package has no app module (sepsis_gateway.app)")
            self._spawn(GATEWAY)
            self._wait_ready([GATEWAY])
        except BaseException:
            self.close()
            raise

    def stop_service(self, name: str) -> None:
        """Stop one service process (the others keep running)."""
        process = self.processes.pop(name, None)
        if process is not None:
            process.stop()

    def start_service(self, name: str) -> None:
        """Start one service process again and wait until it is ready."""
        if name in self.processes and self.processes[name].running():
            return
        self._spawn(name)
        self._wait_ready([name])

    def close(self) -> None:
        """Stop every process this stack started, the gateway first and Redis last."""
        for name in (GATEWAY, GENAI, ML, REDIS):
            process = self.processes.pop(name, None)
            if process is not None:
                process.stop()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # internals

    def _available(self, name: str) -> bool:
        if package_has_app(self.specs[name].module):
            return True
        if name not in self.missing:
            self.missing.append(name)
            effect = "" if name == GATEWAY else "; the gateway answers 503 for its routes"
            self._say(
                f"! {name}: not started, no app module yet ({self.specs[name].module}){effect}"
            )
        return False

    def _ensure_redis(self) -> RedisPlan:
        cfg = self.config
        url = cfg.redis_url or f"redis://{cfg.host}:{cfg.redis_port}/0"
        if redis_answers(url):
            self._say(f"redis: using the one that answers at {url}")
            return RedisPlan(url, "existing")
        parts = urlsplit(url)
        local = parts.hostname in (None, "127.0.0.1", "localhost", "::1")
        server = shutil.which("redis-server")
        if server is None or not local:
            why = (
                "redis-server is not installed (Debian/Ubuntu: `apt-get install redis-server`)"
                if server is None
                else f"nothing answers at {url} and it is not a local address"
            )
            self._say(f"! redis: {why}; starting without it, the GenAI cache is down")
            return RedisPlan(url, "missing")
        port = parts.port or cfg.redis_port
        process = ManagedProcess(
            REDIS,
            # No persistence: the cache holds expiring LLM answers and nothing else.
            [server, "--port", str(port), "--bind", cfg.host, "--save", "", "--appendonly", "no"],
            env=cfg.base_env,
            log_path=self.log_dir / "redis.log",
        )
        process.start()
        self.processes[REDIS] = process
        deadline = time.monotonic() + 10.0
        while not redis_answers(url):
            if not process.running() or time.monotonic() > deadline:
                raise StackError(
                    f"redis-server did not start on port {port}:\n" + process.log_tail()
                )
            time.sleep(0.05)
        self._say(f"redis: launched redis-server on {url} (no persistence)")
        return RedisPlan(url, "launched")

    def _spawn(self, name: str) -> None:
        spec = self.specs[name]
        assert self.redis is not None, "redis is settled before any service starts"
        argv = [
            sys.executable, "-m", "uvicorn", spec.app, "--factory", "--no-server-header",
            "--host", self.config.host, "--port", str(spec.port),
            "--timeout-graceful-shutdown", "5",
        ]  # fmt: skip
        if name == GATEWAY:
            # The gateway writes its own access line; uvicorn's would only be formatted and
            # dropped on every forwarded request.
            argv.append("--no-access-log")
            # A deadline on each request head (sepsis_gateway.server), as in the image.
            argv += ["--http", "sepsis_gateway.server:HeadDeadlineProtocol"]
        process = ManagedProcess(
            name,
            argv,
            env=self.config.service_env(
                name, redis_url=self.redis.url, redis_available=self.redis.origin != "missing"
            ),
            log_path=self.log_dir / f"{name}.log",
        )
        process.start()
        self.processes[name] = process
        self._say(f"{name}: starting on port {spec.port} (log: {process.log_path})")

    def _wait_ready(self, names: list[str]) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        pending = list(names)
        while pending:
            for name in list(pending):
                process = self.processes[name]
                code = process.exit_code()
                if code is not None:
                    raise StackError(
                        f"{name} exited with status {code} while starting; its log "
                        f"({process.log_path}) ends with:\n{process.log_tail()}"
                    )
                spec = self.specs[name]
                url = f"http://{self.config.host}:{spec.port}{spec.ready_path}"
                if http_status(url, timeout_s=2.0) == 200:
                    pending.remove(name)
                    self._say(f"{name}: ready ({url})")
            if pending and time.monotonic() > deadline:
                tails = "\n".join(
                    f"--- {n} ({self.processes[n].log_path}):\n{self.processes[n].log_tail()}"
                    for n in pending
                )
                raise StackError(
                    f"not ready after {self.config.start_timeout_s:.0f} s: "
                    f"{', '.join(pending)}\n{tails}"
                )
            if pending:
                time.sleep(0.2)


class ComposeStack:
    """The same stack under `docker compose` (needs a running Docker engine)."""

    def __init__(self, config: StackConfig, *, project: str) -> None:
        self.config = config
        self.project = project
        env = dict(config.base_env)
        env.update(
            API_KEY=config.api_key or config.client_keys[0],
            API_KEYS=",".join(config.api_keys),
            ADMIN_API_KEYS=",".join(config.admin_keys),
            SERVICE_TOKEN=config.service_token,
            GATEWAY_PORT=str(config.gateway_port),
            LOG_LEVEL=config.log_level,
        )
        self._env = env

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway_port}"

    def service_url(self, name: str) -> str | None:
        # Only the gateway is published; the services are reachable inside the network only.
        return self.gateway_url if name == GATEWAY else None

    def compose(self, *args: str, timeout_s: float = 900.0) -> None:
        """Run one `docker compose` command on this project."""
        argv = ["docker", "compose", "-f", str(REPO_ROOT / "compose.yaml"), "-p", self.project]
        try:
            subprocess.run(
                [*argv, *args], env=self._env, cwd=REPO_ROOT, check=True, timeout=timeout_s
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise StackError(f"`docker compose {' '.join(args)}` failed: {exc}") from exc

    def start(self) -> None:
        try:
            self.compose("up", "--detach", "--build", "--wait", "--wait-timeout", "600")
        except BaseException:
            self.close()
            raise

    def stop_service(self, name: str) -> None:
        self.compose("stop", name, timeout_s=60)

    def start_service(self, name: str) -> None:
        self.compose("up", "--detach", "--wait", "--no-deps", name, timeout_s=300)

    def close(self) -> None:
        with contextlib.suppress(StackError):
            self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout_s=120)


# --- the run command ----------------------------------------------------------------------------


def curl_lines(config: StackConfig) -> list[str]:
    """Shell lines that call the two classify routes through the gateway with a client key,
    sending the original deployment guide's verification requests (DESIGN §8)."""
    # Imported here, not at the top: the launcher itself runs (and reports what is missing)
    # even where the workspace packages are not installed.
    from sepsis_shared.patient import FLAT_EXAMPLE, STRUCTURED_EXAMPLE

    key = config.client_keys[0]
    lines = []
    for path, example in (("/classify", FLAT_EXAMPLE), ("/genai-classify", STRUCTURED_EXAMPLE)):
        body = json.dumps(example)
        argv = [
            "curl", "-sS", "-X", "POST", f"{config.gateway_url}{path}",
            "-H", "Content-Type: application/json", "-H", f"X-API-Key: {key}", "-d", body,
        ]  # fmt: skip
        lines.append(shlex.join(argv))
    return lines


def banner(stack: LocalStack, *, env_file: Path | None = None) -> str:
    """What the run command prints once everything is ready."""
    cfg = stack.config
    redis = stack.redis
    redis_line = "-"
    if redis is not None:
        redis_line = {
            "existing": f"{redis.url} (already running)",
            "launched": f"{redis.url} (started here, no persistence)",
            "missing": f"{redis.url} (not available: GenAI cache down)",
        }[redis.origin]
    rows = [
        "",
        "Sepsis early-warning stack is up.",
        f"  gateway        {cfg.gateway_url}   (Swagger UI: {cfg.gateway_url}/docs)",
    ]
    for name in (ML, GENAI):
        state = "not started: no app module yet" if name in stack.missing else "internal"
        rows.append(f"  {name:<14} {stack.service_url(name)}   ({state})")
    rows += [f"  redis          {redis_line}", f"  logs           {stack.log_dir}", ""]

    def origin(var: str) -> str:
        return "generated for this run" if var in cfg.generated else "from the environment"

    rows.append(f"  client key     {cfg.client_keys[0]}   ({origin('API_KEYS')})")
    for extra in cfg.client_keys[1:]:
        rows.append(f"  client key     {extra}")
    rows.append(f"  admin key      {cfg.admin_keys[0]}   ({origin('ADMIN_API_KEYS')})")
    rows.append(f"  service token  {cfg.service_token}   ({origin('SERVICE_TOKEN')})")
    rows += ["", "Try (ML pathway, then GenAI pathway):", *curl_lines(cfg), ""]
    if env_file is not None:
        rows.append(f"URLs and keys for another shell: source {env_file}")
    rows.append("Press Ctrl-C to stop everything started here.")
    return "\n".join(rows)


def write_env_file(stack: LocalStack) -> Path:
    """`.run/stack.env` (mode 0600) so another shell can `source` the URLs and keys."""
    cfg = stack.config
    values = {
        "GATEWAY_URL": cfg.gateway_url,
        "ML_SERVICE_URL": stack.service_url(ML) or "",
        "GENAI_SERVICE_URL": stack.service_url(GENAI) or "",
        "API_KEY": cfg.client_keys[0],
        "ADMIN_API_KEY": cfg.admin_keys[0],
        "SERVICE_TOKEN": cfg.service_token,
    }
    path = cfg.run_dir / "stack.env"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())
    return path


def supervise(
    processes: Mapping[str, ManagedProcess],
    restarts: dict[str, RestartBackoff],
    *,
    now: float,
    out: TextIO,
) -> None:
    """One look at every process: a dead one is reported with its status and log and started
    again once its back-off has passed (the gateway and the services wait for Redis and each
    other by themselves: they answer 503 until what they need is back)."""
    for name, process in list(processes.items()):
        code = process.exit_code()
        if code is None:
            continue
        backoff = restarts.setdefault(name, RestartBackoff())
        if backoff.due_at is None:
            up_for = now - (process.started_at if process.started_at is not None else now)
            delay = backoff.schedule(now=now, up_for_s=up_for)
            print(
                f"! {name} exited with status {code} after {up_for:.0f} s; restarting it in "
                f"{delay:.0f} s; its log ({process.log_path}) ends with:\n{process.log_tail(5)}",
                file=out,
                flush=True,
            )
        elif backoff.due(now):
            process.start()
            print(f"{name}: restarted (pid {process.pid})", file=out, flush=True)


class _Shutdown(Exception):
    """Raised from the signal handler to unwind into the cleanup."""


def _raise_shutdown(signum: int, _frame: FrameType | None) -> None:
    raise _Shutdown(signal.Signals(signum).name)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """Start the stack, print the keys and a working curl line, wait for Ctrl-C."""
    argparse.ArgumentParser(
        prog="scripts/run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_shutdown)
    stack: LocalStack | None = None
    env_file: Path | None = None
    try:
        stack = LocalStack(StackConfig.from_env(os.environ), out=sys.stderr)
        stack.start()
        env_file = write_env_file(stack)
        print(banner(stack, env_file=env_file), flush=True)  # noqa: T201
        restarts: dict[str, RestartBackoff] = {}
        while True:
            time.sleep(0.5)
            supervise(stack.processes, restarts, now=time.monotonic(), out=sys.stderr)
    except (_Shutdown, KeyboardInterrupt):
        print("\nstopping...", file=sys.stderr, flush=True)  # noqa: T201
        return 0
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)  # noqa: T201
        return 1
    finally:
        with _signals_ignored():
            if stack is not None:
                stack.close()
            if env_file is not None:
                env_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
