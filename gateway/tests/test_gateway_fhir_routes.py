"""`/fhir/classify` and `/fhir/genai-classify` through the real gateway app and real local
upstreams: keys, the request the pathway receives, the answer's `fhir` report, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BUNDLE = json.loads((Path(__file__).parent / "data" / "fhir-sepsis-bundle.json").read_text())
ASSESSMENT = {
    "risk_score": 81.0,
    "priority": "Critical",
    "data_quality": [{"field": "vitals.SBP[1]", "action": "left_out"}],
}


@pytest.mark.parametrize(
    ("path", "upstream", "upstream_path"),
    [("/fhir/classify", "ml", "/classify"), ("/fhir/genai-classify", "genai", "/genai-classify")],
)
async def test_bundle_reaches_its_pathway_as_a_patient_request(
    stack, path, upstream, upstream_path
):
    target = stack.ml if upstream == "ml" else stack.genai
    target.canned[upstream_path] = stack.canned(body=json.dumps(ASSESSMENT).encode())
    client = await stack.start()
    r = await client.post(
        path,
        json=BUNDLE,
        headers={"X-API-Key": stack.client_key, "Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 200, r.text
    [call] = target.public_calls()
    assert (call.method, call.path) == ("POST", upstream_path)
    assert call.headers["content-type"] == "application/json"
    sent = json.loads(call.body)
    assert [p["val"] for p in sent["vitals"]["HR"]] == [96.0, 108.0, 118.0]
    assert sent["Age"] == 67
    answer = r.json()
    assert answer["priority"] == "Critical"
    assert answer["data_quality"][0]["source"] == "Bundle.entry[8].resource.component[0]"
    assert {e["resource"] for e in answer["fhir"]["not_used"]} >= {
        "Observation/hr-err",
        "Encounter/enc-1",
    }


async def test_fhir_route_needs_a_client_key(stack):
    client = await stack.start()
    r = await client.post("/fhir/classify", json=BUNDLE)
    assert r.status_code == 401
    assert stack.envelope(r)["code"] == "unauthorized"
    assert stack.ml.public_calls() == []


async def test_bad_bundle_is_422_naming_the_fhir_path_and_nothing_goes_upstream(stack):
    bad = json.loads(json.dumps(BUNDLE))
    bad["entry"][1]["resource"]["valueQuantity"]["code"] = "beats"
    client = await stack.start()
    r = await client.post("/fhir/classify", json=bad, headers={"X-API-Key": stack.client_key})
    assert r.status_code == 422
    error = stack.envelope(r)
    assert error["details"][0]["field"] == "Bundle.entry[1].resource.valueQuantity.code"
    assert error["details"][0]["resource"] == "Observation/hr-0"
    assert error["request_id"]
    assert stack.ml.public_calls() == []


async def test_pathway_422_is_passed_on_with_the_bundle_element(stack):
    envelope = {
        "error": {
            "code": "invalid_input",
            "message": "Invalid input: Age.",
            "request_id": "x",
            "details": [{"field": "Age", "message": "outside 0 to 120 years"}],
        }
    }
    stack.ml.canned["/classify"] = stack.canned(status=422, body=json.dumps(envelope).encode())
    client = await stack.start()
    r = await client.post("/fhir/classify", json=BUNDLE, headers={"X-API-Key": stack.client_key})
    assert r.status_code == 422
    detail = stack.envelope(r)["details"][0]
    assert detail["source"] == "Bundle.entry[0].resource.birthDate"


async def test_body_that_is_not_json_is_422(stack):
    client = await stack.start()
    r = await client.post(
        "/fhir/classify", content=b"<Bundle/>", headers={"X-API-Key": stack.client_key}
    )
    assert r.status_code == 422
    assert stack.envelope(r)["details"][0]["field"] == "body"


async def test_body_over_the_limit_is_413(stack):
    client = await stack.start(max_body_bytes=1000)
    r = await client.post("/fhir/classify", json=BUNDLE, headers={"X-API-Key": stack.client_key})
    assert r.status_code == 413
    assert stack.envelope(r)["code"] == "payload_too_large"


async def test_pathway_down_is_503(stack):
    await stack.ml.stop()
    client = await stack.start()
    r = await client.post("/fhir/classify", json=BUNDLE, headers={"X-API-Key": stack.client_key})
    assert r.status_code == 503
    assert stack.envelope(r)["code"] == "upstream_unavailable"


async def test_openapi_documents_the_fhir_routes_with_an_example(stack):
    client = await stack.start()
    doc = (await client.get("/openapi.json")).json()
    op = doc["paths"]["/fhir/classify"]["post"]
    example = op["requestBody"]["content"]["application/fhir+json"]["examples"]["ward"]["value"]
    assert example["resourceType"] == "Bundle"
    assert {"401", "422", "503"} <= set(op["responses"])
    assert "/fhir/genai-classify" in doc["paths"]
