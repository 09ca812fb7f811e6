"""The batch path end to end: parsed patients in, each patient's assessment out as JSON.

The vectorised twins of the per-patient functions (`batch_inputs`, `batch_scores`,
`batch_blend`) work column-wise over the whole batch with one model call; what is left per
patient is choosing the cached pieces, formatting the driver sentences and writing the JSON.
That JSON is written directly (`EncodedAssessment`): the score results, alerts, rules and
missing-input lists are encoded once and reused, the numbers of the whole batch are encoded in
one call. Each patient's JSON is byte for byte what `runtime.assessment` gives for that patient
(the tests hold the two together).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic_core import to_json

from sepsis_ml.batch_blend import (
    PRIORITY_BY_RANK,
    BatchBlend,
    DriverChoice,
    batch_blend,
    choose_drivers,
    driver_sentences,
)
from sepsis_ml.batch_inputs import COLUMN, Patient, batch_inputs
from sepsis_ml.batch_scores import ScoreCache, ScoreMismatch, batch_scores
from sepsis_ml.blend import QUOTED_VARIABLES
from sepsis_ml.features import features_from_arrays
from sepsis_ml.mlconfig import BlendPlan
from sepsis_shared.assessment import KEY_INPUTS
from sepsis_shared.errors import ServiceError
from sepsis_shared.patient import HourlyPatient, NormalizedPatient

logger = logging.getLogger("sepsis_ml.batch_assess")

FloatArray = npt.NDArray[np.float64]
_TIME_KEY: Final = b'"processing_time_ms":'


def encode_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON (pydantic models inside are serialised by their own schema)."""
    return to_json(payload, inf_nan_mode="null")


class EncodedAssessment(NamedTuple):
    """One patient's assessment as JSON, less its processing time and batch index (known only
    when the whole batch is done)."""

    head: bytes
    """From the opening brace to `"processing_time_ms":`."""
    tail: bytes
    """From the key after the processing time to the last value, without the closing brace."""

    def json(self, processing_time_ms: float, index: int | None = None) -> bytes:
        """The complete JSON object (with `"index"` last when given, as a batch item)."""
        return b"".join(self.pieces(encode_json(processing_time_ms), index))

    def pieces(self, processing_time_json: bytes, index: int | None) -> tuple[bytes, ...]:
        """`json()` in pieces, to be joined with others in one copy."""
        end = b"}" if index is None else b',"index":%d}' % index
        return self.head, processing_time_json, self.tail, end

    @classmethod
    def of(cls, assessment: Mapping[str, Any]) -> EncodedAssessment:
        """From an assessment dict (`processing_time_ms` among its keys, `index` not)."""
        data = encode_json({**assessment, "processing_time_ms": 0.0})
        # a key's quotes are the only unescaped ones: the marker occurs once, as the key
        head, _, rest = data.partition(_TIME_KEY + b"0.0")
        return cls(head=head + _TIME_KEY, tail=rest[:-1])


_PRESENCE: Final = tuple(dict.fromkeys((*KEY_INPUTS, "SBP", "DBP")))
"""The variables `missing_inputs` looks at."""


def _normalized(patient: Patient) -> NormalizedPatient:
    return patient.normalized() if isinstance(patient, HourlyPatient) else patient


def _floats_json(values: Sequence[float]) -> list[bytes]:
    """Each float as `encode_json` writes it, all in one call (a float holds no comma)."""
    if not values:
        return []
    return encode_json(values)[1:-1].split(b",")


def assess_batch(
    patients: Sequence[Patient],
    *,
    plan: BlendPlan,
    alert_threshold: float,
    predict: Callable[[npt.NDArray[np.float32]], FloatArray],
    cache: ScoreCache,
    alerts: Sequence[Mapping[str, Any]],
    model: Mapping[str, str],
    request_id: str | None,
    reference: Callable[[NormalizedPatient, float], Mapping[str, Any]],
) -> list[EncodedAssessment | ServiceError]:
    """Each patient's assessment, vectorised; a patient whose assessment fails gets a
    ServiceError in its place, the others are unaffected.

    `alerts`: the alert of each priority rank; `reference`: the per-patient assessment, used
    for a patient whose vectorised scores disagree with the shared ones (a defect, logged).
    """
    inputs = batch_inputs(patients)
    probabilities = predict(
        features_from_arrays(inputs.windows, inputs.age, inputs.gender, inputs.iculos)
    )
    scores = batch_scores(inputs.latest, inputs.urine_points)
    result = batch_blend(
        probability=probabilities,
        totals=scores.totals,
        latest=inputs.latest,
        plan=plan,
        alert_threshold=alert_threshold,
    )
    choice = choose_drivers(
        result=result,
        totals=scores.totals,
        trend_change=inputs.trend_change,
        trend_span=inputs.trend_span,
        plan=plan,
    )
    presence = np.packbits(
        ~np.isnan(inputs.latest[:, [COLUMN[name] for name in _PRESENCE]]), axis=1
    )
    quoted = inputs.latest[:, [COLUMN[name] for name in QUOTED_VARIABLES]]
    probability_list = probabilities.tolist()
    writer = _Writer(
        cache=cache,
        choice=choice,
        result=result,
        plan=plan,
        alert_threshold=alert_threshold,
        alerts=alerts,
        model=model,
        request_id=request_id,
        probabilities=probability_list,
    )
    out: list[EncodedAssessment | ServiceError] = []
    rows = zip(
        patients,
        probability_list,
        zip(*scores.keys, strict=True),
        quoted.tolist(),
        [row.tobytes() for row in presence],
        strict=True,
    )
    for i, (patient, probability, keys, latest_row, presence_key) in enumerate(rows):
        try:
            if not math.isfinite(probability):
                raise RuntimeError("the model returned a non-finite probability")
            encoded = writer(i, patient, probability, keys, latest_row, presence_key)
        except ScoreMismatch:
            # A defect of the vectorised scores: log it, and assess this patient the
            # per-patient way, which is the reference.
            logger.exception("batch scores differ from the shared scores", extra={"row": i})
            try:
                encoded = EncodedAssessment.of(reference(_normalized(patient), probability))
            except Exception:
                logger.exception("assessment failed for one batch item", extra={"row": i})
                out.append(_assessment_failed())
                continue
        except Exception:
            # One patient that trips a defect must not fail the others; the log has the trace.
            logger.exception("assessment failed for one batch item", extra={"row": i})
            out.append(_assessment_failed())
            continue
        out.append(encoded)
    return out


def _assessment_failed() -> ServiceError:
    return ServiceError("Internal error assessing this patient; see the server log.")


class _Writer:
    """Writes each patient's assessment JSON from the batch's columns; what is the same for
    many patients is encoded once."""

    def __init__(
        self,
        *,
        cache: ScoreCache,
        choice: DriverChoice,
        result: BatchBlend,
        plan: BlendPlan,
        alert_threshold: float,
        alerts: Sequence[Mapping[str, Any]],
        model: Mapping[str, str],
        request_id: str | None,
        probabilities: list[float],
    ) -> None:
        self.cache = cache
        self.choice = choice
        self.result = result
        self.plan = plan
        self.alert_threshold = alert_threshold
        self.model_alert = result.model_alert.tolist()
        # the keys and values in the order of `runtime.assessment`
        self.priority = [
            b',"priority":%s,"alert":%s' % (encode_json(p.value), encode_json(alert))
            for p, alert in zip(PRIORITY_BY_RANK, alerts, strict=True)
        ]
        self.risk_score = _floats_json(result.risk_score)
        self.probability_6h = _floats_json([round(p, 6) for p in probabilities])
        self.probability = _floats_json(probabilities)
        self.after_drivers = b',"model":%s,"missing_inputs":' % encode_json(model)
        self.after_missing = b',"request_id":%s,%s' % (encode_json(request_id), _TIME_KEY)
        self.after_rules = b',"alert_threshold":%s,"config_version":%s,"icu_los_known":' % (
            encode_json(alert_threshold),
            encode_json(plan.config.version),
        )
        self.rules: dict[str, bytes] = {}
        self.fired_keys = [row.tobytes() for row in np.packbits(result.fired, axis=1)]
        self.fired: dict[bytes, bytes] = {}

    def __call__(
        self,
        i: int,
        patient: Patient,
        probability: float,
        keys: tuple[int, ...],
        latest_row: list[float],
        presence_key: bytes,
    ) -> EncodedAssessment:
        scores = self.cache.all_four(keys, patient)
        missing = self.cache.missing_inputs(presence_key, patient)
        drivers = driver_sentences(
            i,
            self.choice,
            self.result,
            scores.for_drivers,
            latest_row,
            probability,
            self.alert_threshold,
            self.model_alert[i],
            self.plan,
        )
        result = self.result
        head = b"".join(
            (
                b'{"patient_id":',
                encode_json(patient.patient_id),
                b',"risk_score":',
                self.risk_score[i],
                b',"sepsis_probability_6h":',
                self.probability_6h[i],
                self.priority[result.rank[i]],
                b',"clinical_scores":',
                scores.json,
                b',"drivers":',
                encode_json(drivers),
                self.after_drivers,
                missing,
                self.after_missing,
            )
        )
        rule = result.rule[i]
        rule_json = self.rules.get(rule)
        if rule_json is None:
            rule_json = self.rules[rule] = b',"priority_rule":%s,"rules_fired":' % encode_json(rule)
        fired_key = self.fired_keys[i]
        fired_json = self.fired.get(fired_key)
        if fired_json is None:
            fired_json = self.fired[fired_key] = encode_json(result.rules_fired(i))
        tail = b"".join(
            (
                rule_json,
                fired_json,
                b',"model_probability":',
                self.probability[i],
                self.after_rules,
                b"false" if patient.iculos is None else b"true",
            )
        )
        return EncodedAssessment(head, tail)
