"""The public contract through the gateway: request ids, the merged OpenAPI document, batches
and their per-item errors, 422s that name the field, the index and the performance figures."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sepsis_shared.patient import FLAT_EXAMPLE, STRUCTURED_EXAMPLE

if TYPE_CHECKING:
    from tests.e2e.conftest import LLMSetup

pytestmark = pytest.mark.e2e

# DESIGN §4: every public route the gateway serves.
PUBLIC_ROUTES = {
    ("/", "get"),
    ("/health", "get"),
    ("/classify", "post"),
    ("/classify-batch", "post"),
    ("/config/current", "get"),
    ("/reload-config", "post"),
    ("/genai-classify", "post"),
    ("/genai-classify-batch", "post"),
    ("/genai-health", "get"),
    ("/genai-guardrail/thresholds", "get"),
    ("/genai-guardrail/reload", "post"),
    ("/performance", "get"),
}
# The original deployment guide's /classify request (DESIGN §8): a sick patient.
SICK = FLAT_EXAMPLE
WELL = {"HR": 72, "SBP": 124, "DBP": 78, "Temp": 36.8, "Resp": 14, "O2Sat": 99, "Age": 40}
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def keyed(key: str, **headers: str) -> dict[str, str]:
    return {"X-API-Key": key, **headers}


def fields(error: dict[str, Any]) -> list[str]:
    return [item["field"] for item in error["details"]]


# --- request ids ---------------------------------------------------------------------------------


def test_sent_request_id_is_echoed_and_reaches_the_service(
    gateway: httpx.Client, client_key: str
) -> None:
    rid = "e2e-trace.0001"
    response = gateway.post(
        "/classify", json=SICK, headers=keyed(client_key, **{"X-Request-ID": rid})
    )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == rid
    # The body is written by ml-service: the id travelled upstream with the call.
    assert response.json()["request_id"] == rid


def test_request_id_is_generated_when_absent(gateway: httpx.Client, client_key: str) -> None:
    first = gateway.post("/classify", json=SICK, headers=keyed(client_key))
    second = gateway.post("/classify", json=SICK, headers=keyed(client_key))
    ids = [r.headers["X-Request-ID"] for r in (first, second)]
    assert all(REQUEST_ID.match(i) for i in ids)
    assert ids[0] != ids[1]
    assert first.json()["request_id"] == ids[0]
    # the answers do not name the server software
    assert "server" not in first.headers


def test_request_id_is_in_error_envelopes_too(gateway: httpx.Client, client_key: str) -> None:
    rid = "e2e-invalid-0002"
    response = gateway.post(
        "/genai-classify", json={"HR": "fast"}, headers=keyed(client_key, **{"X-Request-ID": rid})
    )
    assert response.status_code == 422
    assert response.headers["X-Request-ID"] == rid
    assert response.json()["error"]["request_id"] == rid


# --- OpenAPI -------------------------------------------------------------------------------------


def test_merged_openapi_lists_every_public_route(gateway: httpx.Client) -> None:
    response = gateway.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    listed = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    missing = PUBLIC_ROUTES - listed
    assert not missing, f"not in the merged document: {sorted(missing)}"
    # Nothing internal leaks into the public document.
    assert not {p for p, _ in listed} & {"/healthz", "/readyz"}


def test_merged_openapi_carries_the_guides_examples(gateway: httpx.Client) -> None:
    doc = gateway.get("/openapi.json").json()

    def examples(path: str) -> list[Any]:
        content = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        found = [e["value"] for e in content.get("examples", {}).values()]
        return found + ([content["example"]] if "example" in content else [])

    assert SICK in examples("/classify")
    assert STRUCTURED_EXAMPLE in examples("/genai-classify")


def test_index_lists_the_endpoints(gateway: httpx.Client) -> None:
    body = gateway.get("/").json()
    assert body["name"]
    assert body["version"]
    listed = {(e["path"], e["method"].lower()) for e in body["endpoints"]}
    assert listed >= PUBLIC_ROUTES


# --- batches -------------------------------------------------------------------------------------


def test_classify_batch_keeps_order_and_isolates_bad_items(
    gateway: httpx.Client, client_key: str
) -> None:
    patients = [SICK, {"HR": "fast", "SBP": 120}, WELL, SICK]
    response = gateway.post(
        "/classify-batch", json={"patients": patients}, headers=keyed(client_key)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 4
    assert body["errors"] == 1
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert results[1]["error"]["code"] == "invalid_input"
    assert "patients[1].HR" in fields(results[1]["error"])
    # Each good result is the one its own patient gets alone: order is real, not relabelled.
    for index in (0, 2, 3):
        alone = gateway.post("/classify", json=patients[index], headers=keyed(client_key)).json()
        assert results[index]["risk_score"] == alone["risk_score"]
        assert results[index]["priority"] == alone["priority"]
    assert results[0]["risk_score"] > results[2]["risk_score"]


def test_genai_batch_keeps_order_and_isolates_bad_items(
    gateway: httpx.Client, client_key: str
) -> None:
    patients = [WELL, {"vitals": {"SBP": -5}}, SICK]
    response = gateway.post(
        "/genai-classify-batch", json={"patients": patients}, headers=keyed(client_key)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3
    assert body["errors"] == 1
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert [r["ok"] for r in results] == [True, False, True]
    assert results[1]["error"]["code"] == "invalid_input"
    assert "patients[1].vitals.SBP" in fields(results[1]["error"])
    well, sick = results[0]["assessment"], results[2]["assessment"]
    assert sick["risk_score"] > well["risk_score"]


def test_batch_that_is_not_a_batch_is_422(gateway: httpx.Client, client_key: str) -> None:
    for path in ("/classify-batch", "/genai-classify-batch"):
        response = gateway.post(path, json=[SICK], headers=keyed(client_key))
        assert response.status_code == 422, path
        assert "patients" in fields(response.json()["error"])


# --- 422 naming the field ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/classify", "/genai-classify"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"HR": "fast", "SBP": 95}, "HR"),
        ({"Temp": 385}, "Temp"),  # the only value, and no temperature: nothing to assess
        ({"HR": 110, "units": {"Temp": "kelvin"}, "Temp": 310}, "units.Temp"),
        ({"vitals": {"HR": [{"val": 118, "ts": "yesterday"}]}}, "vitals.HR[0].ts"),
        ({"vitals": {"SBP": []}}, "vitals.SBP"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    gateway: httpx.Client, client_key: str, path: str, body: dict[str, Any], field: str
) -> None:
    response = gateway.post(path, json=body, headers=keyed(client_key))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in fields(error)


@pytest.mark.parametrize("path", ["/classify", "/genai-classify"])
def test_both_pathways_leave_out_an_artefact_and_say_so(
    gateway: httpx.Client, client_key: str, path: str
) -> None:
    body = {
        "patient_id": "ART-1",
        "vitals": {"HR": [104, 300.5, 98], "SBP": [92, 343, 101], "Temp": 38.4, "Resp": 22},
        "FiO2": 40,
        "notes": "GCS 13, on 2 L nasal cannula",
    }
    response = gateway.post(path, json=body, headers=keyed(client_key))
    assert response.status_code == 200, response.text
    answer = response.json()
    issues = {(i["field"], i["action"]) for i in answer["data_quality"]}
    assert issues == {
        ("vitals.HR[1]", "left_out"),
        ("vitals.SBP[1]", "left_out"),
        ("FiO2", "read_as"),
    }
    assert {f["variable"]: f["source"] for f in answer["findings"]} == {
        "GCS": "note",
        "SupplementalO2": "note",
    }
    assert answer["clinical_scores"]["qsofa"]["components"]["altered_mentation"] == 1
    assert answer["confidence"]["level"] in ("high", "medium", "low")


def test_body_that_is_not_json_is_422(gateway: httpx.Client, client_key: str) -> None:
    response = gateway.post(
        "/classify",
        content=b"HR=110&SBP=95",
        headers=keyed(client_key, **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


# --- configuration and figures -------------------------------------------------------------------


def test_active_configs_are_readable(gateway: httpx.Client, client_key: str) -> None:
    ml = gateway.get("/config/current", headers=keyed(client_key))
    assert ml.status_code == 200
    assert ml.json()["version"]
    guardrail = gateway.get("/genai-guardrail/thresholds", headers=keyed(client_key))
    assert guardrail.status_code == 200
    assert guardrail.json()["version"]


def test_performance_counts_what_was_served(gateway: httpx.Client, client_key: str) -> None:
    for _ in range(3):
        assert gateway.post("/classify", json=WELL, headers=keyed(client_key)).status_code == 200
    response = gateway.get("/performance", headers=keyed(client_key))
    assert response.status_code == 200
    body = response.json()
    classify = body["routes"]["/classify"]
    assert classify["count"] >= 3
    assert classify["latency_ms"]["p50"] is not None
    assert classify["latency_ms"]["p50"] <= classify["latency_ms"]["p99"]
    # Each upstream's own figures are gathered too.
    assert set(body["upstreams"]) >= {"ml", "genai"}


# --- the GenAI answer cache on Redis -------------------------------------------------------------


def test_genai_answers_are_cached_in_redis(
    gateway: httpx.Client, client_key: str, llm: LLMSetup
) -> None:
    if llm.origin is None:
        pytest.skip("GenAI runs offline in this stack: no LLM answer to cache")
    patient = {
        "patient_id": "E2E-CACHE-1",
        "vitals": {"HR": 131, "SBP": 101, "Temp": 39.4, "Resp": 26, "O2Sat": 93},
        "notes": "Rigors overnight, new confusion this morning",
    }
    llm_calls = httpx.get(f"{llm.origin}/_admin/stats", timeout=5.0).json()["calls"]
    hits = gateway.get("/genai-health").json()["cache"]["hits"]

    first = gateway.post("/genai-classify", json=patient, headers=keyed(client_key)).json()
    second = gateway.post("/genai-classify", json=patient, headers=keyed(client_key)).json()
    assert (first["llm"]["status"], first["llm"]["cached"]) == ("ok", False)
    assert (second["llm"]["status"], second["llm"]["cached"]) == ("cached", True)
    assert second["risk_score"] == first["risk_score"]
    assert second["priority"] == first["priority"]
    # One LLM call for the two requests; the second came from Redis.
    assert httpx.get(f"{llm.origin}/_admin/stats", timeout=5.0).json()["calls"] == llm_calls + 1
    assert gateway.get("/genai-health").json()["cache"]["hits"] == hits + 1
