"""`/performance` figures, the rate limiter's refill and the access log (the latency histogram
is tested with `sepsis_shared.metrics`)."""

from __future__ import annotations

import json

import pytest

from sepsis_gateway.metrics import Metrics
from sepsis_gateway.ratelimit import RateLimiter


async def test_performance_counts_requests_errors_and_latency_per_route(stack):
    client = await stack.start()
    headers = {"X-API-Key": stack.client_key}
    for _ in range(5):
        assert (await client.post("/classify", content=b"{}", headers=headers)).status_code == 200
    await client.post("/classify", content=b"{}")  # 401
    stack.ml.canned["/classify-batch"] = stack.canned(status=500, body=b'{"error": {}}')
    await client.post("/classify-batch", content=b"[]", headers=headers)
    await client.get("/nowhere")

    r = await client.get("/performance", headers=headers)
    assert r.status_code == 200
    body = r.json()
    classify = body["routes"]["/classify"]
    assert classify["count"] == 6
    assert classify["client_errors_4xx"] == 1
    assert classify["server_errors_5xx"] == 0
    assert classify["error_rate"] == pytest.approx(1 / 6, abs=1e-3)
    latency = classify["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert body["routes"]["/classify-batch"]["server_errors_5xx"] == 1
    assert body["routes"]["(unmatched)"]["count"] == 1
    assert "/nowhere" not in body["routes"]
    assert body["upstream_calls"]["ml"]["count"] == 6  # 5 + the batch; the 401 never left
    assert body["totals"]["count"] == 8
    # Each upstream's own figures, fetched with the service token.
    assert body["upstreams"]["ml"]["status"] == "available"
    assert body["upstreams"]["ml"]["routes"]["/classify"]["count"] == 7
    fetch = next(c for c in stack.ml.received if c.path == "/performance")
    assert fetch.headers["x-service-token"] == stack.token


async def test_performance_says_which_upstream_is_unavailable(stack):
    await stack.genai.stop()
    client = await stack.start()
    body = (await client.get("/performance", headers={"X-API-Key": stack.client_key})).json()
    assert body["upstreams"]["genai"]["status"] == "unavailable"
    assert body["upstreams"]["genai"]["code"] == "upstream_unavailable"
    assert body["upstreams"]["ml"]["status"] == "available"


async def test_performance_needs_a_key(stack):
    client = await stack.start()
    assert (await client.get("/performance")).status_code == 401


def test_metrics_route_names_stay_bounded():
    metrics = Metrics()
    for route in ("/classify", "(unmatched)"):
        for _ in range(3):
            metrics.record(route, 200, 1.0)
    assert set(metrics.snapshot()["routes"]) == {"/classify", "(unmatched)"}


def test_rate_limiter_refills_over_time():
    now = [0.0]
    limiter = RateLimiter(per_minute=60, capacity=2, clock=lambda: now[0])
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") == 0.0
    wait = limiter.acquire("k")
    assert wait == pytest.approx(1.0)
    now[0] = 0.5
    assert limiter.acquire("k") == pytest.approx(0.5)
    now[0] = 1.0
    assert limiter.acquire("k") == 0.0
    now[0] = 100.0  # a long pause refills only up to the capacity
    assert [limiter.acquire("k") for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.acquire("other") == 0.0


async def test_access_log_is_one_json_line_per_request_without_keys_or_bodies(stack, capsys):
    client = await stack.start(log_format="json", log_level="INFO")
    secret_body = b'{"notes": "patient-secret-note"}'
    await client.post(
        "/classify",
        content=secret_body,
        headers={"X-API-Key": stack.client_key, "X-Request-ID": "trace-77"},
    )
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "sepsis.gateway.access"]
    assert len(access) == 1
    (entry,) = access
    assert entry["route"] == "/classify"
    assert entry["status"] == 200
    assert entry["upstream"] == "ml"
    assert entry["request_id"] == "trace-77"
    assert entry["duration_ms"] > 0
    assert entry["bytes_in"] == len(secret_body)
    assert stack.client_key not in err
    assert "patient-secret-note" not in err
