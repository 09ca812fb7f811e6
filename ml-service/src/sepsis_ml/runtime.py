"""Inference at run time: the bounded thread pool, the service state and the scoring pipeline.

Everything CPU-bound for a request (JSON decoding, input parsing, features, the ONNX call,
clinical scores, the blend, JSON encoding) runs in one hop on a thread pool sized to the
cores, never on the event loop. A single patient and a batch take the same path
(`assess_patients`): each patient is parsed and taken in, the windows of all of them go to the
model in one call, and each is then assessed by the same per-patient functions. A patient
that fails validation becomes an error entry at its index; one whose assessment trips a
defect gets an error entry too, and the others are unaffected.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic_core import to_json

from sepsis_ml.blend import blend, drivers, score_values, shock_facts
from sepsis_ml.config import MLSettings
from sepsis_ml.features import features_for_windows, window_from_patient
from sepsis_ml.metrics import InferenceStats, ServiceMetrics
from sepsis_ml.mlconfig import ConfigStore, LoadedConfig
from sepsis_ml.model import SepsisModel
from sepsis_shared.assessment import Priority, alert_for, missing_inputs
from sepsis_shared.body import decode_json
from sepsis_shared.confidence import lower_to, picture_of_patient
from sepsis_shared.errors import InvalidInput, ServiceError
from sepsis_shared.patient import (
    FLAT_EXAMPLE,
    NormalizedPatient,
    parse_patient,
    parse_patients_body,
)
from sepsis_shared.scores import clinical_scores

logger = logging.getLogger("sepsis_ml.runtime")

P = ParamSpec("P")
T = TypeVar("T")
FloatArray = npt.NDArray[np.float64]


class Readiness:
    """Why the service is not ready yet (None once the model is loaded and warm)."""

    def __init__(self) -> None:
        self.reason: str | None = "starting: the model is not loaded yet"

    def __call__(self) -> str | None:
        return self.reason


class InferenceRuntime:
    """The bounded thread pool the CPU work runs in, and the counted model call."""

    def __init__(
        self,
        *,
        model: SepsisModel,
        executor: ThreadPoolExecutor,
        threads: int,
        stats: InferenceStats,
    ) -> None:
        self.model = model
        self.executor = executor
        self.threads = threads
        self.stats = stats

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` in the pool, with the caller's context (request id) carried over."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await loop.run_in_executor(self.executor, call)

    def predict(self, features: npt.NDArray[np.float32]) -> FloatArray:
        """Calibrated probabilities for a feature matrix, counted (call from the pool)."""
        start = time.perf_counter()
        probabilities = self.model.predict(features)
        self.stats.record(len(probabilities), time.perf_counter() - start)
        return probabilities


@dataclass(frozen=True, slots=True)
class ServiceState:
    """What the handlers read: built once by the lifespan, never mutated."""

    settings: MLSettings
    model: SepsisModel
    configs: ConfigStore
    runtime: InferenceRuntime
    metrics: ServiceMetrics

    @property
    def model_info(self) -> dict[str, str]:
        """The model's name and version as plain data."""
        return {"name": self.model.name, "version": self.model.version}

    def alert_threshold(self, loaded: LoadedConfig) -> float:
        """The threshold in force: the config's, else the model's own."""
        configured = loaded.config.alert_threshold
        return self.model.alert_threshold if configured is None else configured


# --------------------------------------------------------------------------------------------
# The pipeline (runs in the pool)


def encode_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON (pydantic models inside are serialised by their own schema)."""
    return to_json(payload, inf_nan_mode="null")


@functools.cache
def _alert(priority: Priority) -> dict[str, Any]:
    return alert_for(priority).model_dump(mode="json")


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


def assessment(
    state: ServiceState,
    loaded: LoadedConfig,
    patient: NormalizedPatient,
    probability: float,
    outside_training: Sequence[str],
    request_id: str | None,
) -> dict[str, Any]:
    """The assessment of one patient as plain data (processing_time_ms still 0).
    `outside_training`: its inputs outside the model's training range, in words."""
    plan = loaded.plan
    threshold = state.alert_threshold(loaded)
    probability = float(probability)
    if not math.isfinite(probability):
        raise RuntimeError("the model returned a non-finite probability")
    scores = clinical_scores(patient)
    values = score_values(scores)
    shock = shock_facts(patient, plan.shock)
    result = blend(
        probability=probability,
        scores=values,
        shock=shock,
        infection=patient.latest("Infection"),
        plan=plan,
        alert_threshold=threshold,
    )
    confidence = picture_of_patient(patient)
    if outside_training:
        confidence = lower_to(
            confidence,
            "low",
            [
                "inputs outside the range the model was trained on, where its probability is "
                "an extrapolation (the clinical floors still apply): " + "; ".join(outside_training)
            ],
        ).model_copy(update={"outside_training": list(outside_training)})
    return {
        "patient_id": patient.patient_id,
        "risk_score": result.risk_score,
        "sepsis_probability_6h": round(probability, 6),
        "priority": result.priority.value,
        "alert": _alert(result.priority),
        "clinical_scores": scores,
        "drivers": drivers(
            patient=patient,
            scores=scores,
            result=result,
            probability=probability,
            alert_threshold=threshold,
            shock=shock,
            plan=plan,
        ),
        "model": state.model_info,
        "missing_inputs": missing_inputs(patient),
        "confidence": confidence,
        "data_quality": patient.data_quality,
        "findings": patient.findings,
        "request_id": request_id,
        "processing_time_ms": 0.0,
        "priority_rule": result.priority_rule,
        "rules_fired": list(result.rules_fired),
        "model_probability": probability,
        "alert_threshold": threshold,
        "config_version": plan.config.version,
        "icu_los_known": patient.iculos is not None,
    }


def assess_patients(
    state: ServiceState,
    loaded: LoadedConfig,
    patients: Sequence[NormalizedPatient],
    *,
    predict: Callable[[npt.NDArray[np.float32]], FloatArray],
    request_id: str | None,
) -> list[dict[str, Any] | ServiceError]:
    """`assessment` of each patient, with one model call for all; a patient whose assessment
    fails gets a ServiceError in its place, the others are unaffected."""
    features = features_for_windows([window_from_patient(p) for p in patients])
    probabilities = predict(features).tolist()
    outside = state.model.input_ranges.outside(features)
    out: list[dict[str, Any] | ServiceError] = []
    for i, patient in enumerate(patients):
        try:
            out.append(assessment(state, loaded, patient, probabilities[i], outside[i], request_id))
        except Exception:
            # One patient that trips a defect must not fail the others; the log has the trace.
            logger.exception("assessment failed for one patient", extra={"row": i})
            out.append(ServiceError("Internal error assessing this patient; see the server log."))
    return out


def score_single(
    state: ServiceState, body: bytes, *, request_id: str | None, started: float
) -> bytes:
    """One patient's request body -> the response body (raises InvalidInput)."""
    loaded = state.configs.current
    patient = parse_patient(decode_json(body), limits=loaded.config.inputs)
    (out,) = assess_patients(
        state, loaded, [patient], predict=state.runtime.predict, request_id=request_id
    )
    if isinstance(out, ServiceError):
        raise out
    out["processing_time_ms"] = _elapsed_ms(started)
    return encode_json(out)


def _item_error(index: int, exc: ServiceError) -> dict[str, Any]:
    return {
        "index": index,
        "error": {"code": exc.code, "message": exc.message, "details": exc.details},
    }


def score_batch(
    state: ServiceState, body: bytes, *, request_id: str | None, started: float
) -> bytes:
    """A `{"patients": [...]}` body -> the batch response body, one model call for all."""
    loaded = state.configs.current
    items = parse_patients_body(
        body, max_items=state.settings.max_batch, decode=decode_json, limits=loaded.config.inputs
    )
    results: list[dict[str, Any]] = [{} for _ in items]
    patients: list[NormalizedPatient] = []
    indices: list[int] = []
    for index, parsed in enumerate(items):
        if isinstance(parsed, InvalidInput):
            results[index] = _item_error(index, parsed)
        else:
            patients.append(parsed)
            indices.append(index)
    if patients:
        assessed = assess_patients(
            state, loaded, patients, predict=state.runtime.predict, request_id=request_id
        )
        for index, entry in zip(indices, assessed, strict=True):
            results[index] = _item_error(index, entry) if isinstance(entry, ServiceError) else entry
    elapsed = _elapsed_ms(started)
    errors = 0
    for index, entry in enumerate(results):
        if "error" in entry:
            errors += 1
        else:
            entry["processing_time_ms"] = elapsed
            entry["index"] = index
    return encode_json(
        {
            "results": results,
            "count": len(items),
            "errors": errors,
            "processing_time_ms": elapsed,
            "model": state.model_info,
            "config_version": loaded.config.version,
            "request_id": request_id,
        }
    )


def warm_up(state: ServiceState) -> None:
    """Score one example patient through the whole pipeline (not counted); raise if broken."""
    loaded = state.configs.current
    patient = parse_patient(dict(FLAT_EXAMPLE), limits=loaded.config.inputs)
    entries = assess_patients(
        state, loaded, [patient, patient], predict=state.model.predict, request_id=None
    )
    for entry in entries:
        if isinstance(entry, ServiceError):
            raise RuntimeError("the pipeline failed on the warm-up patient")
        if not 0.0 <= float(entry["model_probability"]) <= 1.0:
            raise RuntimeError("the model's warm-up prediction is not a probability")
