"""ml-service over ASGI with its lifespan, the real model and the packaged config."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import yaml
from asgi_lifespan import LifespanManager

from sepsis_ml.app import create_app
from sepsis_ml.config import MLSettings
from sepsis_ml.mlconfig import ConfigError, packaged_config_path
from sepsis_ml.model import ModelLoadError, SepsisModel
from sepsis_ml.schemas import BatchAssessment, BatchErrorEntry, BatchResponse, MLAssessment
from sepsis_shared.assessment import Priority, alert_for
from sepsis_shared.patient import FLAT_EXAMPLE
from sepsis_shared.settings import CALLER_ROLE_HEADER

AS_ADMIN = {CALLER_ROLE_HEADER: "admin"}  # what the gateway adds for an admin key

TOKEN = "ml-test-token-0123456789abcdef"
STRUCTURED: dict[str, Any] = {
    "patient_id": "TEST001",
    "vitals": {
        "HR": [{"val": 104, "ts": "2026-02-07T17:30"}, {"val": 118, "ts": "2026-02-07T18:30"}],
        "SBP": [88, 96, 104],
        "Temp": 38.9,
        "Lactate": 3.2,
        "WBC": 18.5,
    },
    "notes": "Patient appears lethargic",
}


def _settings(**overrides: Any) -> MLSettings:
    return MLSettings(SERVICE_TOKEN=TOKEN, LOG_FORMAT="text", **overrides)


@asynccontextmanager
async def _running(settings: MLSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://ml-service",
            headers={"X-Service-Token": TOKEN},
        ) as client,
    ):
        yield client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with _running(_settings()) as c:
        yield c


def _config_file(tmp_path: Path, **changes: Any) -> Path:
    data = yaml.safe_load(packaged_config_path().read_text(encoding="utf-8"))
    data.update(changes)
    path = tmp_path / "ml-config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _fields(response: httpx.Response) -> list[str]:
    body = response.json()
    assert body["error"]["code"] == "invalid_input"
    return [d["field"] for d in body["error"]["details"]]


# ---- /classify ------------------------------------------------------------------------------


async def test_design_example_returns_the_full_assessment(client: httpx.AsyncClient) -> None:
    response = await client.post("/classify", json=FLAT_EXAMPLE, headers={"X-Request-ID": "r-1"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assessment = MLAssessment.model_validate(body)
    assert set(body) == set(MLAssessment.model_fields)
    assert 0 <= assessment.risk_score <= 100
    assert 0 <= assessment.sepsis_probability_6h <= 1
    assert assessment.model_probability == pytest.approx(assessment.sepsis_probability_6h, abs=1e-6)
    assert assessment.alert == alert_for(assessment.priority)
    assert assessment.request_id == "r-1"
    assert assessment.processing_time_ms > 0
    assert 3 <= len(assessment.drivers) <= 5
    assert assessment.clinical_scores.qsofa.score == 2  # RR 22 and SBP 95
    assert assessment.clinical_scores.sirs.score == 4
    # qSOFA >= 2 puts this patient at Urgent at least, whatever the model says.
    assert assessment.priority.rank >= Priority.URGENT.rank
    assert "qsofa>=2" in assessment.rules_fired
    assert assessment.priority_rule in [*assessment.rules_fired, "risk_score_band"]
    assert not assessment.icu_los_known
    assert "GCS" in assessment.missing_inputs
    config = (await client.get("/config/current")).json()
    assert assessment.config_version == config["version"]
    assert assessment.model.name == config["model"]["name"]
    assert assessment.alert_threshold == config["model"]["alert_threshold"]


async def test_structured_form_with_series_and_icu_stay(client: httpx.AsyncClient) -> None:
    patient = {**STRUCTURED, "vitals": {**STRUCTURED["vitals"], "ICULOS": 30}}
    response = await client.post("/classify", json=patient)
    assert response.status_code == 200, response.text
    body = MLAssessment.model_validate(response.json())
    assert body.patient_id == "TEST001"
    assert body.icu_los_known
    assert any(d.startswith("Lactate 3.2 mmol/L") for d in body.drivers)


async def test_same_patient_in_both_forms_scores_the_same(client: httpx.AsyncClient) -> None:
    flat = (await client.post("/classify", json=FLAT_EXAMPLE)).json()
    vitals = {k: v for k, v in FLAT_EXAMPLE.items() if k not in ("Age", "Gender")}
    structured = {"vitals": vitals, "Age": 65, "Gender": "male"}
    other = (await client.post("/classify", json=structured)).json()
    for key in ("risk_score", "model_probability", "priority", "priority_rule", "drivers"):
        assert flat[key] == other[key], key


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"HR": 900}, "HR"),
        ({"HR": "fast", "SBP": 95}, "HR"),
        ({"vitals": {"HR": [], "SBP": 95}}, "vitals.HR"),
        ({"HR": 90, "units": {"Temp": "kelvin"}, "Temp": 310}, "units.Temp"),
        ({"vitals": {"HR": [{"val": 90, "ts": "yesterday"}]}}, "vitals.HR[0].ts"),
        ({}, "vitals"),
        ({"HR": 80, "Sodium": 140}, "Sodium"),
        ({"vitals": {"SBP": [{"val": "high", "ts": "2026-02-07T18:30"}]}}, "vitals.SBP[0].val"),
        ([1, 2, 3], "body"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, body: object, field: str
) -> None:
    response = await client.post("/classify", json=body)
    assert response.status_code == 422
    assert field in _fields(response)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"HR": 110,', "body"),
        (b"", "body"),
        (b'{"HR": NaN}', "body"),
        (b'{"HR": 80} {"HR": 90}', "body"),
        (b'{"HR": 1e999}', "HR"),
        (b'{"HR": 90, "notes": "bad \\ud800"}', "body"),
        (b"[" * 1000 + b"]" * 1000, "body"),
    ],
)
async def test_invalid_json_is_a_422_naming_the_body(
    client: httpx.AsyncClient, content: bytes, field: str
) -> None:
    response = await client.post(
        "/classify", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert _fields(response) == [field]
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_that_is_not_declared_json_is_a_415(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await client.post(
        "/classify", content=b'{"HR": 90}', headers={"content-type": content_type}
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


async def test_oversized_body_is_a_413(tmp_path: Path) -> None:
    del tmp_path
    async with _running(_settings(ML_MAX_BODY_BYTES=2048)) as client:
        response = await client.post("/classify", json={"HR": [80] * 1000})
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"


async def test_septic_shock_with_a_low_model_probability_is_critical(tmp_path: Path) -> None:
    # The alert threshold is set out of the model's reach: the rule alone must decide.
    path = _config_file(tmp_path, version="shock-test", alert_threshold=0.99)
    async with _running(_settings(ML_CONFIG_PATH=path)) as client:
        response = await client.post("/classify", json={"MAP": 58, "Lactate": 3.4, "HR": 96})
        assert response.status_code == 200, response.text
        body = response.json()
    assert body["model_probability"] < body["alert_threshold"] == 0.99
    assert body["config_version"] == "shock-test"
    assert body["priority"] == "Critical"
    assert body["priority_rule"] == "septic_shock_criteria"
    assert body["alert"]["colour"] == "red"
    assert body["risk_score"] >= 75
    assert body["drivers"][0].startswith("Septic shock criteria: MAP 58 mmHg (< 65)")


async def test_model_runs_in_the_inference_pool_not_on_the_loop(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    original = SepsisModel.predict

    def spy(self: SepsisModel, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
        threads.append(threading.current_thread().name)
        return original(self, features)

    monkeypatch.setattr(SepsisModel, "predict", spy)
    assert (await client.post("/classify", json=FLAT_EXAMPLE)).status_code == 200
    assert (await client.post("/classify-batch", json={"patients": [FLAT_EXAMPLE]})).is_success
    assert len(threads) == 2
    assert all(name.startswith("inference") for name in threads), threads
    assert threading.main_thread().name not in threads


async def test_an_arterial_line_flush_point_is_left_out_and_said(
    client: httpx.AsyncClient,
) -> None:
    series = [
        {"val": 118, "ts": "2026-02-07T16:00Z"},
        {"val": 343, "ts": "2026-02-07T17:00Z"},  # a flush: not a blood pressure
        {"val": 112, "ts": "2026-02-07T18:00Z"},
    ]
    clean = [series[0], series[2]]
    with_flush = {"vitals": {"SBP": series, "HR": 96, "Resp": 20}, "FiO2": 0.2}
    without = {"vitals": {"SBP": clean, "HR": 96, "Resp": 20}, "FiO2": 0.21}
    response = await client.post("/classify", json=with_flush)
    assert response.status_code == 200, response.text
    body = MLAssessment.model_validate(response.json())
    issues = {(i.field, i.action): i for i in body.data_quality}
    assert set(issues) == {("vitals.SBP[1].val", "left_out"), ("FiO2", "read_as")}
    flush = issues["vitals.SBP[1].val", "left_out"]
    assert (flush.value, flush.time, flush.hours_ago) == (343.0, "2026-02-07T17:00Z", 1.0)
    assert issues["FiO2", "read_as"].used_value == 0.21
    # the answer is the one the clean series gets
    other = (await client.post("/classify", json=without)).json()
    assert body.risk_score == other["risk_score"]
    assert body.model_probability == other["model_probability"]


async def test_findings_written_only_in_the_notes_are_scored_and_said(
    client: httpx.AsyncClient,
) -> None:
    vitals = {"HR": 112, "Resp": 23, "SBP": 104, "O2Sat": 94, "Temp": 38.3}
    plain = (await client.post("/classify", json={"vitals": vitals})).json()
    noted = (
        await client.post(
            "/classify",
            json={
                "vitals": vitals,
                "notes": "GCS 11, on 4 L nasal cannula, norepinephrine started",
            },
        )
    ).json()
    assert plain["clinical_scores"]["qsofa"]["components"]["altered_mentation"] is None
    assert noted["clinical_scores"]["qsofa"]["components"]["altered_mentation"] == 1
    assert noted["clinical_scores"]["news2"]["components"]["consciousness"] == 3
    assert noted["clinical_scores"]["news2"]["components"]["air_or_oxygen"] == 2
    assert noted["clinical_scores"]["sofa"]["components"]["cardiovascular"] == 2
    assert noted["clinical_scores"]["news2"]["score"] > plain["clinical_scores"]["news2"]["score"]
    assert {f["variable"]: f["source"] for f in noted["findings"]} == {
        "GCS": "note",
        "SupplementalO2": "note",
        "Vasopressors": "note",
    }
    assert any(d.startswith("From the notes: GCS 11") for d in noted["drivers"])
    assert Priority(noted["priority"]).rank >= Priority(plain["priority"]).rank


async def test_confidence_says_what_the_answer_rests_on(client: httpx.AsyncClient) -> None:
    full = {
        "vitals": {"HR": [96, 92], "Resp": 20, "SBP": 118, "O2Sat": 97, "Temp": 37.2},
        "labs": {"Lactate": 1.4, "WBC": 9.0, "Creatinine": 0.9},
    }
    sparse = {"HR": 96, "Temp": 37.2}
    high = (await client.post("/classify", json=full)).json()["confidence"]
    low = (await client.post("/classify", json=sparse)).json()["confidence"]
    assert high["level"] == "high"
    assert high["reasons"] == []
    assert low["level"] == "low"
    assert low["missing_vitals"] == ["respiratory rate", "blood pressure", "SpO2"]
    # far outside what the model was trained on: low, with the input named
    odd = {**full, "vitals": {**full["vitals"], "HR": [260, 250]}}
    outside = (await client.post("/classify", json=odd)).json()["confidence"]
    assert outside["level"] == "low"
    assert any(
        text.startswith("HR 260 above the training range") for text in outside["outside_training"]
    )


# ---- /classify-batch ------------------------------------------------------------------------


async def test_batch_keeps_order_and_isolates_a_bad_patient(client: httpx.AsyncClient) -> None:
    single = (await client.post("/classify", json=STRUCTURED)).json()
    before = (await client.get("/performance")).json()["inference"]
    patients = [FLAT_EXAMPLE, {"HR": 80, "SBP": "high"}, STRUCTURED, {"Resp": 12}]
    response = await client.post(
        "/classify-batch", json={"patients": patients}, headers={"X-Request-ID": "batch-1"}
    )
    assert response.status_code == 200, response.text
    body = BatchResponse.model_validate(response.json())
    assert body.count == 4
    assert body.errors == 1
    assert body.request_id == "batch-1"
    assert [r.index for r in body.results] == [0, 1, 2, 3]
    bad = body.results[1]
    assert isinstance(bad, BatchErrorEntry)
    assert bad.error.code == "invalid_input"
    assert [d["field"] for d in bad.error.details] == ["patients[1].SBP"]
    good = body.results[2]
    assert isinstance(good, BatchAssessment)
    assert good.patient_id == "TEST001"
    # The batch scores a patient exactly as /classify does.
    for key in ("risk_score", "model_probability", "priority", "priority_rule", "drivers"):
        assert getattr(good, key) == single[key], key
    after = (await client.get("/performance")).json()["inference"]
    assert after["calls"] == before["calls"] + 1, "one model call for the whole batch"
    assert after["rows_scored"] == before["rows_scored"] + 3


async def test_batch_of_only_bad_patients_answers_200_with_errors(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/classify-batch", json={"patients": [{"HR": -5}, "text"]})
    assert response.status_code == 200
    body = response.json()
    assert body["errors"] == 2
    assert [r["error"]["details"][0]["field"] for r in body["results"]] == [
        "patients[0].HR",
        "patients[1]",
    ]


async def test_batch_over_the_limit_is_a_413_naming_it() -> None:
    async with _running(_settings(ML_MAX_BATCH=3)) as client:
        ok = await client.post("/classify-batch", json={"patients": [FLAT_EXAMPLE] * 3})
        assert ok.status_code == 200
        response = await client.post("/classify-batch", json={"patients": [FLAT_EXAMPLE] * 4})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert "3" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"patient": []}, "patients"), ({"patients": []}, "patients"), ({"patients": 5}, "patients")],
)
async def test_malformed_batch_is_a_422(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/classify-batch", json=body)
    assert response.status_code == 422
    assert field in _fields(response)


# ---- config ---------------------------------------------------------------------------------


async def test_config_current_shows_what_is_in_force(client: httpx.AsyncClient) -> None:
    body = (await client.get("/config/current")).json()
    shipped = yaml.safe_load(packaged_config_path().read_text(encoding="utf-8"))
    assert body["version"] == shipped["version"]
    assert body["path"] == str(packaged_config_path())
    assert len(body["sha256"]) == 64
    assert body["alert_threshold_source"] == "model"
    assert body["effective_alert_threshold"] == body["model"]["alert_threshold"]
    assert body["config"]["blend"]["model_weight"] == shipped["blend"]["model_weight"]
    assert body["config"]["bands"] == shipped["bands"]
    assert body["model"]["version"]


async def test_configured_alert_threshold_overrides_the_model(tmp_path: Path) -> None:
    path = _config_file(tmp_path, alert_threshold=0.42)
    async with _running(_settings(ML_CONFIG_PATH=path)) as client:
        config = (await client.get("/config/current")).json()
        assessment = (await client.post("/classify", json=FLAT_EXAMPLE)).json()
    assert config["effective_alert_threshold"] == 0.42
    assert config["alert_threshold_source"] == "config"
    assert assessment["alert_threshold"] == 0.42


@pytest.mark.parametrize("role", [None, "client", "ADMIN "])
async def test_reload_needs_the_admin_role_from_the_gateway_not_only_the_token(
    tmp_path: Path, role: str | None
) -> None:
    path = _config_file(tmp_path, version="reload-role")
    headers = {} if role is None else {CALLER_ROLE_HEADER: role}
    async with _running(_settings(ML_CONFIG_PATH=path)) as client:
        response = await client.post("/reload-config", headers=headers)
    if role == "ADMIN ":
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"


async def test_reload_applies_a_good_file_and_rejects_a_bad_one(tmp_path: Path) -> None:
    path = _config_file(tmp_path, version="reload-1")
    async with _running(_settings(ML_CONFIG_PATH=path)) as client:
        unchanged = await client.post("/reload-config", headers=AS_ADMIN)
        assert unchanged.status_code == 200
        assert unchanged.json()["changed"] is False

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["version"] = "reload-2"
        data["bands"]["urgent"] = 40
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        good = await client.post("/reload-config", headers=AS_ADMIN)
        assert good.status_code == 200, good.text
        assert good.json()["changed"] is True
        assert good.json()["previous_version"] == "reload-1"
        assert good.json()["current"]["version"] == "reload-2"
        assert (await client.get("/config/current")).json()["config"]["bands"]["urgent"] == 40
        assessed = (await client.post("/classify", json=FLAT_EXAMPLE)).json()
        assert assessed["config_version"] == "reload-2"

        data["version"] = "reload-3"
        data["blend"]["model_weight"] = 0.9
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        bad = await client.post("/reload-config", headers=AS_ADMIN)
        assert bad.status_code == 422
        error = bad.json()["error"]
        assert "blend.clinical_weight" in [d["field"] for d in error["details"]]
        assert "reload-2 stays in force" in error["message"]
        current = (await client.get("/config/current")).json()
        assert current["version"] == "reload-2"
        assessed = (await client.post("/classify", json=FLAT_EXAMPLE)).json()
        assert assessed["config_version"] == "reload-2"

        path.write_text("version: [", encoding="utf-8")
        broken = await client.post("/reload-config", headers=AS_ADMIN)
        assert broken.status_code == 422
        assert (await client.get("/config/current")).json()["version"] == "reload-2"


# ---- health, auth, metrics, OpenAPI ---------------------------------------------------------


async def test_readyz_only_after_the_lifespan_loaded_and_warmed_the_model() -> None:
    app = create_app(_settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ml-service") as cold:
        not_ready = await cold.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["status"] == "not_ready"
        assert (await cold.get("/healthz")).status_code == 200
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://ml-service"
        ) as warm,
    ):
        ready = await warm.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        performance = (await warm.get("/performance", headers={"X-Service-Token": TOKEN})).json()
        assert performance["inference"]["rows_scored"] == 0, "the warm-up is not counted"


async def test_the_service_token_is_required(client: httpx.AsyncClient) -> None:
    for headers in ({"X-Service-Token": ""}, {"X-Service-Token": "wrong"}):
        response = await client.post("/classify", json=FLAT_EXAMPLE, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    bare = httpx.AsyncClient(transport=client._transport, base_url="http://ml-service")
    async with bare:
        assert (await bare.get("/config/current")).status_code == 401
        assert (await bare.get("/healthz")).status_code == 200


async def test_performance_counts_requests_errors_and_rows(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await client.post("/classify", json=FLAT_EXAMPLE)).status_code == 200
    assert (await client.post("/classify", json={"HR": "fast"})).status_code == 422
    assert (await client.post("/classify", headers={"X-Service-Token": "no"})).status_code == 401
    assert (await client.post("/classify-batch", json={"patients": [FLAT_EXAMPLE] * 5})).is_success
    body = (await client.get("/performance")).json()
    classify = body["routes"]["/classify"]
    assert classify["count"] == 5
    assert classify["errors"] == 2
    assert classify["client_errors"] == 2
    assert classify["server_errors"] == 0
    assert classify["error_rate"] == pytest.approx(0.4)
    latency = classify["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert body["routes"]["/classify-batch"]["count"] == 1
    assert body["inference"]["calls"] == 4
    assert body["inference"]["rows_scored"] == 8
    assert body["inference"]["mean_batch_size"] == pytest.approx(2.0)
    assert body["inference"]["max_batch_size"] == 5
    assert body["inference_threads"] >= 1


async def test_openapi_documents_bodies_responses_and_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    classify = spec["paths"]["/classify"]["post"]
    body = classify["requestBody"]["content"]["application/json"]
    assert len(body["schema"]["oneOf"]) == 2
    assert body["examples"]["flat"]["value"] == FLAT_EXAMPLE
    ok = classify["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/MLAssessment")
    assert {"401", "413", "422"} <= set(classify["responses"])
    batch = spec["paths"]["/classify-batch"]["post"]
    assert (
        batch["requestBody"]["content"]["application/json"]["schema"]["properties"]["patients"][
            "maxItems"
        ]
        == 1000
    )
    assert {"/config/current", "/reload-config", "/performance", "/readyz"} <= set(spec["paths"])
    assert "priority_rule" in spec["components"]["schemas"]["MLAssessment"]["properties"]


async def test_startup_fails_loudly_without_a_model_or_with_a_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        async with LifespanManager(create_app(_settings(ML_MODEL_DIR=tmp_path))):
            pass
    bad = tmp_path / "ml-config.yaml"
    bad.write_text("version: x\nbands: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        async with LifespanManager(create_app(_settings(ML_CONFIG_PATH=bad))):
            pass
