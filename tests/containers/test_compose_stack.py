"""The compose stack of the built images: genai-service scaled on its own with requests
spread over its replicas, and containers killed under load with the stack recovering.

Load here is bounded in requests and time and goes to the gateway on 127.0.0.1 only. Waits
are bounded polls for a state, never timing assertions.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sepsis_shared.patient import FLAT_EXAMPLE, STRUCTURED_EXAMPLE

if TYPE_CHECKING:
    from testcontainers.compose import ComposeContainer

    from tests.containers.compose_stack import ComposeStack

GENAI_REPLICAS = 3
WORKERS = 8
RECOVERY_WAIT_S = 90.0


def wait_for(what: str, probe: Callable[[], Any], *, within_s: float) -> Any:
    deadline = time.monotonic() + within_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"{what}: not seen within {within_s:.0f} s (last: {last!r})")


def patient(i: int) -> dict[str, Any]:
    """The guide's patient with a different heart rate each time (no two share a cache key)."""
    body = json.loads(json.dumps(STRUCTURED_EXAMPLE))
    body["vitals"]["HR"] = 60 + i % 100
    body["vitals"]["Temp"] = 36.0 + (i // 100) % 30 / 10
    return dict(body)


def genai_requests_served(stack: ComposeStack) -> Counter[str]:
    """/genai-classify calls each genai-service replica has logged (its access lines)."""
    counts: Counter[str] = Counter()
    for container in stack.containers("genai-service"):
        logs = stack.client.client.api.logs(container.ID, stdout=True, stderr=True).decode()
        counts[str(container.Name)] = sum(
            1 for line in logs.splitlines() if '"route":"/genai-classify"' in line
        )
    return counts


@dataclass
class Load:
    """Requests sent by a bounded background load, each with its status and when it ended."""

    results: list[tuple[float, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, path: str, status: int) -> None:
        with self.lock:
            self.results.append((time.monotonic(), path, status))

    def statuses(
        self, path: str, *, after: float = 0.0, before: float = float("inf")
    ) -> Counter[int]:
        with self.lock:
            return Counter(s for t, p, s in self.results if p == path and after <= t < before)


@contextmanager
def load(url: str, key: str, *, seconds: float, max_requests: int) -> Iterator[Load]:
    """WORKERS clients alternating /classify and /genai-classify until `seconds` pass or
    `max_requests` are sent; a refused connection or a timeout counts as status 0."""
    record = Load()
    stop = threading.Event()
    sent = iter(range(max_requests))
    deadline = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=15.0) as client:
            for i in sent:
                if stop.is_set() or time.monotonic() > deadline:
                    return
                path = "/genai-classify" if i % 2 else "/classify"
                body = patient(i) if i % 2 else dict(FLAT_EXAMPLE)
                try:
                    status = client.post(path, json=body).status_code
                except httpx.HTTPError:
                    status = 0
                record.record(path, status)

    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(worker) for _ in range(WORKERS)]
        try:
            yield record
        finally:
            stop.set()
            for future in futures:
                future.result()


@pytest.fixture(scope="module")
def scaled(stack: ComposeStack) -> ComposeStack:
    scale = f"genai-service={GENAI_REPLICAS}"
    stack.run("up", "--detach", "--no-build", "--no-recreate", "--wait", "--scale", scale)
    stack.wait_healthy()
    assert len(stack.containers("genai-service")) == GENAI_REPLICAS
    assert len(stack.containers("ml-service")) == 1
    return stack


def test_genai_service_scales_alone_and_requests_spread(
    scaled: ComposeStack, gateway: httpx.Client
) -> None:
    before = genai_requests_served(scaled)
    sent = 0
    # Concurrent callers open connections to each address the gateway resolves; keep sending
    # (bounded) until every replica has answered a share, or fail with the spread seen.
    with ThreadPoolExecutor(WORKERS) as pool:
        for _ in range(10):
            numbers = range(sent, sent + 48)
            batch = list(
                pool.map(lambda i: gateway.post("/genai-classify", json=patient(i)), numbers)
            )
            assert all(r.status_code == 200 for r in batch), [r.text for r in batch][:2]
            sent += len(batch)
            spread = genai_requests_served(scaled) - before
            if len(spread) == GENAI_REPLICAS and min(spread.values()) >= sent // 10:
                break
    print(f"{sent} /genai-classify requests over {GENAI_REPLICAS} replicas: {dict(spread)}")  # noqa: T201
    assert len(spread) == GENAI_REPLICAS, spread
    assert sum(spread.values()) == sent
    assert min(spread.values()) >= sent // 10, f"not spread: {dict(spread)}"


def crash(stack: ComposeStack, container: ComposeContainer) -> None:
    """SIGKILL to the container's main process from the host, as the OOM killer would send it.
    (A kill through the engine's API counts as an operator's stop, which a restart policy
    leaves stopped; a crash is what it is for.)"""
    pid = stack.inspect(container)["State"]["Pid"]
    assert pid > 0, f"{container.Name} has no process on this host"
    os.kill(pid, signal.SIGKILL)


def _restarted(stack: ComposeStack, name: str, restarts_before: int) -> bool:
    (container,) = [c for c in stack.containers() if c.Name == name]
    state = stack.inspect(container)
    health = (state["State"].get("Health") or {}).get("Status")
    return bool(state["RestartCount"] > restarts_before and health == "healthy")


def test_a_genai_replica_killed_under_load_costs_few_requests(
    scaled: ComposeStack, gateway: httpx.Client, keys: dict[str, str]
) -> None:
    victim = scaled.containers("genai-service")[0]
    restarts = scaled.inspect(victim)["RestartCount"]
    with load(scaled.gateway_url, keys["API_KEY"], seconds=60, max_requests=10_000) as record:
        time.sleep(4)
        killed_at = time.monotonic()
        crash(scaled, victim)
        wait_for(
            "the killed replica restarted by compose's restart policy and healthy",
            lambda: _restarted(scaled, str(victim.Name), restarts),
            within_s=RECOVERY_WAIT_S,
        )
        recovered_at = time.monotonic()
        time.sleep(3)
    genai = record.statuses("/genai-classify")
    ml = record.statuses("/classify")
    after = record.statuses("/genai-classify", after=recovered_at + 1)
    print(  # noqa: T201
        f"killed {victim.Name}: back healthy {recovered_at - killed_at:.1f} s later; "
        f"/genai-classify {dict(genai)}, /classify {dict(ml)}, after recovery {dict(after)}"
    )
    assert set(genai) <= {200, 502, 503, 504}, genai  # failures are clear answers, not hangs
    assert genai[200] >= 0.9 * sum(genai.values()), genai  # two replicas carried on
    assert set(ml) == {200}, ml  # the ML pathway never noticed
    assert after, "no /genai-classify answer after the recovery"
    assert set(after) == {200}, after
    assert gateway.get("/health").json()["upstreams"]["genai"]["status"] == "up"


def test_the_only_ml_service_killed_under_load_fails_fast_and_recovers(
    scaled: ComposeStack, keys: dict[str, str]
) -> None:
    (victim,) = scaled.containers("ml-service")
    restarts = scaled.inspect(victim)["RestartCount"]
    with load(scaled.gateway_url, keys["API_KEY"], seconds=90, max_requests=10_000) as record:
        time.sleep(3)
        crash(scaled, victim)
        wait_for(
            "ml-service restarted and healthy",
            lambda: _restarted(scaled, str(victim.Name), restarts),
            within_s=RECOVERY_WAIT_S,
        )
        recovered_at = time.monotonic()
        wait_for(
            "/classify answering 200 again through the gateway",
            lambda: record.statuses("/classify", after=time.monotonic() - 1)[200],
            within_s=RECOVERY_WAIT_S,
        )
        back_at = time.monotonic()
        time.sleep(4)
    ml = record.statuses("/classify")
    genai = record.statuses("/genai-classify")
    print(f"ml-service killed: /classify {dict(ml)}, /genai-classify {dict(genai)}")  # noqa: T201
    assert ml[503] > 0, ml  # the outage was answered as such (upstream unavailable) ...
    assert 0 not in ml, ml  # ... fast: no client timed out or was refused
    assert set(ml) <= {200, 502, 503, 504}, ml
    assert set(genai) == {200}, genai  # GenAI does not depend on ml-service
    settled = record.statuses("/classify", after=back_at + 1)
    assert settled, "no /classify answer once it was back"
    assert set(settled) == {200}, settled
    print(f"ml-service back healthy, /classify 200 again {back_at - recovered_at:.1f} s later")  # noqa: T201
