"""qSOFA, SIRS, NEWS2 and SOFA for a whole batch at once, with the content of
`sepsis_shared.scores`.

Each score's result (`ScoreResult`: components, missing inputs, notes, words) is fully
determined by a handful of small integers: the points of each component (-1 when it cannot be
scored) and which stand-in inputs were used. Those are computed here for every patient of a
batch with a few numpy operations on the latest values, using the thresholds of
`sepsis_shared.scores` itself, and packed into one integer key per score. The result for a key
is computed once, by `sepsis_shared.scores` on the first patient that has it, and reused for
every later patient with the same key (there are few distinct keys in practice). On that first
computation the components the shared function found are checked against the key: should they
ever differ, `ScoreMismatch` is raised rather than a result given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic_core import to_json

from sepsis_ml.batch_inputs import COLUMN
from sepsis_ml.blend import DRIVER_SCORE_ORDER, ScoreSentence
from sepsis_ml.mlconfig import ScoreName
from sepsis_shared import scores as s
from sepsis_shared.assessment import missing_inputs
from sepsis_shared.patient import HourlyPatient, NormalizedPatient

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NOT_SCORED: Final = -1
"""A component that cannot be scored (the shared functions' None)."""
_BITS: Final = 4
"""Bits per small integer in a key (values -1..14)."""


class ScoreMismatch(RuntimeError):
    """The vectorised components of a patient differ from the shared function's (a defect)."""


# ---- vectorised building blocks, each the numpy twin of a helper of sepsis_shared.scores ----


def _upper_bands(x: FloatArray, bands: s.Bands, above: int) -> IntArray:
    """`_band`: points of the first (inclusive upper bound, points) the value is within."""
    out = np.full(x.shape, above, dtype=np.int64)
    for upper, points in reversed(bands):
        out[x <= upper] = points
    return out


def _below(x: FloatArray, bands: Sequence[tuple[float, int]]) -> IntArray:
    """`_below`: points of the first (exclusive upper limit, points) the value is under."""
    out = np.zeros(x.shape, dtype=np.int64)
    for limit, points in reversed(bands):
        out[x < limit] = points
    return out


def _at_least(x: FloatArray, bands: Sequence[tuple[float, int]]) -> IntArray:
    """`_at_least`: points of the first (inclusive lower limit, points) the value reaches."""
    out = np.zeros(x.shape, dtype=np.int64)
    for limit, points in reversed(bands):
        out[x >= limit] = points
    return out


def _scored(present: BoolArray, points: npt.ArrayLike) -> IntArray:
    return np.where(present, points, NOT_SCORED).astype(np.int64)


class _Latest:
    """Columns of the latest-value matrix by variable name, with presence masks."""

    def __init__(self, latest: FloatArray) -> None:
        self.latest = latest

    def __call__(self, name: str) -> FloatArray:
        return self.latest[:, COLUMN[name]]

    def has(self, name: str) -> BoolArray:
        return ~np.isnan(self(name))


# NaN compares False with everything, so a comparison on a value that was not sent never holds:
# exactly the shared functions' `x is not None and x ...`.


def qsofa_parts(v: _Latest) -> list[IntArray]:
    """Components of `scores.qsofa`, in its order (its missing inputs follow from them)."""
    gcs, avpu = v("GCS"), v("Consciousness")
    return [
        _scored(v.has("Resp"), v("Resp") >= s.QSOFA_RESP_MIN),
        _scored(v.has("SBP"), v("SBP") <= s.QSOFA_SBP_MAX),
        _scored(v.has("GCS") | v.has("Consciousness"), (gcs < s.QSOFA_GCS_NORMAL) | (avpu > 0)),
    ]


def sirs_parts(v: _Latest) -> list[IntArray]:
    """Components of `scores.sirs`, then whether PaCO2 alone met the respiratory criterion."""
    temp, resp, wbc = v("Temp"), v("Resp"), v("WBC")
    low_paco2 = v("PaCO2") < s.SIRS_PACO2_BELOW
    has_resp = v.has("Resp")
    by_paco2 = ~has_resp & low_paco2
    return [
        _scored(v.has("Temp"), (temp > s.SIRS_TEMP_ABOVE) | (temp < s.SIRS_TEMP_BELOW)),
        _scored(v.has("HR"), v("HR") > s.SIRS_HR_ABOVE),
        np.where(
            has_resp, (resp > s.SIRS_RESP_ABOVE) | low_paco2, np.where(by_paco2, 1, NOT_SCORED)
        ).astype(np.int64),
        _scored(v.has("WBC"), (wbc > s.SIRS_WBC_ABOVE) | (wbc < s.SIRS_WBC_BELOW)),
        by_paco2.astype(np.int64),
    ]


def news2_parts(v: _Latest) -> list[IntArray]:
    """Components of `scores.news2`, then whether FiO2 stood in for supplemental oxygen and
    GCS for ACVPU."""
    flag, fio2 = v("SupplementalO2"), v("FiO2")
    has_flag, has_fio2 = v.has("SupplementalO2"), v.has("FiO2")
    oxygen = np.where(
        has_flag,
        np.where(flag >= 1, s.NEWS2_SUPPLEMENTAL_O2, 0),
        np.where(
            has_fio2, np.where(fio2 > s.ROOM_AIR_FIO2, s.NEWS2_SUPPLEMENTAL_O2, 0), NOT_SCORED
        ),
    )
    avpu, gcs = v("Consciousness"), v("GCS")
    has_avpu, has_gcs = v.has("Consciousness"), v.has("GCS")
    consciousness = np.where(
        has_avpu,
        np.where(avpu > 0, s.NEWS2_CONSCIOUSNESS, 0),
        np.where(has_gcs, np.where(gcs < s.QSOFA_GCS_NORMAL, s.NEWS2_CONSCIOUSNESS, 0), NOT_SCORED),
    )

    def banded(name: str, bands: s.Bands, above: int) -> IntArray:
        return _scored(v.has(name), _upper_bands(v(name), bands, above))

    return [
        banded("Resp", s.NEWS2_RESP_BANDS, s.NEWS2_RESP_ABOVE),
        banded("O2Sat", s.NEWS2_SPO2_BANDS, s.NEWS2_SPO2_ABOVE),
        oxygen.astype(np.int64),
        banded("SBP", s.NEWS2_SBP_BANDS, s.NEWS2_SBP_ABOVE),
        banded("HR", s.NEWS2_HR_BANDS, s.NEWS2_HR_ABOVE),
        consciousness.astype(np.int64),
        banded("Temp", s.NEWS2_TEMP_BANDS, s.NEWS2_TEMP_ABOVE),
        (~has_flag & has_fio2).astype(np.int64),
        (~has_avpu & has_gcs).astype(np.int64),
    ]


# Which way each SOFA organ was scored; with the components these decide the missing inputs
# and the notes of `scores.sofa`.
_RESP_NO_FIO2_NO_OXYGENATION, _RESP_NO_FIO2, _RESP_PF, _RESP_SF_TOO_HIGH, _RESP_SF, _RESP_NONE = (
    range(6)
)
_CV_VASOPRESSORS, _CV_MAP, _CV_ESTIMATED, _CV_NONE = range(4)
_RENAL_CREATININE, _RENAL_URINE, _RENAL_NONE = range(3)


def sofa_parts(v: _Latest, urine_points: IntArray) -> list[IntArray]:
    """Components of `scores.sofa`, then: FiO2 taken as room air, and how respiration,
    circulation and the kidneys were scored."""
    fio2, pao2, spo2 = v("FiO2"), v("PaO2"), v("O2Sat")
    room_air = np.isnan(fio2) & (v("SupplementalO2") == 0)
    fio2 = np.where(room_air, s.ROOM_AIR_FIO2, fio2)
    has_fio2, has_pao2, has_spo2 = ~np.isnan(fio2), v.has("PaO2"), v.has("O2Sat")
    with np.errstate(invalid="ignore", divide="ignore"):
        pf_points = _below(pao2 / fio2, s.SOFA_PF_BANDS)
        sf_points = _upper_bands(spo2 / fio2, s.SOFA_SF_BANDS, 0)
    sf_too_high = (spo2 > s.SOFA_SF_MAX_SPO2) & (sf_points > 0)
    respiration_way = np.select(
        [
            ~has_fio2 & ~has_pao2 & ~has_spo2,
            ~has_fio2,
            has_pao2,
            has_spo2 & sf_too_high,
            has_spo2,
        ],
        [_RESP_NO_FIO2_NO_OXYGENATION, _RESP_NO_FIO2, _RESP_PF, _RESP_SF_TOO_HIGH, _RESP_SF],
        _RESP_NONE,
    )
    respiration = np.select(
        [respiration_way == _RESP_PF, respiration_way == _RESP_SF],
        [pf_points, sf_points],
        NOT_SCORED,
    )

    mean, sbp, dbp = v("MAP"), v("SBP"), v("DBP")
    estimated = (sbp + 2 * dbp) / 3
    circulation_way = np.select(
        [v("Vasopressors") >= 1, v.has("MAP"), v.has("SBP") & v.has("DBP")],
        [_CV_VASOPRESSORS, _CV_MAP, _CV_ESTIMATED],
        _CV_NONE,
    )
    cardiovascular = np.select(
        [
            circulation_way == _CV_VASOPRESSORS,
            circulation_way == _CV_MAP,
            circulation_way == _CV_ESTIMATED,
        ],
        [s.SOFA_VASOPRESSOR_POINTS, mean < s.SOFA_MAP_MIN, estimated < s.SOFA_MAP_MIN],
        NOT_SCORED,
    )

    has_creatinine = v.has("Creatinine")
    renal_way = np.select(
        [has_creatinine, urine_points > 0], [_RENAL_CREATININE, _RENAL_URINE], _RENAL_NONE
    )
    by_creatinine = np.maximum(
        _at_least(v("Creatinine"), s.SOFA_CREATININE_BANDS), np.maximum(urine_points, 0)
    )
    renal = np.select(
        [renal_way == _RENAL_CREATININE, renal_way == _RENAL_URINE],
        [by_creatinine, urine_points],
        NOT_SCORED,
    )
    return [
        respiration.astype(np.int64),
        _scored(v.has("Platelets"), _below(v("Platelets"), s.SOFA_PLATELET_BANDS)),
        _scored(v.has("Bilirubin_total"), _at_least(v("Bilirubin_total"), s.SOFA_BILIRUBIN_BANDS)),
        cardiovascular.astype(np.int64),
        _scored(v.has("GCS"), _below(v("GCS"), s.SOFA_GCS_BANDS)),
        renal.astype(np.int64),
        room_air.astype(np.int64),
        respiration_way.astype(np.int64),
        circulation_way.astype(np.int64),
        renal_way.astype(np.int64),
    ]


# ---- keys and the results they stand for -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Score:
    name: str
    """The field of `ClinicalScores`."""
    components: int
    """How many leading parts are components (the rest pick missing inputs and notes)."""
    compute: Callable[[NormalizedPatient], s.ScoreResult]


SCORES: Final = (
    _Score("qsofa", 3, s.qsofa),
    _Score("sirs", 4, s.sirs),
    _Score("news2", 7, s.news2),
    _Score("sofa", 6, s.sofa),
)
"""In the order of `ClinicalScores`."""
_DRIVER_ORDER: Final = tuple([score.name for score in SCORES].index(n) for n in DRIVER_SCORE_ORDER)


def _pack(parts: Sequence[IntArray]) -> IntArray:
    key = np.zeros(parts[0].shape, dtype=np.int64)
    for j, part in enumerate(parts):
        key |= (part + 1) << (_BITS * j)  # -1..14 -> 0..15
    return key


def _unpack(key: int, count: int) -> tuple[int, ...]:
    mask = (1 << _BITS) - 1
    return tuple(((key >> (_BITS * j)) & mask) - 1 for j in range(count))


@dataclass(frozen=True, slots=True)
class BatchScores:
    """The four scores of every patient of a batch, as keys and totals."""

    keys: tuple[list[int], list[int], list[int], list[int]]
    """Per score (SCORES order), one key per patient."""
    totals: dict[str, IntArray]
    """Score name -> (n,) totals (the `score` of each result)."""


def batch_scores(latest: FloatArray, urine_points: IntArray) -> BatchScores:
    """Keys and totals of the four scores from the latest-value matrix (`BatchInputs`)."""
    v = _Latest(latest)
    parts = (qsofa_parts(v), sirs_parts(v), news2_parts(v), sofa_parts(v, urine_points))
    totals = {
        score.name: np.sum([np.maximum(c, 0) for c in p[: score.components]], axis=0)
        for score, p in zip(SCORES, parts, strict=True)
    }
    q, r, n, o = (_pack(p).tolist() for p in parts)
    return BatchScores(keys=(q, r, n, o), totals=totals)


@dataclass(frozen=True, slots=True)
class CachedScore:
    """A score result as plain data, as JSON, and its driver sentence."""

    data: dict[str, Any]
    json: bytes
    sentence: ScoreSentence


class AllFour(NamedTuple):
    """The four score results of a patient."""

    json: bytes
    """As the `ClinicalScores` object."""
    for_drivers: tuple[CachedScore, ...]
    """In DRIVER_SCORE_ORDER."""


class ScoreCache:
    """Score results by key, shared by all requests.

    What it hands out is shared between responses: never mutate it. Bounded: when full it
    starts afresh (the keys in use come back within a batch or two).
    """

    def __init__(self, max_entries: int = 8192) -> None:
        self._results: tuple[dict[int, CachedScore], ...] = tuple({} for _ in SCORES)
        self._missing: dict[bytes, bytes] = {}
        self._all_four: dict[tuple[int, ...], AllFour] = {}
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(len(r) for r in self._results) + len(self._missing) + len(self._all_four)

    def all_four(
        self, keys: tuple[int, ...], patient: HourlyPatient | NormalizedPatient
    ) -> AllFour:
        """The four results of `patient` (keys in SCORES order) as `ClinicalScores` JSON and
        in the order the drivers offer them."""
        found = self._all_four.get(keys)
        if found is None:
            results = [self.results(j, key, patient) for j, key in enumerate(keys)]
            block = b",".join(
                b'"%s":%s' % (score.name.encode(), result.json)
                for score, result in zip(SCORES, results, strict=True)
            )
            found = AllFour(b"{%s}" % block, tuple(results[k] for k in _DRIVER_ORDER))
            self._store(self._all_four, keys, found)
        return found

    def missing_inputs(self, presence: bytes, patient: HourlyPatient | NormalizedPatient) -> bytes:
        """`missing_inputs` of `patient` as JSON; `presence` says which of the variables it
        looks at were sent (equal presence, equal answer)."""
        found = self._missing.get(presence)
        if found is None:
            if isinstance(patient, HourlyPatient):
                patient = patient.normalized()
            found = to_json(missing_inputs(patient))
            self._store(self._missing, presence, found)
        return found

    def _store(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        with self._lock:
            if len(self) >= self._max_entries:
                for results in self._results:
                    results.clear()
                self._missing.clear()
                self._all_four.clear()
            table[key] = value

    def results(
        self, index: int, key: int, patient: HourlyPatient | NormalizedPatient
    ) -> CachedScore:
        """The result of score `index` (SCORES order) for `key`, which is `patient`'s (only
        read when the key is new)."""
        found = self._results[index].get(key)
        if found is not None:
            return found
        score = SCORES[index]
        if isinstance(patient, HourlyPatient):
            patient = patient.normalized()
        result = score.compute(patient)
        expected = _unpack(key, score.components)
        got = tuple(NOT_SCORED if c is None else c for c in result.components.values())
        if got != expected:
            raise ScoreMismatch(f"{score.name}: components {got}, vectorised {expected}")
        data = CachedScore(
            data=result.model_dump(),
            json=to_json(result),
            sentence=ScoreSentence.of(
                ScoreName(score.name), result.score, result.max_score, result.components
            ),
        )
        self._store(self._results[index], key, data)
        return data
