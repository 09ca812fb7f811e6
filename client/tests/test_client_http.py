"""The client against a real local HTTP server: retries on 429/503 with Retry-After, bounded;
no retry of other errors; the error envelope as typed exceptions; the key, the FHIR media type
and timeouts on the wire. Sync and async clients alike."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sepsis_client import (
    AsyncSepsisClient,
    InvalidInput,
    RateLimited,
    SepsisClient,
    SepsisError,
    Unauthorized,
    UpstreamUnavailable,
)
from sepsis_client.client import retry_delay

KEY = "client-test-key-0123456789abcdef"


@dataclass
class Script:
    """What the server answers, call after call (the last answer repeats)."""

    answers: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            script.seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
            if script.delay_s:
                threading.Event().wait(script.delay_s)
            index = min(len(script.seen) - 1, len(script.answers) - 1)
            status, headers, payload = script.answers[index]
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 (base signature)
            return

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


def envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "request_id": "rid-1", "details": details}}


HEALTH = {
    "status": "healthy",
    "timestamp": "2026-02-07T18:30:00+00:00",
    "service": "gateway",
    "version": "0.1.0",
    "upstreams": {},
    "unavailable": [],
}


def test_503_with_retry_after_is_retried_until_it_answers(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [
        (503, {"Retry-After": "0"}, envelope("upstream_unavailable", "down")),
        (503, {"Retry-After": "0"}, envelope("upstream_unavailable", "down")),
        (200, {}, HEALTH),
    ]
    with SepsisClient(url, api_key=KEY) as api:
        assert api.health().status == "healthy"
    assert len(script.seen) == 3


async def test_async_client_retries_429_too(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [
        (429, {"Retry-After": "0"}, envelope("rate_limited", "slow down")),
        (200, {}, HEALTH),
    ]
    async with AsyncSepsisClient(url, api_key=KEY) as api:
        assert (await api.health()).service == "gateway"
    assert len(script.seen) == 2


def test_retries_are_bounded_and_the_last_error_is_raised(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(503, {"Retry-After": "0"}, envelope("upstream_unavailable", "ml down"))]
    with (
        SepsisClient(url, api_key=KEY, max_retries=2) as api,
        pytest.raises(UpstreamUnavailable) as caught,
    ):
        api.classify({"HR": 90})
    assert len(script.seen) == 3
    assert (caught.value.code, caught.value.request_id) == ("upstream_unavailable", "rid-1")


def test_429_after_the_retries_is_rate_limited_with_its_wait(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(429, {"Retry-After": "7"}, envelope("rate_limited", "slow down"))]
    with SepsisClient(url, api_key=KEY, max_retries=0) as api, pytest.raises(RateLimited) as caught:
        api.performance()
    assert caught.value.retry_after_s == 7.0


def test_422_is_not_retried_and_names_the_fields(server: tuple[str, Script]) -> None:
    url, script = server
    details = [{"field": "vitals.HR[0].ts", "message": "not a timestamp"}]
    script.answers = [(422, {}, envelope("invalid_input", "Invalid input", details))]
    with SepsisClient(url, api_key=KEY) as api, pytest.raises(InvalidInput) as caught:
        api.classify({"vitals": {"HR": [{"val": 1, "ts": "x"}]}})
    assert caught.value.fields == ["vitals.HR[0].ts"]
    assert len(script.seen) == 1


async def test_401_is_unauthorized(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(401, {}, envelope("unauthorized", "Invalid API key"))]
    async with AsyncSepsisClient(url, api_key=KEY) as api:
        with pytest.raises(Unauthorized):
            await api.classify({"HR": 90})


def test_answer_without_the_envelope_is_still_an_error(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(500, {}, ["not", "an", "envelope"])]
    with SepsisClient(url, api_key=KEY) as api, pytest.raises(SepsisError) as caught:
        api.health()
    assert (caught.value.status, caught.value.code) == (500, "unexpected_answer")


def test_key_body_and_fhir_media_type_on_the_wire(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(422, {}, envelope("invalid_input", "bad bundle", []))]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": []}
    with SepsisClient(url, api_key=KEY) as api, pytest.raises(InvalidInput):
        api.fhir_classify(bundle)
    [call] = script.seen
    assert (call["method"], call["path"]) == ("POST", "/fhir/classify")
    assert call["headers"]["x-api-key"] == KEY
    assert call["headers"]["content-type"] == "application/fhir+json"
    assert json.loads(call["body"]) == bundle


def test_batch_is_sent_as_patients(server: tuple[str, Script]) -> None:
    url, script = server
    answer = {"results": [{"error": {"code": "invalid_input"}}], "count": 1, "errors": 1}
    script.answers = [(200, {}, answer | {"processing_time_ms": 1.0})]
    with SepsisClient(url, api_key=KEY) as api:
        batch = api.genai_classify_batch([{"HR": "fast"}])
    assert json.loads(script.seen[0]["body"]) == {"patients": [{"HR": "fast"}]}
    assert batch.assessments() == [None]


def test_timeout_applies(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, {}, HEALTH)]
    script.delay_s = 1.0
    with (
        SepsisClient(url, api_key=KEY, timeout_s=0.2, max_retries=0) as api,
        pytest.raises(httpx.TimeoutException),
    ):
        api.health()


def test_connection_refused_is_retried_then_raised() -> None:
    with (
        SepsisClient(
            "http://127.0.0.1:9", api_key=KEY, max_retries=1, max_retry_wait_s=0.01
        ) as api,
        pytest.raises(httpx.ConnectError),
    ):
        api.health()


def test_a_key_is_required() -> None:
    with pytest.raises(ValueError, match="api_key"):
        SepsisClient("http://127.0.0.1:8000", api_key="")


@pytest.mark.parametrize(
    ("header", "attempt", "expected"),
    [("3", 0, 3.0), ("120", 0, 30.0), (None, 0, 0.5), (None, 2, 2.0), ("soon", 1, 1.0)],
)
def test_retry_delay(header: str | None, attempt: int, expected: float) -> None:
    response = httpx.Response(503, headers={"Retry-After": header} if header else {})
    assert retry_delay(response, attempt, cap_s=30.0) == expected


def test_retry_delay_reads_an_http_date() -> None:
    now = formatdate(timeval=None, usegmt=True)  # a date already reached: no wait left
    response = httpx.Response(503, headers={"Retry-After": now})
    assert retry_delay(response, 0, cap_s=30.0) <= 1.0
