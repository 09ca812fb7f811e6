"""No patient data where it does not belong: a sentinel patient id, note text and vital values
are sent through every pathway (single, batch, FHIR, cached and refused requests); afterwards
no log line of any process of the stack, no Redis key, no error message and no metric label of
/performance holds any of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis

if TYPE_CHECKING:
    from scripts.stack import StackHandle

pytestmark = pytest.mark.e2e

SENTINEL_ID = "PHI-SENTINEL-ID-7f3a9c"
SENTINEL_NOTE = "quokkamarmalade sentinelnote 4412"
SENTINEL_HR = 117.3791  # no other test sends this value
UCUM = "http://unitsofmeasure.org"
SENTINELS = (SENTINEL_ID, "quokkamarmalade", "sentinelnote", "117.3791")


def _patient(**extra: Any) -> dict[str, Any]:
    return {
        "patient_id": SENTINEL_ID,
        "vitals": {"HR": SENTINEL_HR, "SBP": 92, "Resp": 23, "Temp": 38.4},
        "notes": f"{SENTINEL_NOTE}; GCS 14",
        **extra,
    }


def _fhir_bundle() -> dict[str, Any]:
    taken = (datetime.now(UTC) - timedelta(minutes=20)).isoformat(timespec="seconds")

    def observation(code: str, value: float, unit: str) -> dict[str, Any]:
        return {
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "vital-signs",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": f"Patient/{SENTINEL_ID}"},
                "effectiveDateTime": taken,
                "valueQuantity": {
                    "value": value,
                    "unit": unit,
                    "system": UCUM,
                    "code": unit,
                },
            }
        }

    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": SENTINEL_ID, "gender": "female"}},
            observation("8867-4", SENTINEL_HR, "/min"),
            observation("8480-6", 92, "mm[Hg]"),
        ],
    }


def _send_everything(gateway: httpx.Client, key: str) -> list[httpx.Response]:
    headers = {"X-API-Key": key}
    bad_time = {"vitals": {"HR": [{"val": SENTINEL_HR, "ts": SENTINEL_NOTE}]}}
    out = [
        gateway.post("/classify", json=_patient(), headers=headers),
        gateway.post("/genai-classify", json=_patient(), headers=headers),
        gateway.post("/genai-classify", json=_patient(), headers=headers),  # a cache hit
        gateway.post(
            "/classify-batch", json={"patients": [_patient(), _patient()]}, headers=headers
        ),
        gateway.post("/genai-classify-batch", json={"patients": [_patient()]}, headers=headers),
        gateway.post("/fhir/classify", json=_fhir_bundle(), headers=headers),
        # refused ones: a bad value next to the sentinels, sentinels as bad values (a bad field's
        # name is given back to its sender: that is how the field is named)
        gateway.post("/classify", json=_patient(Temp="warm"), headers=headers),
        gateway.post("/genai-classify", json=_patient(HR=SENTINEL_ID), headers=headers),
        gateway.post(
            "/classify",
            json=bad_time,
            headers=headers,
        ),
        gateway.post("/classify", content=json.dumps(_patient()).encode()[:-5], headers=headers),
        # an unknown key carrying a sentinel
        gateway.post("/classify", json=_patient(), headers={"X-API-Key": SENTINEL_ID}),
    ]
    return out


def _found(text: str) -> list[str]:
    return [s for s in SENTINELS if s in text]


def test_no_sentinel_reaches_a_log_a_cache_key_an_error_or_a_metric(
    stack: StackHandle, gateway: httpx.Client, client_key: str
) -> None:
    log_dir: Path | None = getattr(stack, "log_dir", None)
    redis_plan = getattr(stack, "redis", None)
    if log_dir is None or redis_plan is None:
        pytest.skip("the scan reads the local stack's log files and Redis (STACK=local)")
    responses = _send_everything(gateway, client_key)
    statuses = [r.status_code for r in responses]
    assert statuses[:6] == [200] * 6, [r.text[:300] for r in responses[:6]]
    assert all(400 <= s < 500 for s in statuses[6:]), statuses

    for response in responses[6:]:
        error = response.json()["error"]
        assert _found(json.dumps(error)) == [], error

    performance = gateway.get("/performance", headers={"X-API-Key": client_key})
    assert performance.status_code == 200
    assert _found(performance.text) == []

    logs = {
        path.name: path.read_text(errors="replace").splitlines() for path in log_dir.glob("*.log")
    }
    assert {"gateway.log", "ml-service.log", "genai-service.log"} <= set(logs)
    assert all(logs.values()), "every process logged something: the scan proves something"
    for name, lines in sorted(logs.items()):
        hits = [line for line in lines if _found(line)]
        assert hits == [], f"{name}: {hits[:3]}"

    client = redis.Redis.from_url(redis_plan.url, socket_timeout=5)
    try:
        keys = [k.decode("utf-8", "replace") for k in client.scan_iter(count=1000)]
    finally:
        client.close()
    assert keys, "the GenAI cache stored nothing: the scan would prove nothing"
    assert [k for k in keys if _found(k)] == []
