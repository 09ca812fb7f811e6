"""Faults of what the GenAI pathway depends on, through the gateway: an LLM that fails in each
way answers degraded and says so, never a silent 200; an LLM that hangs does not take health
or admin calls with it, and the calls past the service's limit are shed with a clear 503;
genai-service stopped and started again is reported and recovered from.

Waits are bounded polls for a state, never timing assertions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.test_e2e_resilience import FAST_FAILURE_TIMEOUT_S, RECOVERY_WAIT_S, wait_for

if TYPE_CHECKING:
    from scripts.stack import StackHandle
    from tests.e2e.conftest import LLMSetup

pytestmark = pytest.mark.e2e

SHOCK = {"HR": 128, "SBP": 78, "MAP": 55, "Resp": 28, "Lactate": 5.1, "Temp": 38.9}
# genai-service's defaults: calls in flight and waiting before it sheds (GENAI_MAX_*).
LLM_SLOTS = 64 + 32


@pytest.fixture
def fake_llm(llm: LLMSetup) -> Iterator[httpx.Client]:
    """The fake LLM server's admin routes, reset after each test."""
    if llm.origin is None:
        pytest.skip("the LLM faults are scripted on the local fake LLM server (STACK=local)")
    with httpx.Client(base_url=llm.origin, timeout=10) as admin:
        admin.post("/_admin/reset").raise_for_status()
        yield admin
        admin.post("/_admin/release")
        admin.post("/_admin/reset").raise_for_status()


def _patient(i: int) -> dict[str, Any]:
    # a different patient each time: no cached answer, no shared call
    return {**SHOCK, "HR": 100 + i % 60, "Temp": round(38.0 + (i % 17) / 10, 1), "Age": 20 + i}


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        ({"kind": "status", "status": 500}, "failed"),
        ({"kind": "status", "status": 429, "retry_after": 1}, "rate_limited"),
        ({"kind": "invalid_json"}, "invalid_output"),
    ],
    ids=["500", "429", "invalid JSON"],
)
def test_a_failing_llm_gives_a_degraded_answer_that_says_so(
    gateway: httpx.Client,
    client_key: str,
    fake_llm: httpx.Client,
    behaviour: dict[str, Any],
    status: str,
    request: pytest.FixtureRequest,
) -> None:
    fake_llm.post("/_admin/config", json={"default": behaviour}).raise_for_status()
    index = 1000 + len(request.node.name)  # apart from the other tests' patients
    response = gateway.post(
        "/genai-classify", json=_patient(index), headers={"X-API-Key": client_key}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["degraded"] is True
    assert body["llm"]["status"] == status
    assert body["priority"] in ("Critical", "Urgent")  # the guardrail's floor, not the LLM's
    assert "unavailable" in body["rationale"]


async def _hanging_load(gateway_url: str, key: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post("/genai-classify", json=_patient(i), headers={"X-API-Key": key})
                for i in range(n)
            )
        )


def test_a_hanging_llm_sheds_calls_past_the_limit_and_health_keeps_answering(
    stack: StackHandle,
    client_key: str,
    admin_key: str,
    fake_llm: httpx.Client,
) -> None:
    fake_llm.post("/_admin/hold").raise_for_status()
    n = LLM_SLOTS + 12
    pool = ThreadPoolExecutor(max_workers=1)
    load = pool.submit(asyncio.run, _hanging_load(stack.gateway_url, client_key, n))
    try:
        wait_for(
            "the LLM calls of genai-service all in use",
            lambda: fake_llm.get("/_admin/stats").json().get("in_flight", 0) >= 64,
            within_s=RECOVERY_WAIT_S,
        )
        with httpx.Client(base_url=stack.gateway_url, timeout=FAST_FAILURE_TIMEOUT_S) as quick:
            health = quick.get("/health")
            genai_health = quick.get("/genai-health")
            thresholds = quick.get("/genai-guardrail/thresholds", headers={"X-API-Key": client_key})
            reload = quick.post("/genai-guardrail/reload", headers={"X-API-Key": admin_key})
        assert health.status_code == 200
        assert health.json()["upstreams"]["genai"]["status"] == "up"
        assert genai_health.status_code == 200
        assert thresholds.status_code == 200
        assert reload.status_code == 200, reload.text
    finally:
        fake_llm.post("/_admin/release").raise_for_status()
        responses = load.result(timeout=120)
        pool.shutdown()
    statuses = sorted(r.status_code for r in responses)
    shed = [r for r in responses if r.status_code == 503]
    assert len(shed) >= n - LLM_SLOTS, statuses
    assert {r.json()["error"]["code"] for r in shed} == {"llm_overloaded"}
    assert all(r.headers.get("Retry-After") for r in shed)
    answered = [r for r in responses if r.status_code == 200]
    assert len(answered) + len(shed) == n, statuses
    assert all(r.json()["llm"]["status"] == "ok" for r in answered)


def test_genai_service_stops_and_comes_back(
    stack: StackHandle, gateway: httpx.Client, client_key: str
) -> None:
    headers = {"X-API-Key": client_key}
    stack.stop_service("genai-service")
    try:
        with httpx.Client(base_url=stack.gateway_url, timeout=FAST_FAILURE_TIMEOUT_S) as quick:
            response = quick.post("/genai-classify", json=_patient(5000), headers=headers)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "upstream_unavailable"
            assert quick.post("/classify", json=SHOCK, headers=headers).status_code == 200
        wait_for(
            "/health reporting genai down",
            lambda: gateway.get("/health").json()["upstreams"]["genai"]["status"] == "down",
            within_s=RECOVERY_WAIT_S,
        )
    finally:
        stack.start_service("genai-service")
    wait_for(
        "/genai-classify answering 200 again",
        lambda: (
            gateway.post("/genai-classify", json=_patient(5001), headers=headers).status_code == 200
        ),
        within_s=RECOVERY_WAIT_S,
    )
    wait_for(
        "/health reporting genai up",
        lambda: gateway.get("/health").json()["upstreams"]["genai"]["status"] == "up",
        within_s=RECOVERY_WAIT_S,
    )
