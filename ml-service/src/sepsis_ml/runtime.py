"""Inference at run time: the bounded thread pool, the service state and the scoring pipeline.

Everything CPU-bound for a request (JSON decoding, input parsing, features, the ONNX call,
clinical scores, the blend, JSON encoding) runs in one hop on a thread pool sized to the
cores, never on the event loop. A single patient goes through the per-patient functions
(`assessment`). A batch goes through their vectorised twins (`batch_assess`), column-wise over
all its valid patients with one model call, and gives each patient exactly what `assessment`
gives it. A patient that fails validation becomes an error entry at its index.
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
from dataclasses import dataclass, field
from typing import Any, Final, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt
import pydantic_core

from sepsis_ml.batch_assess import EncodedAssessment, assess_batch
from sepsis_ml.batch_assess import encode_json as encode_json  # re-exported: part of the pipeline
from sepsis_ml.batch_blend import PRIORITY_BY_RANK
from sepsis_ml.batch_inputs import Patient
from sepsis_ml.batch_scores import ScoreCache
from sepsis_ml.blend import blend, drivers, score_values, shock_facts
from sepsis_ml.config import MLSettings
from sepsis_ml.features import features_for_windows, window_from_patient
from sepsis_ml.metrics import InferenceStats, ServiceMetrics
from sepsis_ml.mlconfig import ConfigStore, LoadedConfig
from sepsis_ml.model import SepsisModel
from sepsis_shared.assessment import Priority, alert_for, missing_inputs
from sepsis_shared.errors import FieldError, InvalidInput, ServiceError
from sepsis_shared.patient import (
    FLAT_EXAMPLE,
    HourlyPatient,
    NormalizedPatient,
    parse_patient,
    parse_patient_hourly,
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


_RELEASE_LATER: contextvars.ContextVar[list[object] | None] = contextvars.ContextVar(
    "sepsis_ml_release_later", default=None
)
"""Objects a pooled call leaves for `InferenceRuntime.run` to drop once its caller has gone
on (see `release_later`)."""


def release_later(*objects: object) -> None:
    """Keep `objects` alive past the pooled call that made them, when run by
    `InferenceRuntime.run`: they are dropped on the event loop after the code awaiting the call
    has run on, so a large batch is freed after its response is written, not before."""
    held = _RELEASE_LATER.get()
    if held is not None:
        held.extend(objects)


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
        held: list[object] = []
        context = contextvars.copy_context()
        context.run(_RELEASE_LATER.set, held)
        call = functools.partial(context.run, fn, *args, **kwargs)
        try:
            return await loop.run_in_executor(self.executor, call)
        finally:
            # the caller's next steps (writing the response) run before this callback
            loop.call_soon(held.clear)

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
    scores: ScoreCache = field(default_factory=ScoreCache)
    """Score results by key, for the batch path."""

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


def decode_json(body: bytes) -> object:
    """The request body as JSON (strict: no NaN or Infinity); a 422 naming `body` if not."""
    try:
        return pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        # The parser's message gives only what went wrong and where (line, column).
        message = f"the body is not valid JSON: {exc}"
    raise InvalidInput.for_fields([FieldError(field="body", message=message)])


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
    request_id: str | None,
) -> dict[str, Any]:
    """The assessment of one patient as plain data (processing_time_ms still 0)."""
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
        plan=plan,
        alert_threshold=threshold,
    )
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
        "request_id": request_id,
        "processing_time_ms": 0.0,
        "priority_rule": result.priority_rule,
        "rules_fired": list(result.rules_fired),
        "model_probability": probability,
        "alert_threshold": threshold,
        "config_version": plan.config.version,
        "icu_los_known": patient.iculos is not None,
    }


def score_single(
    state: ServiceState, body: bytes, *, request_id: str | None, started: float
) -> bytes:
    """One patient's request body -> the response body (raises InvalidInput)."""
    patient = parse_patient(decode_json(body))
    loaded = state.configs.current
    features = features_for_windows([window_from_patient(patient)])
    probability = float(state.runtime.predict(features)[0])
    out = assessment(state, loaded, patient, probability, request_id)
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
    items = parse_patients_body(body, max_items=state.settings.max_batch, decode=decode_json)
    loaded = state.configs.current
    results: list[EncodedAssessment | dict[str, Any] | None] = [None] * len(items)
    patients: list[Patient] = []
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
    elapsed_json = encode_json(elapsed)
    errors = 0
    # {"results": [...], "count": ...}: the results written one by one, then the rest; all
    # joined in one copy
    parts: list[bytes] = [b'{"results":[']
    for index, done in enumerate(results):
        if index:
            parts.append(b",")
        if isinstance(done, EncodedAssessment):
            parts.extend(done.pieces(elapsed_json, index))
        else:
            errors += 1
            parts.append(encode_json(done))
    rest = encode_json(
        {
            "count": len(items),
            "errors": errors,
            "processing_time_ms": elapsed,
            "model": state.model_info,
            "config_version": loaded.config.version,
            "request_id": request_id,
        }
    )
    parts.append(b"],")
    parts.append(rest[1:])
    # freeing the batch's many small objects takes a few milliseconds: after the reply
    release_later(items, results, patients, parts)
    return b"".join(parts)


VECTORISED_FROM: Final = 7
"""Batches this large or larger take the vectorised path; below, its fixed cost (a few hundred
numpy calls, about a millisecond) exceeds the per-patient path's, which gives the same
results."""


def assess_patients(
    state: ServiceState,
    loaded: LoadedConfig,
    patients: Sequence[Patient],
    *,
    predict: Callable[[npt.NDArray[np.float32]], FloatArray],
    request_id: str | None,
) -> list[EncodedAssessment | ServiceError]:
    """`assessment` of each patient as JSON, with one model call; a patient whose assessment
    fails gets a ServiceError in its place, the others are unaffected."""
    if len(patients) < VECTORISED_FROM:
        return _assess_one_by_one(state, loaded, patients, predict=predict, request_id=request_id)
    threshold = state.alert_threshold(loaded)

    def reference(patient: NormalizedPatient, probability: float) -> dict[str, Any]:
        return assessment(state, loaded, patient, probability, request_id)

    return assess_batch(
        patients,
        plan=loaded.plan,
        alert_threshold=threshold,
        predict=predict,
        cache=state.scores,
        alerts=[_alert(p) for p in PRIORITY_BY_RANK],
        model=state.model_info,
        request_id=request_id,
        reference=reference,
    )


def _assess_one_by_one(
    state: ServiceState,
    loaded: LoadedConfig,
    patients: Sequence[Patient],
    *,
    predict: Callable[[npt.NDArray[np.float32]], FloatArray],
    request_id: str | None,
) -> list[EncodedAssessment | ServiceError]:
    normalized = [p.normalized() if isinstance(p, HourlyPatient) else p for p in patients]
    features = np.vstack([features_for_windows([window_from_patient(p)]) for p in normalized])
    out: list[EncodedAssessment | ServiceError] = []
    for i, (patient, probability) in enumerate(
        zip(normalized, predict(features).tolist(), strict=True)
    ):
        try:
            entry = assessment(state, loaded, patient, probability, request_id)
        except Exception:
            # One patient that trips a defect must not fail the others; the log has the trace.
            logger.exception("assessment failed for one batch item", extra={"row": i})
            out.append(ServiceError("Internal error assessing this patient; see the server log."))
            continue
        out.append(EncodedAssessment.of(entry))
    return out


def warm_up(state: ServiceState) -> None:
    """Score one example patient through the whole pipeline (not counted); raise if broken."""
    patient = parse_patient(dict(FLAT_EXAMPLE))
    features = features_for_windows([window_from_patient(patient)])
    probabilities = state.model.predict(features)
    if probabilities.shape != (1,) or not 0.0 <= float(probabilities[0]) <= 1.0:
        raise RuntimeError("the model's warm-up prediction is not a probability")
    assessment(state, state.configs.current, patient, float(probabilities[0]), None)
    # the vectorised batch path too (uncounted), on both kinds of parsed patient
    batch = [parse_patient_hourly(dict(FLAT_EXAMPLE)), patient] * VECTORISED_FROM
    entries = assess_patients(
        state, state.configs.current, batch, predict=state.model.predict, request_id=None
    )
    if any(isinstance(entry, ServiceError) for entry in entries):
        raise RuntimeError("the batch path failed on the warm-up patient")
