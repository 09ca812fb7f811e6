"""The `sepsis-client` package against the running stack: it covers every public operation of
the merged OpenAPI document (and nothing the document lacks), its models declare only fields
the document has and every field the document requires, and its calls work, sync and async."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from sepsis_client import (
    NOT_COVERED,
    OPERATIONS,
    AsyncSepsisClient,
    InvalidInput,
    SepsisClient,
    Unauthorized,
)
from sepsis_client.models import (
    BatchResponse,
    FhirGenAIAssessment,
    FhirMLAssessment,
    GenAIAssessment,
    Health,
    MLAssessment,
    MLBatchResponse,
    Performance,
)

pytestmark = pytest.mark.e2e

BUNDLE = json.loads(
    (
        Path(__file__).parents[2] / "gateway" / "tests" / "data" / "fhir-sepsis-bundle.json"
    ).read_text()
)
GUIDE = {"HR": 110, "SBP": 95, "DBP": 60, "Temp": 38.5, "Resp": 22, "O2Sat": 94, "WBC": 15.5}
_METHODS = ("get", "post", "put", "patch", "delete")

# Client method -> the model checked against the operation's 200 schema.
TYPED: dict[str, type[BaseModel]] = {
    "health": Health,
    "classify": MLAssessment,
    "classify_batch": MLBatchResponse,
    "genai_classify": GenAIAssessment,
    "genai_classify_batch": BatchResponse,
    "performance": Performance,
}


@pytest.fixture(scope="module")
def document(stack: Any) -> dict[str, Any]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30.0) as http:
        doc: dict[str, Any] = http.get("/openapi.json").json()
    assert doc["x-upstreams-missing"] == []
    return doc


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = doc["components"]["schemas"][name]
    return schema


def test_client_covers_every_public_operation_and_no_other(document: dict[str, Any]) -> None:
    documented = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in _METHODS
    }
    covered = {f"{op.method} {op.path}" for op in OPERATIONS.values()}
    assert covered - documented == set(), "client calls operations the API does not have"
    assert documented - covered - set(NOT_COVERED) == set(), "operations the client lacks"


@pytest.mark.parametrize("method", sorted(TYPED))
def test_models_match_the_documented_answers(document: dict[str, Any], method: str) -> None:
    op = OPERATIONS[method]
    answer = document["paths"][op.path][op.method.lower()]["responses"]["200"]
    schema = _resolve(document, answer["content"]["application/json"]["schema"])
    documented = set(schema.get("properties", {}))
    required = set(schema.get("required", []))
    model = TYPED[method]
    declared = set(model.model_fields)
    model_required = {n for n, f in model.model_fields.items() if f.is_required()}
    assert declared - documented == set(), f"{model.__name__} fields the API does not send"
    assert required - declared == set(), f"{model.__name__} lacks fields the API requires"
    assert model_required - required == set(), f"{model.__name__} requires optional fields"


def test_fhir_models_extend_the_pathway_answers() -> None:
    assert issubclass(FhirMLAssessment, MLAssessment)
    assert issubclass(FhirGenAIAssessment, GenAIAssessment)


def test_sync_client_tour(stack: Any, client_key: str, admin_key: str) -> None:
    with SepsisClient(stack.gateway_url, api_key=client_key, timeout_s=60) as api:
        assert api.health().status == "healthy"
        ml = api.classify(GUIDE)
        assert ml.priority in ("Critical", "Urgent", "Elevated", "Standard")
        assert ml.clinical_scores.qsofa.max_score == 3
        batch = api.classify_batch([GUIDE, {"HR": "fast"}])
        assert (batch.count, batch.errors) == (2, 1)
        fhir = api.fhir_classify(BUNDLE)
        assert "Observation/hr-err" in {e["resource"] for e in fhir.fhir.not_used}
        assert api.performance().service == "gateway"
        assert api.config_current()
    with SepsisClient(stack.gateway_url, api_key=admin_key) as admin:
        assert admin.reload_config()


async def test_async_client_tour(stack: Any, client_key: str) -> None:
    async with AsyncSepsisClient(stack.gateway_url, api_key=client_key, timeout_s=60) as api:
        genai = await api.genai_classify(
            {"patient_id": "T1", "vitals": {"HR": 118, "SBP": 88}, "notes": "mottled skin"}
        )
        assert genai.guardrail is not None
        fhir = await api.fhir_genai_classify(BUNDLE)
        assert fhir.fhir.patient == "Patient/pat-7"
        assert (await api.genai_health())["status"]
        assert await api.guardrail_thresholds()


def test_errors_are_typed(stack: Any, client_key: str) -> None:
    wrong = "wrong-key-0123456789abcdefghij"
    with SepsisClient(stack.gateway_url, api_key=wrong) as api, pytest.raises(Unauthorized):
        api.classify(GUIDE)
    with SepsisClient(stack.gateway_url, api_key=client_key) as api:
        with pytest.raises(InvalidInput) as caught:
            api.classify({"vitals": {"HR": [{"val": 118, "ts": "yesterday"}]}})
        assert "vitals.HR[0].ts" in caught.value.fields
        assert caught.value.request_id
