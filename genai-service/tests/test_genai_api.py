"""The HTTP surface of the GenAI service: inputs, errors, batch, health, guardrail, metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sepsis_genai.app import create_app
from sepsis_genai.config import GenAISettings
from sepsis_genai.guardrail import load_guardrail_config
from sepsis_shared.service import MissingConfiguration
from sepsis_shared.settings import CALLER_ROLE_HEADER

AS_ADMIN = {CALLER_ROLE_HEADER: "admin"}  # what the gateway adds for an admin key

if TYPE_CHECKING:
    from tests.fakes.fake_openai import FakeOpenAI


async def test_guide_example_offline_out_of_the_box(
    offline_settings: Any, run_app: Any, guide_request: dict[str, Any]
) -> None:
    async with run_app(offline_settings()) as client:
        r = await client.post(
            "/genai-classify", json=guide_request, headers={"X-Request-ID": "req-guide-1"}
        )
        health = (await client.get("/genai-health")).json()
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-ID"] == "req-guide-1"
    body = r.json()
    assert body["request_id"] == "req-guide-1"
    assert body["patient_id"] == "TEST001"
    assert body["priority"] in ("Urgent", "Critical")
    assert body["alert"]["level"] == body["priority"]
    assert 0 <= body["risk_score"] <= 100
    assert body["llm"]["provider"] == "offline"
    assert body["llm"]["model"] is None
    assert body["degraded"] is False
    assert {f["flag"] for f in body["note_findings"]} >= {"mottled_skin"}
    assert body["guardrail"]["fired"]
    assert body["pipeline_version"] == health["pipeline_version"]
    assert set(body["clinical_scores"]) == {"qsofa", "sirs", "news2", "sofa"}
    assert "Resp" in body["missing_inputs"]
    assert health["status"] == "degraded"
    assert health["reason"].startswith("no LLM configured")
    assert health["provider"] == "offline"
    assert health["cache"]["state"] == "disabled"
    assert health["guardrail_version"] == body["guardrail"]["config_version"]


async def test_trends_are_reported(offline_settings: Any, run_app: Any) -> None:
    request = {"vitals": {"SBP": [88, 96, 104, 118], "HR": [120, 110, 100, 92], "Temp": 38.1}}
    async with run_app(offline_settings()) as client:
        body = (await client.post("/genai-classify", json=request)).json()
    sbp = body["trends"]["SBP"]
    assert (sbp["first"], sbp["last"], sbp["min"], sbp["max"], sbp["n"]) == (118, 88, 88, 118, 4)
    assert sbp["hours_span"] == 3
    assert sbp["slope_per_hour"] < 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"vitals": {"HR": "fast"}}, "vitals.HR"),
        ({"vitals": {"HR": []}}, "vitals.HR"),
        ({"vitals": {"HR": [{"val": 120, "ts": "yesterday"}]}}, "vitals.HR[0].ts"),
        ([1, 2, 3], "body"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    offline_settings: Any, run_app: Any, body: object, field: str
) -> None:
    async with run_app(offline_settings()) as client:
        r = await client.post("/genai-classify", json=body)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in [d["field"] for d in error["details"]]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b'{"vitals": {"HR": NaN}}',
        b'{"vitals": {"HR": 90}, "notes": "bad \\ud800"}',
        b"[" * 1000 + b"]" * 1000,
    ],
)
@pytest.mark.parametrize("route", ["/genai-classify", "/genai-classify-batch"])
async def test_unparseable_body_is_a_422(
    offline_settings: Any, run_app: Any, raw: bytes, route: str
) -> None:
    async with run_app(offline_settings()) as client:
        r = await client.post(route, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "body"


async def test_a_lone_surrogate_in_one_patient_of_a_batch_is_a_422(
    offline_settings: Any, run_app: Any
) -> None:
    raw = b'{"patients": [{"vitals": {"HR": 90}}, {"vitals": {"HR": 95}, "notes": "x \\udc00"}]}'
    async with run_app(offline_settings()) as client:
        r = await client.post(
            "/genai-classify-batch", content=raw, headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 422


async def test_a_body_that_is_not_declared_json_is_a_415(
    offline_settings: Any, run_app: Any
) -> None:
    async with run_app(offline_settings()) as client:
        r = await client.post(
            "/genai-classify",
            content=b'{"vitals": {"HR": 90}}',
            headers={"Content-Type": "text/plain"},
        )
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


async def test_body_too_large_is_a_413(offline_settings: Any, run_app: Any) -> None:
    big = {"vitals": {"HR": 90}, "notes": "x" * 5000}
    async with run_app(offline_settings(GENAI_MAX_BODY_BYTES=2048)) as client:
        r = await client.post("/genai-classify", json=big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


async def test_service_token_required_except_on_health(
    offline_settings: Any, run_app: Any, guide_request: dict[str, Any]
) -> None:
    async with run_app(offline_settings()) as client:
        refused = await client.post(
            "/genai-classify", json=guide_request, headers={"X-Service-Token": "wrong"}
        )
        healthz = await client.get("/healthz", headers={"X-Service-Token": ""})
        readyz = await client.get("/readyz", headers={"X-Service-Token": ""})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert healthz.status_code == 200
    assert readyz.status_code == 200
    assert readyz.json()["status"] == "ready"


def test_refuses_to_start_without_a_service_token() -> None:
    with pytest.raises(MissingConfiguration, match="SERVICE_TOKEN"):
        create_app(GenAISettings.model_validate({"LLM_PROVIDER": "offline"}))


def test_refuses_to_start_with_an_incomplete_azure_provider() -> None:
    settings = GenAISettings.model_validate(
        {
            "SERVICE_TOKEN": "genai-api-test-token-0123456789",
            "AZURE_OPENAI_ENDPOINT": "https://example.openai.azure.com/",
        }
    )
    with pytest.raises(MissingConfiguration, match="AZURE_OPENAI_API_KEY"):
        create_app(settings)


@pytest.mark.parametrize(
    ("env", "provider"),
    [
        ({}, "offline"),
        ({"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com/"}, "azure"),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}, "openai"),
        ({"OPENAI_API_KEY": "sk-test"}, "openai"),
        ({"LLM_PROVIDER": "offline", "OPENAI_API_KEY": "sk-test"}, "offline"),
    ],
)
def test_auto_provider_resolution(env: dict[str, str], provider: str) -> None:
    settings = GenAISettings.model_validate(
        {"SERVICE_TOKEN": "genai-api-test-token-0123456789", **env}
    )
    assert settings.resolved_provider() == provider


async def test_batch_keeps_order_and_reports_errors_at_their_index(
    offline_settings: Any, run_app: Any, guide_request: dict[str, Any]
) -> None:
    patients = [
        {**guide_request, "patient_id": "B0"},
        {"patient_id": "B1", "vitals": {"HR": -5}},
        {"patient_id": "B2", "vitals": {"HR": 80, "SBP": 125}},
    ]
    async with run_app(offline_settings()) as client:
        r = await client.post("/genai-classify-batch", json={"patients": patients})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["count"], body["errors"]) == (3, 1)
    ok0, bad, ok2 = body["results"]
    assert (ok0["index"], ok0["ok"], ok0["assessment"]["patient_id"]) == (0, True, "B0")
    assert (ok2["index"], ok2["ok"], ok2["assessment"]["patient_id"]) == (2, True, "B2")
    assert (bad["index"], bad["ok"], bad["assessment"]) == (1, False, None)
    assert bad["error"]["code"] == "invalid_input"
    assert bad["error"]["details"][0]["field"] == "patients[1].vitals.HR"


async def test_batch_over_the_limit_is_a_413(offline_settings: Any, run_app: Any) -> None:
    patients = [{"vitals": {"HR": 80}}] * 3
    async with run_app(offline_settings(GENAI_MAX_BATCH=2)) as client:
        r = await client.post("/genai-classify-batch", json={"patients": patients})
        wrong_shape = await client.post("/genai-classify-batch", json=[{"vitals": {"HR": 80}}])
    assert r.status_code == 413
    assert r.json()["error"]["details"] == {"max_items": 2, "items": 3}
    assert wrong_shape.status_code == 422


async def test_batch_with_the_llm_answers_each_patient_in_order(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any
) -> None:
    patients = [{"patient_id": f"P{i}", "vitals": {"HR": 80 + i, "Temp": 37.0}} for i in range(12)]
    fake_llm.configure(latency_s=0.05)
    async with run_app(llm_settings(GENAI_BATCH_CONCURRENCY=4)) as client:
        body = (await client.post("/genai-classify-batch", json={"patients": patients})).json()
    assert [r["assessment"]["patient_id"] for r in body["results"]] == [
        p["patient_id"] for p in patients
    ]
    assert {r["assessment"]["llm"]["status"] for r in body["results"]} == {"ok"}
    assert fake_llm.calls == 12
    assert fake_llm.max_in_flight <= 4  # the batch's concurrency bound


async def test_guardrail_reload_needs_the_admin_role_from_the_gateway(
    offline_settings: Any, run_app: Any
) -> None:
    async with run_app(offline_settings()) as client:
        token_only = await client.post("/genai-guardrail/reload")
        as_client = await client.post(
            "/genai-guardrail/reload", headers={CALLER_ROLE_HEADER: "client"}
        )
        as_admin = await client.post("/genai-guardrail/reload", headers=AS_ADMIN)
    assert [token_only.status_code, as_client.status_code, as_admin.status_code] == [403, 403, 200]


async def test_guardrail_thresholds_and_atomic_reload(
    offline_settings: Any, run_app: Any, tmp_path: Path, guide_request: dict[str, Any]
) -> None:
    path = tmp_path / "guardrail.json"
    config = load_guardrail_config().model_dump(mode="json", exclude_none=True)
    path.write_text(json.dumps(config))
    async with run_app(offline_settings(GUARDRAIL_CONFIG_PATH=str(path))) as client:
        before = (await client.get("/genai-guardrail/thresholds")).json()
        config["version"] = "test-2"
        path.write_text(json.dumps(config))
        reloaded = await client.post("/genai-guardrail/reload", headers=AS_ADMIN)
        after = (await client.get("/genai-guardrail/thresholds")).json()

        broken = dict(config, version="test-3")
        broken["rules"] = [{**config["rules"][0], "no_such_field": 1}, *config["rules"][1:]]
        path.write_text(json.dumps(broken))
        rejected = await client.post("/genai-guardrail/reload", headers=AS_ADMIN)
        path.write_text("version: [unclosed")
        unreadable = await client.post("/genai-guardrail/reload", headers=AS_ADMIN)
        still = (await client.get("/genai-guardrail/thresholds")).json()
        health = (await client.get("/genai-health")).json()
        assessed = (await client.post("/genai-classify", json=guide_request)).json()

    assert before["version"] == load_guardrail_config().version
    assert before["rules"]
    assert reloaded.status_code == 200
    assert reloaded.json()["version"] == "test-2"
    assert reloaded.json()["previous_version"] == before["version"]
    assert after["version"] == "test-2"
    for response in (rejected, unreadable):
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        assert "test-2 stays in force" in error["message"]
        assert error["details"]["active_version"] == "test-2"
        assert error["details"]["problems"]
    assert "no_such_field" in rejected.json()["error"]["message"]
    assert still["version"] == "test-2"
    assert health["guardrail_version"] == "test-2"
    assert assessed["guardrail"]["config_version"] == "test-2"


async def test_performance_reports_routes_cache_and_llm(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any, guide_request: dict[str, Any]
) -> None:
    async with run_app(llm_settings()) as client:
        for _ in range(3):
            await client.post("/genai-classify", json=guide_request)
        await client.post("/genai-classify", json={"vitals": {"HR": "x"}})
        perf = (await client.get("/performance")).json()
    route = perf["routes"]["/genai-classify"]
    assert route["count"] == 4
    assert route["client_errors_4xx"] == 1
    assert route["latency_ms"]["p50"] is not None
    assert route["latency_ms"]["p99"] >= route["latency_ms"]["p50"]
    assert perf["llm"]["provider"] == "openai"
    assert perf["llm"]["http_calls"] == fake_llm.calls == 3  # cache off: one call each
    assert perf["llm"]["by_status"] == {"ok": 3}
    assert perf["cache"]["state"] == "disabled"
    assert perf["service"] == "genai-service"


async def test_health_follows_the_llm_outcomes(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any, guide_request: dict[str, Any]
) -> None:
    async with run_app(llm_settings(GENAI_MAX_RETRIES=0)) as client:
        fresh = (await client.get("/genai-health")).json()
        await client.post("/genai-classify", json=guide_request)
        ok = (await client.get("/genai-health")).json()
        fake_llm.queue({"kind": "status", "status": 503})
        guide_request["vitals"]["HR"] = 121
        await client.post("/genai-classify", json=guide_request)
        failing = (await client.get("/genai-health")).json()
        guide_request["vitals"]["HR"] = 122
        await client.post("/genai-classify", json=guide_request)
        recovered = (await client.get("/genai-health")).json()
    assert (fresh["status"], fresh["last_llm_success"]) == ("available", None)
    assert ok["status"] == "available"
    assert ok["model"] == "gpt-test"
    assert ok["last_llm_success"] is not None
    assert failing["status"] == "degraded"
    assert "server_error" in failing["reason"]
    assert failing["last_llm_failure"] is not None
    assert recovered["status"] == "available"


async def test_openapi_documents_the_routes_and_the_guide_example(
    offline_settings: Any, run_app: Any
) -> None:
    async with run_app(offline_settings()) as client:
        doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    for path in (
        "/genai-classify",
        "/genai-classify-batch",
        "/genai-health",
        "/genai-guardrail/thresholds",
        "/genai-guardrail/reload",
        "/performance",
    ):
        assert path in paths, path
    classify = paths["/genai-classify"]["post"]
    examples = classify["requestBody"]["content"]["application/json"]["examples"]
    assert any(e["value"].get("patient_id") == "TEST001" for e in examples.values())
    schema = doc["components"]["schemas"]["GenAIAssessment"]
    assert "NOT a calibrated" in schema["properties"]["sepsis_probability_6h"]["description"]
    assert "probability_source" in schema["required"]
