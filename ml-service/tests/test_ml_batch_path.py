"""The vectorised batch path gives every patient exactly what the per-patient path gives.

`assess_batch` (batch_inputs -> batch_scores -> batch_blend, one model call) is compared with
`assessment` (the per-patient functions and `sepsis_shared.scores`) on the encoded JSON of each
patient, byte for byte: over generated patients whose values sit on and around every clinical
threshold (missing values, stand-in inputs, lists, time series and units included), over real
hours of set A, under several clinical configs and at probabilities on and around the alert
threshold. The parts are compared too: windows, features, latest values, score results.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import yaml

from sepsis_ml import batch_scores as batch_scores_module
from sepsis_ml.batch_assess import EncodedAssessment
from sepsis_ml.batch_inputs import COLUMN, LATEST_VARIABLES, batch_inputs
from sepsis_ml.batch_scores import SCORES, ScoreCache, batch_scores
from sepsis_ml.blend import TREND_VARIABLES, window_trend
from sepsis_ml.config import MLSettings
from sepsis_ml.features import (
    FEATURE_NAMES,
    INPUT_VARIABLES,
    WINDOW_HOURS,
    PatientWindow,
    features_for_windows,
    features_from_arrays,
    window_from_patient,
)
from sepsis_ml.metrics import InferenceStats, ServiceMetrics
from sepsis_ml.mlconfig import ConfigStore, packaged_config_path
from sepsis_ml.model import SepsisModel
from sepsis_ml.runtime import (
    VECTORISED_FROM,
    InferenceRuntime,
    ServiceState,
    assess_patients,
    assessment,
    encode_json,
    release_later,
)
from sepsis_shared import scores as s
from sepsis_shared.errors import ServiceError
from sepsis_shared.patient import (
    HourlyPatient,
    NormalizedPatient,
    parse_patient,
    parse_patient_hourly,
)
from sepsis_shared.scores import clinical_scores
from sepsis_shared.variables import VARIABLES

SET_A = Path(__file__).resolve().parents[3] / "shared" / "data" / "physionet2019" / "setA.parquet"
FloatArray = npt.NDArray[np.float64]


def _bounds(bands: Sequence[tuple[float, int]]) -> list[float]:
    return [float(b) for b, _ in bands]


# Every threshold the scores, the shock rule and the drivers read, per variable.
THRESHOLDS: dict[str, list[float]] = {
    "Resp": [s.QSOFA_RESP_MIN, s.SIRS_RESP_ABOVE, *_bounds(s.NEWS2_RESP_BANDS)],
    "SBP": [s.QSOFA_SBP_MAX, *_bounds(s.NEWS2_SBP_BANDS)],
    "DBP": [40.0, 55.0, 60.0],
    "MAP": [s.SOFA_MAP_MIN, 65.0],
    "HR": [s.SIRS_HR_ABOVE, *_bounds(s.NEWS2_HR_BANDS)],
    "Temp": [s.SIRS_TEMP_ABOVE, s.SIRS_TEMP_BELOW, *_bounds(s.NEWS2_TEMP_BANDS)],
    "WBC": [s.SIRS_WBC_ABOVE, s.SIRS_WBC_BELOW],
    "PaCO2": [s.SIRS_PACO2_BELOW],
    "O2Sat": [*_bounds(s.NEWS2_SPO2_BANDS), s.SOFA_SF_MAX_SPO2, 88.0],
    "FiO2": [s.ROOM_AIR_FIO2, 0.3, 0.4, 0.5, 1.0],
    "PaO2": [40.0, 60.0, 80.0, 100.0],
    "GCS": [s.QSOFA_GCS_NORMAL, *_bounds(s.SOFA_GCS_BANDS)],
    "Consciousness": [0.0, 1.0, 4.0],
    "SupplementalO2": [0.0, 1.0],
    "Vasopressors": [0.0, 1.0],
    "Platelets": _bounds(s.SOFA_PLATELET_BANDS),
    "Bilirubin_total": _bounds(s.SOFA_BILIRUBIN_BANDS),
    "Creatinine": _bounds(s.SOFA_CREATININE_BANDS),
    "UrineOutput": [b / 24 for b, _ in s.SOFA_URINE_BANDS] + [40.0],
    "Lactate": [2.0, 4.0, 1.0],
    "BUN": [20.0],
    "Glucose": [140.0],
}
STEPS = (0.0, 0.0, 0.0, -0.5, 0.5, -1.0, 1.0, -0.1, 0.1, -3.0, 5.0, -25.0, 25.0)


def _value(rng: random.Random, name: str) -> float:
    spec = VARIABLES[name]
    x = rng.choice(THRESHOLDS[name]) + rng.choice(STEPS)
    x = min(max(x, spec.low), spec.high)
    return float(round(x)) if spec.integer else round(x, 2)


def _hourly(rng: random.Random, name: str) -> float | list[float]:
    if VARIABLES[name].integer or rng.random() < 0.4:
        return _value(rng, name)
    # a short history that may cross the trend bounds (newest first)
    newest = _value(rng, name)
    spec = VARIABLES[name]
    step = rng.choice([0.0, 1.0, 2.5, 5.0, 10.0, -5.0]) * rng.choice([1, -1])
    count = rng.randint(2, 12)
    return [round(min(max(newest + step * h, spec.low), spec.high), 2) for h in range(count)]


def generated_request(rng: random.Random) -> dict[str, Any]:
    """A patient in the structured form, some variables left out, on and around thresholds."""
    names = [n for n in THRESHOLDS if rng.random() < 0.55] or ["HR"]
    vitals: dict[str, Any] = {name: _hourly(rng, name) for name in names}
    raw: dict[str, Any] = {"patient_id": f"G{rng.randrange(10**6)}", "vitals": vitals}
    if rng.random() < 0.8:
        raw["Age"] = rng.randint(18, 95)
    if rng.random() < 0.8:
        raw["Gender"] = rng.choice(["female", "male"])
    if rng.random() < 0.3:
        raw["ICULOS"] = rng.randint(1, 300)
    roll = rng.random()
    if roll < 0.1:
        _as_time_series(rng, vitals)
    elif roll < 0.15:
        raw["units"] = {"Temp": "degC"}
    return raw


def _as_time_series(rng: random.Random, vitals: dict[str, Any]) -> None:
    """Some variables as [{val, ts}] with uneven times (the general parser's patients)."""
    now = datetime(2026, 2, 7, 18, 30, tzinfo=UTC)
    for name, value in list(vitals.items()):
        if rng.random() < 0.5:
            values = value if isinstance(value, list) else [value]
            lag = rng.choice([0.0, 0.4, 1.5, 9.0])
            vitals[name] = [
                {"val": x, "ts": (now - timedelta(hours=lag + 0.7 * h)).isoformat()}
                for h, x in enumerate(values)
            ]


@pytest.fixture(scope="module")
def model() -> SepsisModel:
    return SepsisModel.load(threads=1)


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown()


def _state(model: SepsisModel, executor: ThreadPoolExecutor, config: Path | None) -> ServiceState:
    return ServiceState(
        settings=MLSettings(SERVICE_TOKEN="t"),
        model=model,
        configs=ConfigStore.open(config),
        runtime=InferenceRuntime(model=model, executor=executor, threads=1, stats=InferenceStats()),
        metrics=ServiceMetrics(),
    )


@pytest.fixture(scope="module")
def state(model: SepsisModel, executor: ThreadPoolExecutor) -> ServiceState:
    return _state(model, executor, None)


def _fixed(probabilities: Sequence[float]) -> Callable[[Any], FloatArray]:
    def predict(features: Any) -> FloatArray:
        assert len(features) == len(probabilities)
        return np.asarray(probabilities, dtype=np.float64)

    return predict


def assert_batch_equals_single(
    state: ServiceState,
    requests: Sequence[dict[str, Any]],
    probabilities: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Each patient's batch assessment encodes to the same bytes as its own assessment."""
    loaded = state.configs.current
    patients = [parse_patient_hourly(r) for r in requests]
    if probabilities is None:
        predict: Callable[[Any], FloatArray] = state.model.predict
        inputs = [window_from_patient(parse_patient(r)) for r in requests]
        probabilities = state.model.predict(features_for_windows(inputs)).tolist()
    else:
        predict = _fixed(probabilities)
    entries = assess_patients(state, loaded, patients, predict=predict, request_id="req-1")
    out = []
    for i, (raw, entry, probability) in enumerate(
        zip(requests, entries, probabilities, strict=True)
    ):
        assert isinstance(entry, EncodedAssessment), raw
        single = assessment(state, loaded, parse_patient(raw), probability, "req-1")
        single["processing_time_ms"] = 12.5 + i
        assert entry.json(12.5 + i) == encode_json(single), raw
        assert entry.json(3.0, i) == encode_json({**single, "processing_time_ms": 3.0, "index": i})
        out.append(json.loads(entry.json(0.0)))
    return out


def _probabilities(rng: random.Random, n: int, threshold: float) -> list[float]:
    near = [0.0, 1.0, threshold, threshold * (1 + 1e-12), threshold * (1 - 1e-12), 0.5]
    return [rng.choice(near) if rng.random() < 0.3 else rng.random() ** 3 for _ in range(n)]


# ---- the whole assessment -------------------------------------------------------------------


def test_generated_patients_with_the_model(state: ServiceState) -> None:
    rng = random.Random(1)
    requests = [generated_request(rng) for _ in range(800)]
    entries = assert_batch_equals_single(state, requests)
    # the comparison covered what it should: both kinds of parsed patient, every priority
    kinds = {type(parse_patient_hourly(r)) for r in requests}
    assert kinds == {HourlyPatient, NormalizedPatient}
    assert {e["priority"] for e in entries} == {"Critical", "Urgent", "Elevated", "Standard"}


def test_generated_patients_at_probabilities_around_the_threshold(state: ServiceState) -> None:
    rng = random.Random(2)
    requests = [generated_request(rng) for _ in range(1200)]
    threshold = state.alert_threshold(state.configs.current)
    entries = assert_batch_equals_single(
        state, requests, _probabilities(rng, len(requests), threshold)
    )
    rules = {e["priority_rule"] for e in entries}
    assert {"septic_shock_criteria", "model_probability", "risk_score_band"} <= rules
    drivers = [d for e in entries for d in e["drivers"]]
    for start in ("Septic shock", "Lactate", "Model", "qSOFA", "NEWS2", "SIRS", "SOFA"):
        assert any(d.startswith(start) for d in drivers), start
    assert any(" rose " in d for d in drivers)
    assert any(" fell " in d for d in drivers)


@pytest.mark.parametrize(
    "changes",
    [
        {"blend": {"method": "max"}},
        {"septic_shock": {"enabled": False}},
        {"septic_shock": {"estimate_map_from_sbp_dbp": False, "vasopressors_count": False}},
        {"model_floor": {"enabled": False}, "alert_threshold": 0.2},
        {"score_floors": [{"score": "sofa", "at_least": 6, "priority": "Critical"}]},
        {"bands": {"critical": 90, "urgent": 30, "elevated": 10}, "alert_threshold": 0.01},
    ],
    ids=["max-blend", "no-shock", "strict-shock", "no-model-floor", "one-floor", "bands"],
)
def test_other_configs(
    model: SepsisModel, executor: ThreadPoolExecutor, tmp_path: Path, changes: dict[str, Any]
) -> None:
    data = yaml.safe_load(packaged_config_path().read_text(encoding="utf-8"))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path = tmp_path / "ml-config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    state = _state(model, executor, path)
    rng = random.Random(3)
    requests = [generated_request(rng) for _ in range(400)]
    threshold = state.alert_threshold(state.configs.current)
    assert_batch_equals_single(state, requests, _probabilities(rng, len(requests), threshold))


@pytest.mark.skipif(not SET_A.is_file(), reason="set A is not available here")
def test_real_hours_of_set_a(state: ServiceState) -> None:
    pd = pytest.importorskip("pandas")
    columns = [c for c in LATEST_VARIABLES if VARIABLES[c].kind in ("vital", "lab")]
    frame = pd.read_parquet(SET_A, columns=["patient_id", *columns, "Age", "Gender", "ICULOS"])
    stay = frame["patient_id"].to_numpy()
    values = frame[columns].to_numpy()
    rng = random.Random(4)
    requests = []
    for end in rng.sample(range(len(frame)), 600):
        rows = [r for r in range(end, max(-1, end - 8), -1) if stay[r] == stay[end]]
        raw: dict[str, Any] = {"Age": float(frame["Age"].iat[end])}
        raw["Gender"] = int(frame["Gender"].iat[end])
        if rng.random() < 0.5:
            raw["ICULOS"] = float(frame["ICULOS"].iat[end])
        for j, name in enumerate(columns):
            sent = [float(v) for v in values[rows, j] if not math.isnan(v)]
            if sent:
                raw[name] = sent if len(sent) > 1 else sent[0]
        try:
            parse_patient(raw)
        except ServiceError:
            continue  # a recording artefact out of range: a 422 either way
        requests.append(raw)
    assert len(requests) > 500
    assert_batch_equals_single(state, requests)


# ---- the parts --------------------------------------------------------------------------------


def test_inputs_are_the_single_patient_windows_and_latest_values() -> None:
    rng = random.Random(5)
    requests = [generated_request(rng) for _ in range(500)]
    inputs = batch_inputs([parse_patient_hourly(r) for r in requests])
    singles = [parse_patient(r) for r in requests]
    windows = [window_from_patient(p) for p in singles]
    np.testing.assert_array_equal(inputs.windows, np.stack([w.values for w in windows]))
    for i, p in enumerate(singles):
        for name in LATEST_VARIABLES:
            got = inputs.latest[i, COLUMN[name]]
            want = p.latest(name)
            assert (math.isnan(got) and want is None) or got == want, (name, requests[i])
        for k, name in enumerate(TREND_VARIABLES):
            trend = window_trend(p.observations(name))
            pair = (inputs.trend_change[i, k], inputs.trend_span[i, k])
            if trend is None:
                assert np.isnan(pair).all(), (name, requests[i])
            else:
                assert pair == trend, (name, requests[i])
    features = features_from_arrays(inputs.windows, inputs.age, inputs.gender, inputs.iculos)
    np.testing.assert_array_equal(features, features_for_windows(windows))


def test_score_results_match_the_shared_scores_with_one_cache_for_all() -> None:
    rng = random.Random(6)
    requests = [generated_request(rng) for _ in range(3000)]
    patients = [parse_patient_hourly(r) for r in requests]
    inputs = batch_inputs(patients)
    computed = batch_scores(inputs.latest, inputs.urine_points)
    cache = ScoreCache()
    for i, raw in enumerate(requests):
        expected = clinical_scores(parse_patient(raw)).model_dump()
        for index, score in enumerate(SCORES):
            got = cache.results(index, computed.keys[index][i], patients[i])
            assert got.data == expected[score.name], (score.name, raw)
            assert computed.totals[score.name][i] == expected[score.name]["score"]
    # most answers came from the cache, i.e. from another patient with the same key (these
    # patients are far more varied than real ones)
    assert 0 < len(cache) < 0.5 * len(SCORES) * len(requests)


def test_a_full_cache_starts_afresh_and_still_answers() -> None:
    cache = ScoreCache(max_entries=3)
    rng = random.Random(8)
    requests = [generated_request(rng) for _ in range(40)]
    inputs = batch_inputs([parse_patient_hourly(r) for r in requests])
    keys = batch_scores(inputs.latest, inputs.urine_points).keys
    for i, raw in enumerate(requests):
        got = cache.results(3, keys[3][i], parse_patient(raw))
        assert got.data == s.sofa(parse_patient(raw)).model_dump()
        assert len(cache) <= 3


def test_a_defect_in_the_vectorised_scores_falls_back_to_the_reference(
    state: ServiceState, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = batch_scores_module.qsofa_parts

    def wrong(v: Any) -> list[Any]:
        parts = original(v)
        return [np.where(p >= 0, 1 - p, p) for p in parts]  # every scored component flipped

    monkeypatch.setattr(batch_scores_module, "qsofa_parts", wrong)
    state = ServiceState(
        settings=state.settings,
        model=state.model,
        configs=state.configs,
        runtime=state.runtime,
        metrics=state.metrics,
    )
    requests = [{"Resp": 25, "SBP": 95, "GCS": 14, "HR": 100}, {"Resp": 12, "SBP": 130}]
    requests *= VECTORISED_FROM  # large enough for the vectorised path
    with caplog.at_level(logging.ERROR, logger="sepsis_ml.batch_assess"):
        entries = assert_batch_equals_single(state, requests, [0.01, 0.02] * VECTORISED_FROM)
    assert entries[0]["clinical_scores"]["qsofa"]["score"] == 3
    assert "batch scores differ from the shared scores" in caplog.text


@pytest.mark.parametrize("size", [2, VECTORISED_FROM], ids=["one-by-one", "vectorised"])
def test_a_non_finite_probability_fails_that_patient_only(state: ServiceState, size: int) -> None:
    patients = [parse_patient_hourly({"HR": 80 + i, "Resp": 30}) for i in range(size)]
    entries = assess_patients(
        state,
        state.configs.current,
        patients,
        predict=_fixed([math.nan] + [0.3] * (size - 1)),
        request_id=None,
    )
    assert isinstance(entries[0], ServiceError)
    assert entries[0].code == "internal_error"
    for entry in entries[1:]:
        assert isinstance(entry, EncodedAssessment)
        assert json.loads(entry.json(1.0))["model_probability"] == 0.3


def test_small_batches_either_way(state: ServiceState) -> None:
    # below VECTORISED_FROM patients are assessed one by one, from it on vectorised: the same
    rng = random.Random(10)
    for size in range(1, VECTORISED_FROM + 2):
        requests = [generated_request(rng) for _ in range(size)]
        threshold = state.alert_threshold(state.configs.current)
        assert_batch_equals_single(state, requests, _probabilities(rng, size, threshold))
        assert_batch_equals_single(state, requests)


# ---- one window, the single-request path ---------------------------------------------------


def _random_window(rng: random.Random) -> PatientWindow:
    values = np.full((WINDOW_HOURS, len(INPUT_VARIABLES)), np.nan)
    for j, name in enumerate(INPUT_VARIABLES):
        share = rng.choice([0.0, 0.15, 0.5, 1.0])
        for h in range(WINDOW_HOURS):
            if rng.random() < share:
                spec = VARIABLES[name]
                if name in THRESHOLDS and rng.random() < 0.6:
                    x = rng.choice(THRESHOLDS[name]) + rng.choice(STEPS)
                else:
                    x = rng.uniform(spec.low, spec.high)
                values[h, j] = min(max(round(x, rng.choice([0, 1, 3, 7])), spec.low), spec.high)
    if rng.random() < 0.1:
        values[:, [INPUT_VARIABLES.index("SBP"), INPUT_VARIABLES.index("Creatinine")]] = 0.0
    unknown = [math.nan, 0.0, 1.0, 71.0, 350.5]
    return PatientWindow(
        values=values,
        age=rng.choice(unknown),
        gender=rng.choice(unknown),
        iculos=rng.choice(unknown),
    )


def test_one_window_gives_the_vectorised_features_bit_for_bit() -> None:
    rng = random.Random(9)
    for _ in range(3000):
        w = _random_window(rng)
        one = features_for_windows([w])
        stacked = features_from_arrays(
            w.values[None, :, :],
            np.array([w.age]),
            np.array([w.gender]),
            np.array([w.iculos]),
        )
        assert one.shape == stacked.shape == (1, len(FEATURE_NAMES))
        assert one.dtype == stacked.dtype == np.float32
        same = (one.view(np.uint32) == stacked.view(np.uint32)) | (
            np.isnan(one) & np.isnan(stacked)
        )
        assert same.all(), [FEATURE_NAMES[k] for k in np.flatnonzero(~same[0])]


class _Bulky:
    """Stands for a batch's parsed patients: something only a weak reference may watch."""


async def test_objects_left_by_a_pooled_call_are_freed_after_its_caller_runs_on(
    state: ServiceState,
) -> None:
    def pooled() -> weakref.ref[_Bulky]:
        bulky = _Bulky()
        release_later(bulky)
        return weakref.ref(bulky)

    ref = await state.runtime.run(pooled)
    assert ref() is not None  # still held while the caller writes its reply
    await asyncio.sleep(0)
    assert ref() is None
    # outside a pooled call nothing is held
    outside = _Bulky()
    release_later(outside)
    watched = weakref.ref(outside)
    del outside
    assert watched() is None
