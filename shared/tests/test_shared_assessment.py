"""The assessment output core: priorities, alerts, missing inputs, the response model."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from sepsis_shared.assessment import (
    KEY_INPUTS,
    AssessmentCore,
    ModelInfo,
    Priority,
    alert_for,
    max_priority,
    missing_inputs,
)
from sepsis_shared.confidence import picture_of_patient
from sepsis_shared.patient import FLAT_EXAMPLE, STRUCTURED_EXAMPLE, parse_patient
from sepsis_shared.scores import clinical_scores
from sepsis_shared.variables import VARIABLES


def test_priority_order_by_rank() -> None:
    ordered = sorted(Priority, key=lambda p: p.rank, reverse=True)
    assert [p.value for p in ordered] == ["Critical", "Urgent", "Elevated", "Standard"]
    assert Priority("Urgent") is Priority.URGENT
    assert [p.is_alert for p in ordered] == [True, True, False, False]


def test_max_priority() -> None:
    assert max_priority(Priority.ELEVATED, Priority.URGENT) is Priority.URGENT
    assert (
        max_priority([Priority.STANDARD, Priority.CRITICAL], Priority.URGENT) is Priority.CRITICAL
    )
    assert max_priority(Priority.STANDARD) is Priority.STANDARD
    assert max_priority() is Priority.STANDARD
    # ranks, not alphabetical order: "Elevated" < "Standard" as text
    assert max_priority(Priority.STANDARD, Priority.ELEVATED) is Priority.ELEVATED


@pytest.mark.parametrize(
    ("priority", "colour", "phrase"),
    [
        (Priority.CRITICAL, "red", "antibiotics within 1 hour"),
        (Priority.URGENT, "orange", "within 30 minutes"),
        (Priority.ELEVATED, "yellow", "Watch closely"),
        (Priority.STANDARD, "green", "Routine care"),
    ],
)
def test_alert_for_each_priority(priority: Priority, colour: str, phrase: str) -> None:
    alert = alert_for(priority)
    assert alert.level is priority
    assert alert.colour == colour
    assert phrase in alert.action


def test_missing_inputs_of_the_documented_examples() -> None:
    flat = parse_patient(FLAT_EXAMPLE)
    # MAP counts as sent: SBP and DBP give it
    assert missing_inputs(flat) == ["GCS", "Platelets", "Bilirubin_total"]
    structured = parse_patient({"vitals": STRUCTURED_EXAMPLE["vitals"]})
    assert missing_inputs(structured) == [
        "Resp",
        "MAP",
        "O2Sat",
        "GCS",
        "Creatinine",
        "Platelets",
        "Bilirubin_total",
    ]
    mid = {n: round((VARIABLES[n].low + VARIABLES[n].high) / 2) for n in KEY_INPUTS}
    everything = parse_patient({"vitals": mid})
    assert missing_inputs(everything) == []


def core(**overrides: Any) -> AssessmentCore:
    p = parse_patient({"HR": 118, "SBP": 88, "Resp": 24, "Temp": 101.3, "notes": "GCS 13"})
    fields: dict[str, Any] = {
        "risk_score": 82.5,
        "sepsis_probability_6h": 0.41,
        "priority": Priority.CRITICAL,
        "alert": alert_for(Priority.CRITICAL),
        "clinical_scores": clinical_scores(p),
        "drivers": ["SBP 88 mmHg (low)"],
        "model": ModelInfo(name="sepsis-lgbm", version="1.0.0"),
        "missing_inputs": missing_inputs(p),
        "confidence": picture_of_patient(p),
        "data_quality": list(p.data_quality),
        "findings": list(p.findings),
        "processing_time_ms": 1.7,
    }
    fields.update(overrides)
    return AssessmentCore(**fields)


def test_assessment_core_serialises_as_documented() -> None:
    body = core(request_id="abc").model_dump(mode="json")
    assert body["priority"] == "Critical"
    assert body["alert"]["colour"] == "red"
    assert body["clinical_scores"]["qsofa"]["score"] == 3  # mentation from the notes: GCS 13
    assert body["model"] == {"name": "sepsis-lgbm", "version": "1.0.0"}
    assert body["request_id"] == "abc"
    assert body["patient_id"] is None
    assert body["confidence"]["level"] == "medium"  # no lab, a single hour
    assert [i["action"] for i in body["data_quality"]] == ["read_as"]  # 101.3 read as °F
    assert body["findings"] == [
        {
            "variable": "GCS",
            "value": 13.0,
            "text": "GCS 13",
            "source": "note",
            "evidence": "GCS 13",
        }
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"risk_score": 100.5},
        {"risk_score": -1},
        {"sepsis_probability_6h": 1.2},
        {"priority": "Panic"},
        {"processing_time_ms": -0.1},
    ],
)
def test_assessment_core_rejects_out_of_range_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        core(**bad)


def test_assessment_core_becomes_documented_openapi() -> None:
    app = FastAPI()

    @app.post("/classify", response_model=AssessmentCore)
    async def classify() -> AssessmentCore:
        return core()

    schemas = app.openapi()["components"]["schemas"]
    props = schemas["AssessmentCore"]["properties"]
    assert props["risk_score"]["maximum"] == 100
    assert "6 hours" in props["sepsis_probability_6h"]["description"]
    assert schemas["Priority"]["enum"] == ["Critical", "Urgent", "Elevated", "Standard"]
    assert "ScoreResult" in schemas
    for name in (
        "drivers",
        "missing_inputs",
        "clinical_scores",
        "alert",
        "confidence",
        "data_quality",
        "findings",
    ):
        assert props[name].get("description"), name
