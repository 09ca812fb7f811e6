"""Hostile and unlucky callers: ambiguous keys, bodies that are not JSON or never finish, and
classification traffic stuck behind a hanging upstream while health and admin calls go on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sepsis_shared.settings import CALLER_ROLE_HEADER


@pytest.mark.parametrize("path", ["/classify", "/performance"])
async def test_two_key_headers_are_refused_even_when_one_is_valid(stack, path):
    client = await stack.start()
    keys = [("X-API-Key", "not-a-key-at-all-0123456789"), ("X-API-Key", stack.client_key)]
    method = "POST" if path == "/classify" else "GET"
    r = await client.request(
        method, path, content=b"{}" if method == "POST" else None, headers=keys
    )
    assert r.status_code == 401
    assert "exactly one" in stack.envelope(r)["message"]
    assert stack.ml.public_calls() == []


@pytest.mark.parametrize("media", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_declared_as_another_type_is_a_415_and_is_not_forwarded(stack, media):
    client = await stack.start()
    r = await client.post(
        "/classify",
        content=b'{"HR": 90}',
        headers={"X-API-Key": stack.client_key, "Content-Type": media},
    )
    assert r.status_code == 415
    assert stack.envelope(r)["code"] == "unsupported_media_type"
    assert stack.ml.public_calls() == []


async def test_a_json_type_with_parameters_or_a_suffix_is_accepted(stack):
    client = await stack.start()
    for media in ("application/json; charset=utf-8", "application/fhir+json"):
        r = await client.post(
            "/classify",
            content=b"{}",
            headers={"X-API-Key": stack.client_key, "Content-Type": media},
        )
        assert r.status_code == 200, (media, r.text)


async def test_a_body_that_does_not_arrive_in_time_is_a_408(stack):
    client = await stack.start(body_read_timeout_s=0.3)

    async def trickle() -> AsyncIterator[bytes]:
        for byte in b'{"HR": 90}':
            yield bytes([byte])
            await asyncio.sleep(0.2)

    r = await client.post(
        "/classify",
        content=trickle(),
        headers={"X-API-Key": stack.client_key, "Content-Type": "application/json"},
    )
    assert r.status_code == 408
    assert stack.envelope(r)["code"] == "request_timeout"
    assert r.headers["connection"] == "close"
    assert stack.ml.public_calls() == []


async def test_the_callers_role_travels_with_the_call_and_cannot_be_forged(stack):
    client = await stack.start()
    await client.post(
        "/classify",
        content=b"{}",
        headers={"X-API-Key": stack.client_key, CALLER_ROLE_HEADER: "admin"},
    )
    await client.post("/reload-config", headers={"X-API-Key": stack.admin_key})
    await client.get("/genai-health")
    classify, reload = stack.ml.public_calls()
    (health,) = stack.genai.public_calls()
    assert classify.headers[CALLER_ROLE_HEADER.lower()] == "client"
    assert reload.headers[CALLER_ROLE_HEADER.lower()] == "admin"
    assert CALLER_ROLE_HEADER.lower() not in health.headers


async def test_health_and_admin_calls_do_not_queue_behind_stuck_classifications(stack):
    # Every connection of the traffic pool is held by a call that the upstream does not
    # answer for a long time; health, configuration and the probe use their own pool.
    stack.genai.canned["/genai-classify"] = stack.canned(body=b"{}", delay_s=30.0)
    client = await stack.start(upstream_max_connections=2)
    key = {"X-API-Key": stack.client_key}
    stuck = [
        asyncio.create_task(client.post("/genai-classify", content=b"{}", headers=key))
        for _ in range(3)
    ]
    try:
        for _ in range(200):
            if len([c for c in stack.genai.public_calls() if c.path == "/genai-classify"]) == 2:
                break
            await asyncio.sleep(0.01)
        health = await asyncio.wait_for(client.get("/genai-health"), timeout=10)
        thresholds = await asyncio.wait_for(
            client.get("/genai-guardrail/thresholds", headers=key), timeout=10
        )
        ready = await asyncio.wait_for(
            stack.gateway().upstreams["genai"].probe(timeout_s=5), timeout=10
        )
        assert not any(task.done() for task in stuck)
    finally:
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
    assert (health.status_code, thresholds.status_code, ready) == (200, 200, True)
