"""Upstream failures: 503 when down, 504 on timeout, 502 on a broken answer, the circuit
breaker opening and closing again, and `/health` saying which upstream is down."""

from __future__ import annotations

import asyncio
import time

from sepsis_gateway.upstream import CircuitBreaker, CircuitState, Upstream

KEY = "X-API-Key"


async def _wait_for(predicate, *, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_ml_down_is_a_fast_503_naming_it_and_health_stays_200(stack):
    await stack.ml.stop()
    client = await stack.start()
    started = time.monotonic()
    r = await client.post("/classify", content=b"{}", headers={KEY: stack.client_key})
    # Generous bound: a refused connection is answered at once, far from the 10 s timeout.
    assert time.monotonic() - started < 2.0
    assert r.status_code == 503
    error = stack.envelope(r)
    assert error["code"] == "upstream_unavailable"
    assert error["details"]["upstream"] == "ml"
    assert "ml-service" in error["message"]
    assert "Errno" not in error["message"]

    health = await client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "healthy"
    assert body["upstreams"]["ml"]["status"] == "down"
    assert body["unavailable"] == ["ml", "genai"] or "ml" in body["unavailable"]
    # GenAI still works while ML is down.
    r = await client.post("/genai-classify", content=b"{}", headers={KEY: stack.client_key})
    assert r.status_code == 200


async def test_genai_down_does_not_fail_health_or_ml(stack):
    await stack.genai.stop()
    client = await stack.start(health_probe_interval_s=0.05)

    async def genai_reported_down() -> bool:
        h = (await client.get("/health")).json()
        return (
            h["upstreams"]["genai"]["status"] == "down" and h["upstreams"]["ml"]["status"] == "up"
        )

    await _wait_for(genai_reported_down)
    body = (await client.get("/health")).json()
    assert body["status"] == "healthy"
    assert body["unavailable"] == ["genai"]
    assert body["upstreams"]["genai"]["last_checked"] is not None
    assert (await client.get("/genai-health")).status_code == 503
    r = await client.post("/classify", content=b"{}", headers={KEY: stack.client_key})
    assert r.status_code == 200


async def test_slow_upstream_is_a_504_within_its_timeout(stack):
    stack.ml.canned["/classify"] = stack.canned(delay_s=5.0, body=b"{}")
    client = await stack.start(ml_timeout_s=0.3)
    started = time.monotonic()
    r = await client.post("/classify", content=b"{}", headers={KEY: stack.client_key})
    assert time.monotonic() - started < 3.0
    assert r.status_code == 504
    error = stack.envelope(r)
    assert error["code"] == "upstream_timeout"
    assert error["details"] == {"upstream": "ml"}


async def test_genai_has_its_own_longer_timeout(stack):
    stack.ml.canned["/classify"] = stack.canned(delay_s=0.5, body=b"{}")
    stack.genai.canned["/genai-classify"] = stack.canned(delay_s=0.5, body=b"{}")
    client = await stack.start(ml_timeout_s=0.2, genai_timeout_s=5.0)
    ml = await client.post("/classify", content=b"{}", headers={KEY: stack.client_key})
    genai = await client.post("/genai-classify", content=b"{}", headers={KEY: stack.client_key})
    assert (ml.status_code, genai.status_code) == (504, 200)


async def test_garbage_instead_of_http_is_a_502(stack):
    async def speak_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"THIS IS NOT HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(speak_garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = await stack.start(ml_service_url=f"http://127.0.0.1:{port}")
        r = await client.post("/classify", content=b"{}", headers={KEY: stack.client_key})
        assert r.status_code == 502
        error = stack.envelope(r)
        assert error["code"] == "upstream_error"
        assert error["details"]["upstream"] == "ml"
    finally:
        server.close()
        await server.wait_closed()


async def test_circuit_opens_fails_fast_then_recovers_through_a_half_open_probe(stack):
    port = stack.free_port()
    client = await stack.start(
        ml_service_url=f"http://127.0.0.1:{port}",
        circuit_failure_threshold=3,
        circuit_cooldown_s=30.0,
    )
    breaker = stack.gateway().upstreams["ml"].breaker
    now = [time.monotonic()]
    breaker.clock = lambda: now[0]
    headers = {KEY: stack.client_key}
    # Connection failures (the startup probe's included) open the circuit at the third.
    tried = 0
    while True:
        r = await client.post("/classify", content=b"{}", headers=headers)
        assert r.status_code == 503
        if r.json()["error"]["details"].get("circuit") == "open":
            break
        assert r.json()["error"]["details"] == {"upstream": "ml"}
        tried += 1
        assert tried <= 3
    assert tried >= 1
    assert (await client.get("/health")).json()["upstreams"]["ml"]["circuit"] == "open"

    # Open: the gateway answers without trying the upstream, and says when to retry.
    revived = stack.fake("ml", stack.ml_routes, port=port)
    await revived.start()
    try:
        r = await client.post("/classify", content=b"{}", headers=headers)
        assert r.status_code == 503
        assert r.json()["error"]["details"] == {"upstream": "ml", "circuit": "open"}
        assert int(r.headers["retry-after"]) >= 1
        assert revived.public_calls() == []

        # After the cool-down one call goes through as the probe and closes the circuit.
        now[0] += 31.0
        r = await client.post("/classify", content=b"{}", headers=headers)
        assert r.status_code == 200
        health = (await client.get("/health")).json()["upstreams"]["ml"]
        assert (health["status"], health["circuit"]) == ("up", "closed")
        assert len(revived.public_calls()) == 1
    finally:
        await revived.stop()


async def test_health_probe_closes_the_circuit_and_refreshes_docs_when_upstream_returns(stack):
    port = stack.free_port()
    client = await stack.start(
        ml_service_url=f"http://127.0.0.1:{port}",
        circuit_failure_threshold=1,
        circuit_cooldown_s=3600.0,
        health_probe_interval_s=0.05,
    )
    r = await client.post("/classify", content=b"{}", headers={KEY: stack.client_key})
    assert r.status_code == 503
    doc = (await client.get("/openapi.json")).json()
    assert "ml" in doc["x-upstreams-missing"]

    revived = stack.fake("ml", stack.ml_routes, port=port)
    await revived.start()
    try:

        async def ml_back() -> bool:
            h = (await client.get("/health")).json()["upstreams"]["ml"]
            return h["status"] == "up" and h["circuit"] == "closed"

        # The cool-down is an hour: only the background probe can have closed it.
        await _wait_for(ml_back)
        r = await client.post("/classify", content=b"{}", headers={KEY: stack.client_key})
        assert r.status_code == 200

        async def docs_complete() -> bool:
            return (await client.get("/openapi.json")).json()["x-upstreams-missing"] == []

        await _wait_for(docs_complete)
    finally:
        await revived.stop()


async def test_service_answering_not_ready_is_reported_down_with_the_reason(stack):
    stack.ml.ready_status = 503
    client = await stack.start()
    await stack.gateway().upstreams["ml"].probe(timeout_s=1.0)
    h = (await client.get("/health")).json()["upstreams"]["ml"]
    assert h["status"] == "down"
    assert "not ready" in h["reason"]
    assert h["circuit"] == "closed"


async def test_lifespan_exit_stops_the_probe_task(stack):
    await stack.start(health_probe_interval_s=0.05)
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "gateway-upstream-probe"]
    assert len(tasks) == 1
    await stack.close()
    assert tasks[0].done()


def test_breaker_allows_a_single_probe_when_half_open():
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown_s=10.0, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after_s() == 10
    now[0] = 10.0
    assert breaker.view() is CircuitState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else waits for its verdict
    breaker.record_failure()  # probe failed: open again for a full cool-down
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()
    now[0] = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_breaker_releases_the_probe_slot_when_the_probe_is_abandoned():
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, cooldown_s=1.0, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 1.0
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


async def test_a_defect_in_the_forwarding_path_is_a_500_envelope_and_is_logged(
    stack, monkeypatch, caplog
):
    async def broken_call(*_: object, **__: object) -> None:
        raise RuntimeError("a defect")

    monkeypatch.setattr(Upstream, "call", broken_call)
    client = await stack.start()
    r = await client.post(
        "/classify", content=b"{}", headers={KEY: stack.client_key, "X-Request-ID": "rid-500"}
    )
    assert r.status_code == 500
    error = stack.envelope(r)
    assert error["code"] == "internal_error"
    assert "a defect" not in r.text  # the trace goes to the log, never to the client
    assert error["request_id"] == "rid-500"
    assert r.headers["x-request-id"] == "rid-500"
    assert any(rec.name == "sepsis.gateway.proxy" and rec.exc_info for rec in caplog.records), (
        "the defect is logged with its trace"
    )
    # the rest of the gateway is unaffected
    assert (await client.get("/health")).status_code == 200
