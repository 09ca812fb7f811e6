"""Forwarding: path for path, bytes unchanged, statuses and envelopes passed through, the
service token added, the client's key kept at the gateway, request ids both ways."""

from __future__ import annotations

import asyncio
import json

import pytest

from sepsis_shared.patient import FLAT_EXAMPLE, STRUCTURED_EXAMPLE

# DESIGN §8: the original deployment guide's verification requests. The /classify one keeps
# line breaks and indents, so a gateway that re-serialised bodies would change its bytes.
GUIDE_CLASSIFY = json.dumps(FLAT_EXAMPLE, indent=1).encode()
GUIDE_GENAI = json.dumps(STRUCTURED_EXAMPLE).encode()


@pytest.mark.parametrize(
    ("method", "path", "upstream"),
    [
        ("POST", "/classify", "ml"),
        ("POST", "/classify-batch", "ml"),
        ("GET", "/config/current", "ml"),
        ("POST", "/genai-classify", "genai"),
        ("POST", "/genai-classify-batch", "genai"),
        ("GET", "/genai-guardrail/thresholds", "genai"),
    ],
)
async def test_keyed_routes_reach_their_upstream_on_the_same_path(stack, method, path, upstream):
    client = await stack.start()
    body = b'{"patients": []}' if method == "POST" else None
    r = await client.request(method, path, content=body, headers={"X-API-Key": stack.client_key})
    assert r.status_code == 200, r.text
    assert r.json()["service"] == upstream
    target = stack.ml if upstream == "ml" else stack.genai
    other = stack.genai if upstream == "ml" else stack.ml
    calls = target.public_calls()
    assert [(c.method, c.path) for c in calls] == [(method, path)]
    assert other.public_calls() == []


async def test_guide_classify_passes_byte_for_byte_with_token_and_without_key(stack):
    client = await stack.start()
    r = await client.post(
        "/classify",
        content=GUIDE_CLASSIFY,
        headers={"X-API-Key": stack.client_key, "Content-Type": "application/json"},
    )
    assert r.status_code == 200
    (call,) = stack.ml.public_calls()
    assert call.body == GUIDE_CLASSIFY
    assert call.headers["x-service-token"] == stack.token
    assert call.headers["content-type"] == "application/json"
    assert "x-api-key" not in call.headers
    # Nothing of the key travels in any other header either.
    assert all(stack.client_key not in v for v in call.headers.values())


async def test_guide_genai_classify_passes_unchanged(stack):
    client = await stack.start()
    r = await client.post(
        "/genai-classify", content=GUIDE_GENAI, headers={"x-api-key": stack.client_key}
    )
    assert r.status_code == 200
    (call,) = stack.genai.public_calls()
    assert call.body == GUIDE_GENAI
    assert "x-api-key" not in call.headers


async def test_genai_health_needs_no_key_and_is_forwarded(stack):
    client = await stack.start()
    r = await client.get("/genai-health")
    assert r.status_code == 200
    assert r.json()["path"] == "/genai-health"
    (call,) = stack.genai.public_calls()
    assert call.headers["x-service-token"] == stack.token


async def test_query_string_is_forwarded(stack):
    client = await stack.start()
    r = await client.get("/config/current?verbose=1", headers={"X-API-Key": stack.client_key})
    assert r.status_code == 200
    (call,) = stack.ml.public_calls()
    assert call.query == "verbose=1"


async def test_client_request_id_goes_upstream_and_comes_back(stack):
    client = await stack.start()
    r = await client.post(
        "/classify",
        content=GUIDE_CLASSIFY,
        headers={"X-API-Key": stack.client_key, "X-Request-ID": "ehr-call-42"},
    )
    assert r.headers["x-request-id"] == "ehr-call-42"
    assert r.json()["request_id"] == "ehr-call-42"
    (call,) = stack.ml.public_calls()
    assert call.headers["x-request-id"] == "ehr-call-42"


async def test_request_id_is_created_when_absent_and_is_the_same_on_both_sides(stack):
    client = await stack.start()
    r = await client.post("/classify", content=b"{}", headers={"X-API-Key": stack.client_key})
    rid = r.headers["x-request-id"]
    assert len(rid) >= 16
    (call,) = stack.ml.public_calls()
    assert call.headers["x-request-id"] == rid


async def test_upstream_422_envelope_passes_through_unchanged(stack):
    upstream_body = (
        b'{"error":{"code":"invalid_input","message":"Invalid input: vitals.HR",'
        b'"request_id":"r-1","details":[{"field":"vitals.HR","message":"out of range"}]}}'
    )
    stack.ml.canned["/classify"] = stack.canned(status=422, body=upstream_body)
    client = await stack.start()
    r = await client.post(
        "/classify", content=b'{"HR": 900}', headers={"X-API-Key": stack.client_key}
    )
    assert r.status_code == 422
    assert r.content == upstream_body
    assert r.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("status", [404, 413, 500, 503])
async def test_upstream_statuses_pass_through(stack, status):
    body = json.dumps(
        {"error": {"code": "x", "message": "m", "request_id": None, "details": None}}
    ).encode()
    stack.ml.canned["/classify-batch"] = stack.canned(
        status=status, body=body, headers={"Retry-After": "7"}
    )
    client = await stack.start()
    r = await client.post("/classify-batch", content=b"[]", headers={"X-API-Key": stack.client_key})
    assert r.status_code == status
    assert r.content == body
    assert r.headers["retry-after"] == "7"


async def test_upstream_answer_that_is_not_json_is_a_502(stack):
    stack.ml.canned["/classify"] = stack.canned(
        status=200, body=b"<html>proxy error</html>", content_type="text/html"
    )
    client = await stack.start()
    r = await client.post("/classify", content=b"{}", headers={"X-API-Key": stack.client_key})
    assert r.status_code == 502
    error = stack.envelope(r)
    assert error["code"] == "upstream_error"
    assert error["details"]["upstream"] == "ml"
    assert "html" not in r.text


async def test_unknown_path_is_a_404_envelope_and_is_not_forwarded(stack):
    client = await stack.start()
    r = await client.get("/healthz", headers={"X-API-Key": stack.client_key})
    assert r.status_code == 404
    assert stack.envelope(r)["code"] == "not_found"
    assert stack.ml.public_calls() == []


async def test_wrong_method_is_a_405_envelope(stack):
    client = await stack.start()
    r = await client.get("/classify", headers={"X-API-Key": stack.client_key})
    assert r.status_code == 405
    assert stack.envelope(r)["code"] == "method_not_allowed"


async def test_wrong_method_on_a_forwarded_path_says_which_is_allowed(stack):
    client = await stack.start()
    r = await client.put("/genai-classify", content=b"{}", headers={"X-API-Key": stack.client_key})
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert stack.genai.public_calls() == []


async def test_other_client_headers_stay_at_the_gateway(stack):
    client = await stack.start()
    await client.post(
        "/classify",
        content=b"{}",
        headers={
            "X-API-Key": stack.client_key,
            "Authorization": "Bearer client-secret",
            "Cookie": "session=abc",
            "X-Service-Token": "forged-by-client",
        },
    )
    (call,) = stack.ml.public_calls()
    assert "authorization" not in call.headers
    assert "cookie" not in call.headers
    assert call.headers["x-service-token"] == stack.token


async def test_missing_content_type_is_sent_upstream_as_json(stack):
    client = await stack.start()
    await client.post("/classify", content=b"{}", headers={"X-API-Key": stack.client_key})
    (call,) = stack.ml.public_calls()
    assert call.headers["content-type"] == "application/json"


async def _one_shot_server(post_answers: list[bytes | None]):
    """A raw HTTP server answering the n-th POST with `post_answers[n]` (None: hang up without
    a word; the last entry repeats) and hanging up on anything else; it counts the POSTs."""
    posts: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        answer = None
        if head.startswith(b"POST "):
            posts.append(1)
            answer = post_answers[min(len(posts), len(post_answers)) - 1]
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, posts


OK_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
    b'Connection: close\r\n\r\n{"ok":true}'
)


async def test_connection_closed_without_answer_is_retried_once(stack):
    server, posts = await _one_shot_server([None, OK_ANSWER])
    port = server.sockets[0].getsockname()[1]
    try:
        client = await stack.start(ml_service_url=f"http://127.0.0.1:{port}")
        r = await client.post("/classify", content=b"{}", headers={"X-API-Key": stack.client_key})
        assert r.status_code == 200
        assert r.content == b'{"ok":true}'
        assert len(posts) == 2
    finally:
        server.close()
        await server.wait_closed()


async def test_upstream_that_keeps_hanging_up_is_a_502(stack):
    server, posts = await _one_shot_server([None])
    port = server.sockets[0].getsockname()[1]
    try:
        client = await stack.start(ml_service_url=f"http://127.0.0.1:{port}")
        r = await client.post("/classify", content=b"{}", headers={"X-API-Key": stack.client_key})
        assert r.status_code == 502
        error = stack.envelope(r)
        assert error["code"] == "upstream_error"
        assert error["details"] == {"upstream": "ml"}
        # One retry, not more.
        assert len(posts) == 2
    finally:
        server.close()
        await server.wait_closed()
