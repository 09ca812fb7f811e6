"""Input that fuzzers seldom produce, sent through the gateway to both pathways: each gets a
clear answer (an assessment that says what it did, or the error naming the field), never a 5xx,
and clients sending it do not stop the gateway from serving others."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sepsis_shared.patient_types import MAX_NOTES_CHARS, MAX_POINTS_PER_VARIABLE

if TYPE_CHECKING:
    from scripts.stack import StackHandle

pytestmark = pytest.mark.e2e

PATHWAYS = ["/classify", "/genai-classify"]
JSON_TYPE = {"Content-Type": "application/json"}


def _post_raw(gateway: httpx.Client, key: str, path: str, body: bytes, **headers: str) -> Any:
    return gateway.post(path, content=body, headers={"X-API-Key": key, **JSON_TYPE, **headers})


def _fields(response: httpx.Response) -> list[str]:
    return [d["field"] for d in response.json()["error"]["details"]]


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("path", PATHWAYS)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"HR": NaN, "SBP": 90}', "body"),
        (b'{"HR": Infinity, "SBP": 90}', "body"),
        (b'{"HR": -Infinity, "SBP": 90}', "body"),
        (b'{"HR": "110", "SBP": 90}', "HR"),
        (b'{"vitals": {"HR": ["110", 104]}}', "vitals.HR[0]"),
        (b"[" * 10_000 + b"]" * 10_000, "body"),
        (b'{"HR": 90, "notes": "lone \\ud800 surrogate"}', "body"),
    ],
    ids=["NaN", "Infinity", "-Infinity", "string", "string in list", "deep", "surrogate"],
)
def test_malformed_numbers_and_json_are_a_422_naming_the_field(
    gateway: httpx.Client, client_key: str, path: str, body: bytes, field: str
) -> None:
    response = _post_raw(gateway, client_key, path, body)
    assert response.status_code == 422, response.text
    assert field in _fields(response)


@pytest.mark.parametrize("path", PATHWAYS)
def test_a_series_longer_than_the_limit_is_a_422_naming_it(
    gateway: httpx.Client, client_key: str, path: str
) -> None:
    hr = [80 + i % 20 for i in range(10_000)]
    response = gateway.post(path, json={"vitals": {"HR": hr}}, headers={"X-API-Key": client_key})
    assert response.status_code == 422
    error = response.json()["error"]
    assert _fields(response) == ["vitals.HR"]
    assert str(MAX_POINTS_PER_VARIABLE) in error["details"][0]["message"]


@pytest.mark.parametrize("path", PATHWAYS)
def test_future_and_duplicate_times_are_left_out_and_said(
    gateway: httpx.Client, client_key: str, path: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    points = [
        {"val": 96, "ts": _iso(now - timedelta(hours=2))},
        {"val": 98, "ts": _iso(now - timedelta(hours=1))},
        {"val": 101, "ts": _iso(now - timedelta(hours=1))},  # same time, another value
        {"val": 40, "ts": "2099-01-01T00:00:00Z"},  # a clock or entry error
    ]
    response = gateway.post(
        path, json={"vitals": {"HR": points, "SBP": 118}}, headers={"X-API-Key": client_key}
    )
    assert response.status_code == 200, response.text
    quality = {item["field"]: item for item in response.json()["data_quality"]}
    assert quality["vitals.HR[3]"]["action"] == "left_out"
    assert "after the request arrived" in quality["vitals.HR[3]"]["reason"]
    assert quality["vitals.HR[1]"]["action"] == "left_out"
    assert "same time" in quality["vitals.HR[1]"]["reason"]


@pytest.mark.parametrize("path", PATHWAYS)
def test_mixed_time_zones_are_ordered_by_the_instant_they_name(
    gateway: httpx.Client, client_key: str, path: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # Written in their own zones, the two older readings carry later wall-clock times than
    # the newest one, which is the one scored: SBP 82.
    two_hours_ago = (now - timedelta(hours=2)).astimezone(timezone(timedelta(hours=5)))
    an_hour_ago = (now - timedelta(hours=1)).astimezone(timezone(timedelta(hours=3)))
    newest = now - timedelta(minutes=10)
    body = {
        "vitals": {
            "SBP": [
                {"val": 128, "ts": two_hours_ago.isoformat()},
                {"val": 82, "ts": _iso(newest)},
                {"val": 120, "ts": an_hour_ago.isoformat()},
            ],
            "Resp": 24,
        }
    }
    response = gateway.post(path, json=body, headers={"X-API-Key": client_key})
    assert response.status_code == 200, response.text
    qsofa = response.json()["clinical_scores"]["qsofa"]["components"]
    assert qsofa["systolic_bp"] == 1  # 82 <= 100: the newest instant, not the latest wall clock


@pytest.mark.parametrize("path", PATHWAYS)
def test_unicode_control_characters_and_nul_in_notes_are_taken(
    gateway: httpx.Client, client_key: str, path: str
) -> None:
    notes = "Pt agité, confusion nouvelle \u0000\u0007\u001b[31m GCS 13 \u202e🩺 見当識障害"
    response = gateway.post(
        path, json={"HR": 112, "SBP": 96, "notes": notes}, headers={"X-API-Key": client_key}
    )
    assert response.status_code == 200, response.text
    findings = {f["variable"]: f for f in response.json()["findings"]}
    assert findings["GCS"]["value"] == 13
    assert findings["GCS"]["source"] == "note"


@pytest.mark.parametrize("path", PATHWAYS)
def test_a_note_of_a_megabyte_is_a_422_naming_the_notes(
    gateway: httpx.Client, client_key: str, path: str
) -> None:
    body = json.dumps({"HR": 90, "notes": "x" * 1_000_000}).encode()
    response = _post_raw(gateway, client_key, path, body)
    assert response.status_code == 422
    assert _fields(response) == ["notes"]
    assert str(MAX_NOTES_CHARS) in response.json()["error"]["details"][0]["message"]


@pytest.mark.parametrize("path", ["/classify-batch", "/genai-classify-batch"])
def test_a_body_of_twenty_megabytes_is_a_413(
    gateway: httpx.Client, client_key: str, path: str
) -> None:
    body = b'{"patients": [' + b",".join([b'{"HR": 90}'] * 2_000_000) + b"]}"
    assert len(body) > 20_000_000
    response = _post_raw(gateway, client_key, path, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_batch_of_1001_patients_is_a_413_naming_the_limit(
    gateway: httpx.Client, client_key: str
) -> None:
    patients = [{"HR": 90 + i % 30, "SBP": 110} for i in range(1001)]
    response = gateway.post(
        "/classify-batch", json={"patients": patients}, headers={"X-API-Key": client_key}
    )
    assert response.status_code == 413
    assert "1001" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", PATHWAYS)
@pytest.mark.parametrize(
    "media", ["text/plain", "application/xml", "multipart/form-data; boundary=x", "text/json"]
)
def test_a_body_of_another_type_is_a_415(
    gateway: httpx.Client, client_key: str, path: str, media: str
) -> None:
    response = _post_raw(gateway, client_key, path, b'{"HR": 90}', **{"Content-Type": media})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_a_key_differing_in_one_character_is_refused(
    gateway: httpx.Client, client_key: str
) -> None:
    def other(c: str) -> str:
        return "A" if c != "A" else "B"

    near_keys = (
        client_key[:-1] + other(client_key[-1]),
        other(client_key[0]) + client_key[1:],
        client_key + "x",
        client_key[:-1],
    )
    for near in near_keys:
        response = gateway.post("/classify", json={"HR": 90}, headers={"X-API-Key": near})
        assert response.status_code == 401


def test_two_hundred_idle_connections_do_not_stop_others_being_served(
    stack: StackHandle, gateway: httpx.Client, client_key: str
) -> None:
    url = httpx.URL(stack.gateway_url)
    idle: list[socket.socket] = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection((url.host, url.port or 80), timeout=5))

        def classify(i: int) -> int:
            body = {"HR": 90 + i, "SBP": 110}
            return gateway.post(
                "/classify", json=body, headers={"X-API-Key": client_key}
            ).status_code

        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(classify, range(40)))
        assert statuses == [200] * 40
    finally:
        for sock in idle:
            sock.close()
