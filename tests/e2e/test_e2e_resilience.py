"""Failure and recovery: ml-service stops mid-run and comes back.

Waits here are bounded polls for a state to appear, never timing assertions. The one bound that
matters to a client is the request timeout: a gateway that hung on a dead upstream would blow
it and fail the test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sepsis_shared.patient import STRUCTURED_EXAMPLE

if TYPE_CHECKING:
    from scripts.stack import StackHandle

pytestmark = pytest.mark.e2e

# The vitals of the original deployment guide's /genai-classify request (DESIGN §8), sent flat.
PATIENT = dict(STRUCTURED_EXAMPLE["vitals"])
# A client of a dead upstream must get its answer well inside this (the ML read timeout is
# longer; a refused connection must not wait for it).
FAST_FAILURE_TIMEOUT_S = 5.0
RECOVERY_WAIT_S = 60.0


def wait_for(what: str, probe: Callable[[], Any], *, within_s: float) -> Any:
    """Poll `probe` until it returns something truthy; fail after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    pytest.fail(f"{what}: not seen within {within_s:.0f} s (last: {last!r})")


def ml_health(gateway: httpx.Client) -> dict[str, Any]:
    response = gateway.get("/health")
    assert response.status_code == 200  # whatever the upstreams do
    body: dict[str, Any] = response.json()
    return body


def test_ml_service_stops_and_comes_back(
    stack: StackHandle, gateway: httpx.Client, client_key: str
) -> None:
    headers = {"X-API-Key": client_key}
    assert gateway.post("/classify", json=PATIENT, headers=headers).status_code == 200

    stack.stop_service("ml-service")
    try:
        with httpx.Client(base_url=stack.gateway_url, timeout=FAST_FAILURE_TIMEOUT_S) as quick:
            for _ in range(3):  # first failures and then the open circuit both answer fast
                response = quick.post("/classify", json=PATIENT, headers=headers)
                assert response.status_code == 503, response.text
                error = response.json()["error"]
                assert error["code"] == "upstream_unavailable"
                assert error["request_id"] == response.headers["X-Request-ID"]
                assert "ml" in error["message"].lower()

        body = wait_for(
            "/health reporting ml down",
            lambda: (b := ml_health(gateway))["upstreams"]["ml"]["status"] == "down" and b,
            within_s=RECOVERY_WAIT_S,
        )
        assert body["status"] == "healthy"
        assert "ml" in body["unavailable"]
        assert body["upstreams"]["genai"]["status"] == "up"

        # The GenAI pathway does not depend on ml-service and keeps serving.
        genai = gateway.post("/genai-classify", json=PATIENT, headers=headers)
        assert genai.status_code == 200, genai.text
    finally:
        stack.start_service("ml-service")

    wait_for(
        "/classify answering 200 again",
        lambda: gateway.post("/classify", json=PATIENT, headers=headers).status_code == 200,
        within_s=RECOVERY_WAIT_S,
    )
    body = wait_for(
        "/health reporting ml up",
        lambda: (b := ml_health(gateway))["upstreams"]["ml"]["status"] == "up" and b,
        within_s=RECOVERY_WAIT_S,
    )
    assert "ml" not in body["unavailable"]
