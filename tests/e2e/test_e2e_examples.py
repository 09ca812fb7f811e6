"""The original deployment guide's verification requests (DESIGN §8), verbatim, against the
running stack through the gateway, with a key of ours in `X-API-Key`.

This file holds the one literal copy of each request; everything else (tests, scripts, the
OpenAPI examples) uses `sepsis_shared.patient.FLAT_EXAMPLE` / `STRUCTURED_EXAMPLE`, which the
first test holds to these copies."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sepsis_shared.patient import FLAT_EXAMPLE, STRUCTURED_EXAMPLE

if TYPE_CHECKING:
    from tests.e2e.conftest import LLMSetup

pytestmark = pytest.mark.e2e

PRIORITIES = ("Critical", "Urgent", "Elevated", "Standard")
ALERTS = ("Critical", "Urgent")

CLASSIFY = {
    "HR": 110,
    "SBP": 95,
    "DBP": 60,
    "Temp": 38.5,
    "Resp": 22,
    "O2Sat": 94,
    "WBC": 15.5,
    "Lactate": 2.5,
    "Creatinine": 1.8,
    "Age": 65,
    "Gender": 1,
}
GENAI_CLASSIFY = {
    "patient_id": "TEST001",
    "vitals": {"HR": 118, "SBP": 88, "Temp": 38.9, "Lactate": 3.2, "WBC": 18.5},
    "notes": "Patient appears lethargic, skin mottled on lower extremities",
}


def test_the_shared_examples_are_the_guides_requests() -> None:
    assert FLAT_EXAMPLE == CLASSIFY
    assert list(FLAT_EXAMPLE) == list(CLASSIFY), "same fields, in the guide's order"
    assert STRUCTURED_EXAMPLE == GENAI_CLASSIFY
    assert list(STRUCTURED_EXAMPLE) == list(GENAI_CLASSIFY)


def check_core(body: dict[str, Any], response: httpx.Response, *, estimated: bool = True) -> None:
    """The assessment core every pathway returns (DESIGN §4). `estimated=False`: an answer
    without an LLM estimate, whose probability is null and says so, never made up."""
    assert 0 <= body["risk_score"] <= 100
    if estimated:
        assert 0.0 <= body["sepsis_probability_6h"] <= 1.0
    else:
        assert body["sepsis_probability_6h"] is None
        assert body["probability_source"] == "not_estimated"
    assert body["priority"] in PRIORITIES
    assert body["alert"]["level"] == body["priority"]
    assert body["alert"]["action"]
    assert set(body["clinical_scores"]) >= {"qsofa", "sirs", "news2", "sofa"}
    assert isinstance(body["drivers"], list)
    assert body["model"]["name"]
    assert body["model"]["version"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["processing_time_ms"] >= 0


def test_health(gateway: httpx.Client) -> None:
    response = gateway.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert datetime.fromisoformat(body["timestamp"])


def test_docs_serves_swagger_ui(gateway: httpx.Client) -> None:
    response = gateway.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text.lower()
    assert "/openapi.json" in response.text


def test_genai_health(gateway: httpx.Client, llm: LLMSetup) -> None:
    response = gateway.get("/genai-health")
    assert response.status_code == 200
    body = response.json()
    # the offline provider (STACK=compose) is named as such: degraded, never "available"
    assert body["status"] == ("degraded" if llm.provider == "offline" else "available")
    assert body["pipeline_version"]
    assert body["provider"] == llm.provider
    assert body["guardrail_version"]
    # The cache runs on a real Redis in this stack.
    assert body["cache"]["state"] == "up"


def test_classify_example(gateway: httpx.Client, client_key: str) -> None:
    response = gateway.post("/classify", json=CLASSIFY, headers={"X-API-Key": client_key})
    assert response.status_code == 200, response.text
    body = response.json()
    check_core(body, response)
    scores = body["clinical_scores"]
    # HR 110 > 90, Temp 38.5 > 38, Resp 22 > 20, WBC 15.5 > 12: all four SIRS criteria.
    assert scores["sirs"]["score"] == 4
    # Resp >= 22 and SBP <= 100; mentation was not sent.
    assert scores["qsofa"]["score"] == 2
    assert body["priority"] in ALERTS


def test_genai_classify_example(gateway: httpx.Client, client_key: str, llm: LLMSetup) -> None:
    response = gateway.post(
        "/genai-classify", json=GENAI_CLASSIFY, headers={"X-API-Key": client_key}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    check_core(body, response, estimated=llm.provider != "offline")
    assert body["rationale"]
    assert body["llm"]["provider"] == llm.provider
    if llm.provider == "azure":
        # Answered by the (local) LLM over the Azure URL scheme, not by the offline rules.
        assert body["llm"]["status"] in ("ok", "cached")
        assert body["llm"]["model"] == "gpt-4o"
        assert body["degraded"] is False
    guardrail = body["guardrail"]
    assert isinstance(guardrail["override"], bool)
    assert guardrail["config_version"]
    # SBP 88 and lactate 3.2 with mottled skin: the clinical floor must fire and alert.
    assert guardrail["fired"]
    assert body["priority"] in ALERTS
