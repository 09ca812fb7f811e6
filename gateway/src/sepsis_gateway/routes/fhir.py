"""`POST /fhir/classify` and `POST /fhir/genai-classify`: a FHIR R4 Bundle assessed by either
pathway (DESIGN §4a), behind the same client keys and error envelope as the JSON routes.

The answer is the pathway's assessment with one more member, `fhir`: what was used (each
Observation with its value as sent, the value used and the unit), what was not used and why,
and the mapping decisions taken for this Bundle. Each `data_quality` entry of the assessment
names the Bundle element it came from (`source`), and so does each field of a 422 from the
pathway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response

from sepsis_gateway.assess import Assessed, assess, read_json
from sepsis_gateway.cds_state import Cds, CdsDep
from sepsis_gateway.fhir import FhirConversion
from sepsis_gateway.routes.table import GENAI, ML
from sepsis_gateway.state import ClientKey, Gateway, GatewayDep
from sepsis_shared.errors import ERROR_RESPONSES

router = APIRouter(tags=["FHIR"])

_EXAMPLE_BUNDLE = Path(__file__).resolve().parent.parent / "fhir-example-bundle.json"

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "The pathway's assessment (as `/classify` or `/genai-classify` answer it) with "
            "`fhir`: `used`, `not_used` (each with its reason), `notes` (mapping decisions)."
        ),
        "content": {"application/json": {}},
    },
    **{k: v for k, v in ERROR_RESPONSES.items() if k in (401, 413, 422, 429, 503)},
    502: ERROR_RESPONSES[503] | {"description": "The pathway sent a broken answer"},
    504: ERROR_RESPONSES[503] | {"description": "The pathway did not answer in time"},
}


def _openapi_extra() -> dict[str, Any]:
    example = json.loads(_EXAMPLE_BUNDLE.read_text())
    schema = {
        "type": "object",
        "description": (
            "A FHIR R4 Bundle (type collection, searchset or transaction) of one patient: "
            "Patient, Observation (LOINC codes, UCUM units; vital-signs and laboratory), "
            "optional Condition, MedicationStatement, MedicationAdministration and "
            "DocumentReference (plain-text nursing notes)."
        ),
        "required": ["resourceType", "type"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "type": {"enum": ["collection", "searchset", "transaction"]},
            "entry": {"type": "array", "items": {"type": "object"}},
        },
    }
    content = {"schema": schema, "examples": {"ward": {"value": example}}}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/fhir+json": content, "application/json": content},
        }
    }


def _with_sources(answer: dict[str, Any], conversion: FhirConversion) -> dict[str, Any]:
    quality = answer.get("data_quality")
    if isinstance(quality, list):
        for item in quality:
            if isinstance(item, dict) and isinstance(item.get("field"), str):
                source = conversion.sources.get(item["field"])
                if source is not None:
                    item["source"] = source
    answer["fhir"] = conversion.report
    return answer


def _error_with_sources(body: dict[str, Any], conversion: FhirConversion) -> dict[str, Any]:
    error = body.get("error")
    details = error.get("details") if isinstance(error, dict) else None
    if isinstance(details, list):
        for item in details:
            if isinstance(item, dict) and isinstance(item.get("field"), str):
                source = conversion.sources.get(item["field"])
                if source is not None:
                    item["source"] = source
    return body


async def _assess_bundle(gateway: Gateway, cds: Cds, request: Request, upstream: str) -> Response:
    bundle = await read_json(request, limit=gateway.settings.max_body_bytes)
    conversion = await cds.convert(bundle)
    result: Assessed = await assess(gateway, upstream, conversion.request)
    if result.status == 200:
        body = _with_sources(result.body, conversion)
    else:
        body = _error_with_sources(result.body, conversion)
    headers = {} if result.retry_after is None else {"Retry-After": result.retry_after.decode()}
    return Response(
        content=json.dumps(body, separators=(",", ":")),
        status_code=result.status,
        media_type="application/json",
        headers=headers,
    )


@router.post(
    "/fhir/classify", responses=_RESPONSES, openapi_extra=_openapi_extra(), response_class=Response
)
async def fhir_classify(
    request: Request, gateway: GatewayDep, cds: CdsDep, _: ClientKey
) -> Response:
    """Assess the patient of a FHIR R4 Bundle with the hybrid ML pathway."""
    return await _assess_bundle(gateway, cds, request, ML)


@router.post(
    "/fhir/genai-classify",
    responses=_RESPONSES,
    openapi_extra=_openapi_extra(),
    response_class=Response,
)
async def fhir_genai_classify(
    request: Request, gateway: GatewayDep, cds: CdsDep, _: ClientKey
) -> Response:
    """Assess the patient of a FHIR R4 Bundle with the GenAI pathway (LLM + guardrail)."""
    return await _assess_bundle(gateway, cds, request, GENAI)
