"""A FHIR R4 Bundle through the whole stack: the same patient as FHIR and as JSON gets the same
assessment from both pathways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

BUNDLE = json.loads(
    (
        Path(__file__).parents[2] / "gateway" / "tests" / "data" / "fhir-sepsis-bundle.json"
    ).read_text()
)
TIMES = ["2026-02-07T14:30:00Z", "2026-02-07T16:30:00Z", "2026-02-07T18:30:00Z"]
LAB = "2026-02-07T15:10:00Z"


def _series(values: list[float]) -> list[dict[str, Any]]:
    return [{"val": v, "ts": t} for v, t in zip(values, TIMES, strict=True)]


# The Bundle's patient written by hand in the JSON form, in the assessment's units.
AS_JSON = {
    "patient_id": "pat-7",
    "Age": 67,
    "Gender": "male",
    "vitals": {
        "HR": _series([96, 108, 118]),
        "Resp": _series([20, 22, 24]),
        "O2Sat": _series([96, 95, 93]),
        "SBP": _series([112, 101, 88]),
        "DBP": _series([70, 62, 54]),
        "Temp": [{"val": 38.0, "ts": TIMES[0]}, {"val": 38.9, "ts": TIMES[2]}],
        "GCS": [{"val": 14, "ts": TIMES[2]}],
        "FiO2": [{"val": 0.28, "ts": TIMES[2]}],
        "Vasopressors": [{"val": 1, "ts": "2026-02-07T18:00:00Z"}],
    },
    "labs": {
        "Lactate": [{"val": 3.1, "ts": LAB}],
        "WBC": [{"val": 16.2, "ts": LAB}],
        "Platelets": [{"val": 140, "ts": LAB}],
        "Creatinine": [{"val": 159 / 88.4, "ts": LAB}],
        "Bilirubin_total": [{"val": 20.5 / 17.1, "ts": LAB}],
        "Glucose": [{"val": 7.8 * 18.016, "ts": LAB}],
    },
    "notes": (
        "Patient more drowsy this evening, skin mottled on knees. Cultures sent, antibiotics "
        "started."
    ),
    "patient_history": {
        "conditions": ["Type 2 diabetes"],
        "medications": ["metformin", "norepinephrine"],
    },
}

_COMPARED = ("risk_score", "priority", "sepsis_probability_6h", "clinical_scores", "drivers")


@pytest.mark.parametrize(
    ("fhir_path", "json_path"),
    [
        ("/fhir/classify", "/classify"),
        ("/fhir/genai-classify", "/genai-classify"),
    ],
)
def test_same_patient_as_fhir_and_as_json_gets_the_same_assessment(
    gateway: httpx.Client, client_key: str, fhir_path: str, json_path: str
) -> None:
    headers = {"X-API-Key": client_key}
    from_fhir = gateway.post(fhir_path, json=BUNDLE, headers=headers, timeout=60)
    from_json = gateway.post(json_path, json=AS_JSON, headers=headers, timeout=60)
    assert from_fhir.status_code == 200, from_fhir.text
    assert from_json.status_code == 200, from_json.text
    a, b = from_fhir.json(), from_json.json()
    assert {k: a[k] for k in _COMPARED} == {k: b[k] for k in _COMPARED}
    assert a["priority"] in ("Critical", "Urgent")
    assert "Observation/hr-err" in {e["resource"] for e in a["fhir"]["not_used"]}


def test_unconvertible_unit_is_422_through_the_stack(
    gateway: httpx.Client, client_key: str
) -> None:
    bad = json.loads(json.dumps(BUNDLE))
    bad["entry"][1]["resource"]["valueQuantity"]["code"] = "Hz"
    r = gateway.post("/fhir/classify", json=bad, headers={"X-API-Key": client_key})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["resource"] == "Observation/hr-0"
