"""The run command's launcher (scripts/stack.py) without starting the stack: keys, ports,
each service's environment, the printed curl lines, and process-group cleanup."""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from sepsis_shared.patient import FLAT_EXAMPLE, STRUCTURED_EXAMPLE

EMPTY: dict[str, str] = {}


def test_keys_and_token_are_generated_when_unset(stack_launcher: ModuleType) -> None:
    config = stack_launcher.StackConfig.from_env(EMPTY)
    assert config.generated == {"API_KEYS", "ADMIN_API_KEYS", "SERVICE_TOKEN"}
    (client,) = config.client_keys
    (admin,) = config.admin_keys
    secrets = {client, admin, config.service_token}
    assert len(secrets) == 3
    assert all(len(s) >= 40 for s in secrets)
    again = stack_launcher.StackConfig.from_env(EMPTY)
    assert again.client_keys != config.client_keys


def test_keys_from_the_environment_take_precedence(stack_launcher: ModuleType) -> None:
    env = {
        "API_KEY": "legacy",
        "API_KEYS": "new, old,,legacy",
        "ADMIN_API_KEYS": "boss",
        "INTERNAL_SERVICE_TOKEN": "tok",
    }
    config = stack_launcher.StackConfig.from_env(env)
    assert config.client_keys == ("legacy", "new", "old")
    assert config.admin_keys == ("boss",)
    assert config.service_token == "tok"
    assert config.generated == frozenset()
    only_legacy = stack_launcher.StackConfig.from_env({"API_KEY": "solo"})
    assert only_legacy.client_keys == ("solo",)
    assert "API_KEYS" not in only_legacy.generated


def test_ports_come_from_the_environment(stack_launcher: ModuleType) -> None:
    env = {"GATEWAY_PORT": "9100", "ML_PORT": "9101", "GENAI_PORT": "9102", "REDIS_PORT": "9103"}
    config = stack_launcher.StackConfig.from_env(env)
    assert (config.gateway_port, config.ml_port, config.genai_port, config.redis_port) == (
        9100,
        9101,
        9102,
        9103,
    )
    assert config.gateway_url == "http://127.0.0.1:9100"
    defaults = stack_launcher.StackConfig.from_env(EMPTY)
    assert (defaults.gateway_port, defaults.ml_port, defaults.genai_port) == (8000, 8001, 8002)
    with pytest.raises(stack_launcher.StackError, match="GATEWAY_PORT"):
        stack_launcher.StackConfig.from_env({"GATEWAY_PORT": "eighty"})


def test_each_service_gets_only_what_it_needs(stack_launcher: ModuleType) -> None:
    env = {"API_KEY": "k", "ADMIN_API_KEYS": "a", "SERVICE_TOKEN": "t", "AZURE_OPENAI_MODEL": "m"}
    config = stack_launcher.StackConfig.from_env(env)
    redis = "redis://127.0.0.1:6390/0"
    ml = config.service_env("ml-service", redis_url=redis)
    genai = config.service_env("genai-service", redis_url=redis)
    gateway = config.service_env("gateway", redis_url=redis)
    for service_env in (ml, genai):
        # Client and admin keys stay at the gateway.
        assert not {"API_KEY", "API_KEYS", "ADMIN_API_KEYS"} & set(service_env)
    assert ml["SERVICE_TOKEN"] == genai["SERVICE_TOKEN"] == gateway["SERVICE_TOKEN"] == "t"
    assert genai["REDIS_URL"] == redis
    assert gateway["REDIS_URL"] == redis  # CDS Hooks feedback and seen JWT ids
    assert genai["AZURE_OPENAI_MODEL"] == "m"
    assert "GENAI_CACHE_ENABLED" not in genai
    assert gateway["API_KEY"] == "k"
    assert gateway["ADMIN_API_KEYS"] == "a"
    assert gateway["ML_SERVICE_URL"] == "http://127.0.0.1:8001"
    assert gateway["GENAI_SERVICE_URL"] == "http://127.0.0.1:8002"
    without_redis = config.service_env("genai-service", redis_url=redis, redis_available=False)
    assert without_redis["GENAI_CACHE_ENABLED"] == "false"


def test_curl_lines_send_the_guides_examples(stack_launcher: ModuleType) -> None:
    config = stack_launcher.StackConfig.from_env({"API_KEY": "key with 'quotes'"})
    classify, genai = (shlex.split(line) for line in stack_launcher.curl_lines(config))
    assert classify[classify.index("-X") + 1] == "POST"
    assert "http://127.0.0.1:8000/classify" in classify
    assert "X-API-Key: key with 'quotes'" in classify
    assert json.loads(classify[classify.index("-d") + 1]) == FLAT_EXAMPLE
    assert "http://127.0.0.1:8000/genai-classify" in genai
    assert json.loads(genai[genai.index("-d") + 1]) == STRUCTURED_EXAMPLE


def test_silent_redis_address_is_reported(stack_launcher: ModuleType) -> None:
    port = stack_launcher.free_port()
    assert stack_launcher.redis_answers(f"redis://127.0.0.1:{port}/0") is False


def test_missing_app_module_is_detected(stack_launcher: ModuleType) -> None:
    assert stack_launcher.package_has_app("sepsis_shared.errors")
    assert not stack_launcher.package_has_app("sepsis_shared.no_such_module")
    assert not stack_launcher.package_has_app("no_such_package.app")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_stopping_a_process_stops_its_whole_group(
    stack_launcher: ModuleType, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    # A child that starts a grandchild ignoring SIGTERM, then waits on it.
    script = (
        "import signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "child.wait()\n"
    )
    process = stack_launcher.ManagedProcess(
        "family", [sys.executable, "-c", script], env=os.environ, log_path=tmp_path / "log"
    )
    process.start()
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, process.log_tail()
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    assert _alive(grandchild)
    process.stop(timeout_s=2.0)
    assert not process.running()
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_without_redis_the_stack_says_how_to_get_it(
    stack_launcher: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = stack_launcher.free_port()  # nothing answers there
    config = stack_launcher.StackConfig.from_env({"REDIS_PORT": str(port)})
    out = io.StringIO()
    stack = stack_launcher.LocalStack(config, out=out)
    monkeypatch.setattr(stack_launcher.shutil, "which", lambda _: None)
    plan = stack._ensure_redis()
    assert plan.origin == "missing"
    assert plan.url == f"redis://127.0.0.1:{port}/0"
    assert "apt-get install redis-server" in out.getvalue()
    assert not stack.processes  # nothing was launched


def test_restart_backoff_doubles_to_its_bound_and_starts_afresh_after_a_stable_run(
    stack_launcher: ModuleType,
) -> None:
    backoff = stack_launcher.RestartBackoff(first_s=1.0, max_s=8.0, stable_s=60.0)
    quick = [backoff.schedule(now=0.0, up_for_s=2.0) for _ in range(6)]
    assert quick == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.schedule(now=0.0, up_for_s=600.0) == 1.0
    assert (backoff.due(0.5), backoff.due(1.0), backoff.due(5.0)) == (False, True, False)


def test_a_process_that_dies_is_reported_and_started_again_after_its_backoff(
    stack_launcher: ModuleType, tmp_path: Path
) -> None:
    marker = tmp_path / "starts"
    argv = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x'); raise SystemExit(3)"]
    process = stack_launcher.ManagedProcess(
        "ml-service", argv, env=dict(os.environ), log_path=tmp_path / "ml.log"
    )
    process.start()
    deadline = time.monotonic() + 30
    while process.exit_code() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    restarts: dict[str, object] = {}
    out = io.StringIO()
    processes = {"ml-service": process}
    supervise = stack_launcher.supervise
    supervise(processes, restarts, now=100.0, out=out)  # noticed: restart due at 101
    supervise(processes, restarts, now=100.5, out=out)  # not yet
    assert marker.read_text() == "x"
    supervise(processes, restarts, now=101.0, out=out)  # restarted
    while process.exit_code() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert marker.read_text() == "xx"
        report = out.getvalue()
        assert "ml-service exited with status 3" in report
        assert "restarting it in 1 s" in report
        assert "ml-service: restarted" in report
    finally:
        process.stop()
