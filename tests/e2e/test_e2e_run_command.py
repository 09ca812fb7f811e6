"""The README's run command itself: it starts the stack with generated keys, prints curl lines
that work, and Ctrl-C stops everything it started."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Press Ctrl-C"
START_WAIT_S = 180.0  # includes `uv sync`, a no-op when the environment is current
STOP_WAIT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def children(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc), [] where that is not available."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(p) for p in task.read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    # A zombie has exited; only its parent's bookkeeping is left.
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def replay(line: str) -> httpx.Response:
    """Send what a printed curl line sends (with curl itself when it is installed)."""
    argv = shlex.split(line)
    assert argv[0] == "curl"
    method, url, headers, data = "GET", "", {}, ""
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "-X":
            method = next(rest)
        elif arg == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = next(rest)
        elif arg.startswith("http"):
            url = arg
    if shutil.which("curl") is not None:
        done = subprocess.run(
            [*argv, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=60, check=True
        )
        body, _, status = done.stdout.rpartition("\n")
        return httpx.Response(int(status), content=body.encode())
    return httpx.request(method, url, headers=headers, content=data.encode(), timeout=60)


def test_run_command_prints_working_curl_lines_and_stops_cleanly(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    if os.environ.get("STACK", "local") != "local":
        pytest.skip("the run command starts local processes; STACK selects another stack")
    ports = {name: free_port() for name in ("GATEWAY_PORT", "ML_PORT", "GENAI_PORT")}
    env = {**clean_env, **{k: str(v) for k, v in ports.items()}}
    env.update(STACK_RUN_DIR=str(tmp_path / "run"), LLM_PROVIDER="offline")
    if shutil.which("redis-server") is not None:
        ports["REDIS_PORT"] = free_port()
        env["REDIS_PORT"] = str(ports["REDIS_PORT"])
    output = tmp_path / "run.out"
    with output.open("w") as sink:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "run")],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_WAIT_S
        while READY_LINE not in output.read_text():
            assert proc.poll() is None, f"scripts/run exited:\n{output.read_text()}"
            assert time.monotonic() < deadline, f"no banner:\n{output.read_text()}"
            time.sleep(0.25)
        text = output.read_text()

        # No key in the environment: one was generated, printed, and the curl lines carry it.
        assert "generated for this run" in text
        key = next(ln.split()[2] for ln in text.splitlines() if ln.strip().startswith("client key"))
        curls = [ln for ln in text.splitlines() if ln.startswith("curl ")]
        assert len(curls) == 2
        for line, path in zip(curls, ("/classify", "/genai-classify"), strict=True):
            assert f"http://127.0.0.1:{ports['GATEWAY_PORT']}{path}" in line
            assert f"X-API-Key: {key}" in line
            response = replay(line)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = json.loads(response.content)
            assert 0 <= body["risk_score"] <= 100
        assert (tmp_path / "run" / "stack.env").exists()

        started = children(proc.pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=STOP_WAIT_S) == 0, output.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # Everything it started is gone: its processes, their ports, the file holding the keys.
    assert not [pid for pid in started if alive(pid)]
    assert not [name for name, port in ports.items() if listening(port)]
    assert not (tmp_path / "run" / "stack.env").exists()
