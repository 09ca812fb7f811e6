"""Bedside clinical scores: qSOFA, SIRS, NEWS2 and SOFA, computed from the latest values.

Each score is computed only from what was sent. A component whose inputs are all absent scores
None and its inputs are listed in `missing`; the total is the sum of the components that could
be scored and `complete` says whether every component could. Nothing is imputed as normal.
Where a component is derived from a stand-in input (SpO2/FiO2 for PaO2/FiO2, GCS for ACVPU,
SBP and DBP for MAP, supplemental oxygen 0 for FiO2 0.21), `notes` says so.

Sources of the thresholds (cited at each table):
- qSOFA: Seymour CW et al., JAMA 2016;315(8):762-774; Singer M et al. (Sepsis-3), JAMA
  2016;315(8):801-810.
- SIRS: Bone RC et al., ACCP/SCCM Consensus Conference, Chest 1992;101(6):1644-1655.
- NEWS2: Royal College of Physicians, National Early Warning Score (NEWS) 2, London 2017.
- SOFA: Vincent JL et al., Intensive Care Med 1996;22(7):707-710. SpO2/FiO2 surrogate for the
  respiratory component: Rice TW et al., Chest 2007;132(2):410-417 (S/F = 64 + 0.84 x P/F, valid
  for SpO2 <= 97 %; S/F 235 and 315 match P/F 200 and 300), with the S/F bands of the modified
  SOFA of Grissom CK et al., Disaster Med Public Health Prep 2010;4(4):277-284.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from pydantic import BaseModel, Field

from sepsis_shared.patient import NormalizedPatient

__all__ = [
    "NEWS2_HIGH",
    "NEWS2_MAX",
    "NEWS2_MEDIUM",
    "NEWS2_RED_PARAMETER",
    "QSOFA_GCS_NORMAL",
    "QSOFA_MAX",
    "QSOFA_POSITIVE",
    "QSOFA_RESP_MIN",
    "QSOFA_SBP_MAX",
    "ROOM_AIR_FIO2",
    "SIRS_HR_ABOVE",
    "SIRS_MAX",
    "SIRS_PACO2_BELOW",
    "SIRS_POSITIVE",
    "SIRS_RESP_ABOVE",
    "SIRS_TEMP_ABOVE",
    "SIRS_TEMP_BELOW",
    "SIRS_WBC_ABOVE",
    "SIRS_WBC_BELOW",
    "SOFA_MAX",
    "SOFA_POSITIVE",
    "SOFA_SF_MAX_SPO2",
    "ClinicalScores",
    "ScoreResult",
    "clinical_scores",
    "news2",
    "qsofa",
    "sirs",
    "sofa",
    "sofa_urine_points",
]


class ScoreResult(BaseModel):
    """One clinical score, with its components and what could not be scored."""

    name: str = Field(description="`qSOFA`, `SIRS`, `NEWS2` or `SOFA`.")
    score: int = Field(ge=0, description="Sum of the components that could be scored.")
    max_score: int = Field(description="Highest possible score.")
    components: dict[str, int | None] = Field(
        description="Points per component; null when its inputs were not sent."
    )
    missing: list[str] = Field(
        description="Input variables that would have scored the null components."
    )
    complete: bool = Field(description="Every component could be scored.")
    positive: bool = Field(
        description="Meets the usual alerting threshold: qSOFA >= 2, SIRS >= 2, NEWS2 >= 5, "
        "SOFA >= 2 (from the available parts; an incomplete score may understate it)."
    )
    interpretation: str = Field(description="The score in words.")
    notes: list[str] = Field(
        default_factory=list, description="Stand-in inputs used for a component, if any."
    )


class ClinicalScores(BaseModel):
    """The four bedside scores computed from the latest values sent."""

    qsofa: ScoreResult
    sirs: ScoreResult
    news2: ScoreResult
    sofa: ScoreResult


Bands = Sequence[tuple[float, int]]
"""(inclusive upper bound, points) in ascending order; values above the last bound score
the fallback given to `_band`."""


def _band(value: float, bands: Bands, above: int) -> int:
    for upper, points in bands:
        if value <= upper:
            return points
    return above


def _result(
    name: str,
    max_score: int,
    components: dict[str, int | None],
    missing: list[str],
    positive_at: int,
    interpretation: str,
    notes: list[str],
) -> ScoreResult:
    score = sum(v for v in components.values() if v is not None)
    complete = all(v is not None for v in components.values())
    return ScoreResult(
        name=name,
        score=score,
        max_score=max_score,
        components=components,
        missing=missing,
        complete=complete,
        positive=score >= positive_at,
        interpretation=interpretation,
        notes=notes,
    )


def _scored(components: dict[str, int | None]) -> str:
    n = sum(v is not None for v in components.values())
    return "" if n == len(components) else f" ({n} of {len(components)} components scored)"


# --------------------------------------------------------------------------------------------
# qSOFA (Seymour 2016; Singer 2016): one point each for RR >= 22/min, SBP <= 100 mmHg and
# altered mentation (GCS < 15, or any ACVPU level other than Alert).

QSOFA_RESP_MIN: Final = 22
QSOFA_SBP_MAX: Final = 100
QSOFA_GCS_NORMAL: Final = 15
QSOFA_POSITIVE: Final = 2
QSOFA_MAX: Final = 3


def _altered_mentation(p: NormalizedPatient) -> int | None:
    gcs = p.latest("GCS")
    avpu = p.latest("Consciousness")
    if gcs is None and avpu is None:
        return None
    altered = (gcs is not None and gcs < QSOFA_GCS_NORMAL) or (avpu is not None and avpu > 0)
    return int(altered)


def qsofa(p: NormalizedPatient) -> ScoreResult:
    """quick SOFA (0-3); 2 or more flags a higher risk of a poor outcome from infection."""
    resp, sbp = p.latest("Resp"), p.latest("SBP")
    components: dict[str, int | None] = {
        "respiratory_rate": None if resp is None else int(resp >= QSOFA_RESP_MIN),
        "systolic_bp": None if sbp is None else int(sbp <= QSOFA_SBP_MAX),
        "altered_mentation": _altered_mentation(p),
    }
    missing: list[str] = []
    if resp is None:
        missing.append("Resp")
    if sbp is None:
        missing.append("SBP")
    if components["altered_mentation"] is None:
        missing += ["GCS", "Consciousness"]
    score = sum(v for v in components.values() if v is not None)
    words = "positive (>= 2)" if score >= QSOFA_POSITIVE else "negative"
    return _result(
        "qSOFA",
        QSOFA_MAX,
        components,
        missing,
        QSOFA_POSITIVE,
        f"qSOFA {score}/{QSOFA_MAX}: {words}" + _scored(components),
        [],
    )


# --------------------------------------------------------------------------------------------
# SIRS (Bone 1992): temperature > 38 °C or < 36 °C; heart rate > 90/min; respiratory rate
# > 20/min or PaCO2 < 32 mmHg; WBC > 12 or < 4 x10^3/uL (immature bands are not an input here).

SIRS_TEMP_ABOVE: Final = 38.0
SIRS_TEMP_BELOW: Final = 36.0
SIRS_HR_ABOVE: Final = 90
SIRS_RESP_ABOVE: Final = 20
SIRS_PACO2_BELOW: Final = 32
SIRS_WBC_ABOVE: Final = 12.0
SIRS_WBC_BELOW: Final = 4.0
SIRS_POSITIVE: Final = 2
SIRS_MAX: Final = 4


def sirs(p: NormalizedPatient) -> ScoreResult:
    """Systemic inflammatory response syndrome criteria met (0-4); 2 or more is SIRS."""
    temp, hr, resp, paco2, wbc = (
        p.latest("Temp"),
        p.latest("HR"),
        p.latest("Resp"),
        p.latest("PaCO2"),
        p.latest("WBC"),
    )
    notes: list[str] = []
    respiratory: int | None
    if resp is not None:
        respiratory = int(
            resp > SIRS_RESP_ABOVE or (paco2 is not None and paco2 < SIRS_PACO2_BELOW)
        )
    elif paco2 is not None and paco2 < SIRS_PACO2_BELOW:
        respiratory = 1
        notes.append("respiratory criterion met by PaCO2; respiratory rate not sent")
    else:
        # a normal PaCO2 alone cannot rule the criterion out: the rate could still be high
        respiratory = None
    components: dict[str, int | None] = {
        "temperature": None
        if temp is None
        else int(temp > SIRS_TEMP_ABOVE or temp < SIRS_TEMP_BELOW),
        "heart_rate": None if hr is None else int(hr > SIRS_HR_ABOVE),
        "respiratory": respiratory,
        "white_cells": None if wbc is None else int(wbc > SIRS_WBC_ABOVE or wbc < SIRS_WBC_BELOW),
    }
    inputs = {
        "temperature": "Temp",
        "heart_rate": "HR",
        "respiratory": "Resp",
        "white_cells": "WBC",
    }
    missing = [inputs[k] for k, v in components.items() if v is None]
    score = sum(v for v in components.values() if v is not None)
    words = "SIRS criteria met (>= 2)" if score >= SIRS_POSITIVE else "SIRS criteria not met"
    return _result(
        "SIRS",
        SIRS_MAX,
        components,
        missing,
        SIRS_POSITIVE,
        f"SIRS {score}/{SIRS_MAX}: {words}" + _scored(components),
        notes,
    )


# --------------------------------------------------------------------------------------------
# NEWS2 (Royal College of Physicians 2017), SpO2 scale 1. Each table lists (inclusive upper
# bound, points); a value above the last bound scores the `*_ABOVE` points.

NEWS2_RESP_BANDS: Final[Bands] = ((8, 3), (11, 1), (20, 0), (24, 2))
NEWS2_RESP_ABOVE: Final = 3  # >= 25/min
NEWS2_SPO2_BANDS: Final[Bands] = ((91, 3), (93, 2), (95, 1))
NEWS2_SPO2_ABOVE: Final = 0  # >= 96 %
NEWS2_SUPPLEMENTAL_O2: Final = 2
NEWS2_SBP_BANDS: Final[Bands] = ((90, 3), (100, 2), (110, 1), (219, 0))
NEWS2_SBP_ABOVE: Final = 3  # >= 220 mmHg
NEWS2_HR_BANDS: Final[Bands] = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2))
NEWS2_HR_ABOVE: Final = 3  # >= 131/min
NEWS2_CONSCIOUSNESS: Final = 3  # new confusion, voice, pain or unresponsive
NEWS2_TEMP_BANDS: Final[Bands] = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1))
NEWS2_TEMP_ABOVE: Final = 2  # >= 39.1 °C
NEWS2_MEDIUM: Final = 5  # urgent response threshold (key threshold for sepsis)
NEWS2_HIGH: Final = 7  # emergency response threshold
NEWS2_RED_PARAMETER: Final = 3  # a single parameter scoring 3 calls for an urgent review
NEWS2_MAX: Final = 20
ROOM_AIR_FIO2: Final = 0.21
"""Room air: FiO2 above it means supplemental oxygen; without FiO2 and without supplemental
oxygen, SOFA takes it as the FiO2."""


def news2(p: NormalizedPatient) -> ScoreResult:
    """National Early Warning Score 2 (0-20), SpO2 scale 1."""
    missing: list[str] = []
    notes: list[str] = []

    def banded(name: str, bands: Bands, above: int) -> int | None:
        value = p.latest(name)
        if value is None:
            missing.append(name)
            return None
        return _band(value, bands, above)

    resp = banded("Resp", NEWS2_RESP_BANDS, NEWS2_RESP_ABOVE)
    spo2 = banded("O2Sat", NEWS2_SPO2_BANDS, NEWS2_SPO2_ABOVE)

    oxygen: int | None
    flag, fio2 = p.latest("SupplementalO2"), p.latest("FiO2")
    if flag is not None:
        oxygen = NEWS2_SUPPLEMENTAL_O2 if flag >= 1 else 0
    elif fio2 is not None:
        oxygen = NEWS2_SUPPLEMENTAL_O2 if fio2 > ROOM_AIR_FIO2 else 0
        notes.append("air or oxygen scored from FiO2 (above 0.21 = supplemental oxygen)")
    else:
        oxygen = None
        missing.append("SupplementalO2")

    sbp = banded("SBP", NEWS2_SBP_BANDS, NEWS2_SBP_ABOVE)
    hr = banded("HR", NEWS2_HR_BANDS, NEWS2_HR_ABOVE)

    consciousness: int | None
    avpu, gcs = p.latest("Consciousness"), p.latest("GCS")
    if avpu is not None:
        consciousness = NEWS2_CONSCIOUSNESS if avpu > 0 else 0
    elif gcs is not None:
        consciousness = NEWS2_CONSCIOUSNESS if gcs < QSOFA_GCS_NORMAL else 0
        notes.append("consciousness scored from GCS (15 = alert) as ACVPU was not sent")
    else:
        consciousness = None
        missing.append("Consciousness")

    temp = banded("Temp", NEWS2_TEMP_BANDS, NEWS2_TEMP_ABOVE)
    components: dict[str, int | None] = {
        "respiration_rate": resp,
        "spo2_scale1": spo2,
        "air_or_oxygen": oxygen,
        "systolic_bp": sbp,
        "pulse": hr,
        "consciousness": consciousness,
        "temperature": temp,
    }
    score = sum(v for v in components.values() if v is not None)
    red = any(v == NEWS2_RED_PARAMETER for v in components.values())
    if score >= NEWS2_HIGH:
        words = "high clinical risk: emergency response"
    elif score >= NEWS2_MEDIUM:
        words = "medium clinical risk: urgent response"
    elif red:
        words = "low-medium clinical risk (a single parameter scored 3): urgent ward review"
    elif score > 0:
        words = "low clinical risk: ward-based response"
    else:
        words = "low clinical risk: routine monitoring"
    return _result(
        "NEWS2",
        NEWS2_MAX,
        components,
        missing,
        NEWS2_MEDIUM,
        f"NEWS2 {score}/{NEWS2_MAX}, {words}" + _scored(components),
        notes,
    )


# --------------------------------------------------------------------------------------------
# SOFA (Vincent 1996). Points rise as values fall (respiration, coagulation, CNS) or rise
# (liver, renal). Tables: (exclusive lower bound, points) for falling organs: a value below the
# bound scores at least the points; (inclusive lower bound, points) for rising organs.

SOFA_PF_BANDS: Final[Sequence[tuple[float, int]]] = ((100, 4), (200, 3), (300, 2), (400, 1))
"""PaO2/FiO2 (mmHg): < 100 -> 4, < 200 -> 3, < 300 -> 2, < 400 -> 1. Vincent requires
respiratory support for 3 and 4; ventilation is not an input here, so the ratio alone decides."""
SOFA_SF_BANDS: Final[Sequence[tuple[float, int]]] = ((150, 4), (235, 3), (315, 2), (400, 1))
"""SpO2/FiO2 stand-in (Rice 2007; bands of Grissom 2010): <= 150 -> 4, 151-235 -> 3,
236-315 -> 2, 316-400 -> 1, > 400 -> 0 (inclusive upper bounds)."""
SOFA_SF_MAX_SPO2: Final = 97.0
"""Above this SpO2 the S/F ratio no longer tracks P/F (oxygen dissociation curve plateau)."""
SOFA_PLATELET_BANDS: Final[Sequence[tuple[float, int]]] = ((20, 4), (50, 3), (100, 2), (150, 1))
SOFA_BILIRUBIN_BANDS: Final[Sequence[tuple[float, int]]] = ((12.0, 4), (6.0, 3), (2.0, 2), (1.2, 1))
SOFA_MAP_MIN: Final = 70
SOFA_VASOPRESSOR_POINTS: Final = 2
"""Vasoactive support of unknown drug and dose scores the lowest vasopressor band (2): the
score does not guess higher doses (3-4)."""
SOFA_GCS_BANDS: Final[Sequence[tuple[float, int]]] = ((6, 4), (10, 3), (13, 2), (15, 1))
SOFA_CREATININE_BANDS: Final[Sequence[tuple[float, int]]] = (
    (5.0, 4),
    (3.5, 3),
    (2.0, 2),
    (1.2, 1),
)
SOFA_URINE_BANDS: Final[Sequence[tuple[float, int]]] = ((200, 4), (500, 3))
"""Urine output (mL/day): < 200 -> 4, < 500 -> 3."""
SOFA_URINE_WINDOW_H: Final = 24.0
SOFA_POSITIVE: Final = 2
SOFA_MAX: Final = 24


def _below(value: float, bands: Sequence[tuple[float, int]]) -> int:
    """Points of the first band whose exclusive upper limit lies above the value, else 0."""
    for limit, points in bands:
        if value < limit:
            return points
    return 0


def _at_least(value: float, bands: Sequence[tuple[float, int]]) -> int:
    """Points of the first band whose inclusive lower limit the value reaches, else 0."""
    for limit, points in bands:
        if value >= limit:
            return points
    return 0


def _fio2(p: NormalizedPatient, notes: list[str]) -> float | None:
    fio2 = p.latest("FiO2")
    if fio2 is None and p.latest("SupplementalO2") == 0:
        notes.append("FiO2 taken as 0.21 (room air, no supplemental oxygen)")
        return ROOM_AIR_FIO2
    return fio2


def _sofa_respiration(p: NormalizedPatient, missing: list[str], notes: list[str]) -> int | None:
    pao2, spo2 = p.latest("PaO2"), p.latest("O2Sat")
    fio2 = _fio2(p, notes)
    if fio2 is None:
        missing.append("FiO2")
        if pao2 is None and spo2 is None:
            missing.append("PaO2")
        return None
    if pao2 is not None:
        return _below(pao2 / fio2, SOFA_PF_BANDS)
    if spo2 is not None:
        ratio = spo2 / fio2
        points = _band(ratio, SOFA_SF_BANDS, 0)
        if spo2 > SOFA_SF_MAX_SPO2 and points > 0:
            notes.append(
                "respiration not scored: SpO2 above 97 % does not stand in for PaO2 "
                "(Rice 2007); send PaO2"
            )
            missing.append("PaO2")
            return None
        notes.append("respiration scored from SpO2/FiO2 (Rice 2007) as PaO2 was not sent")
        return points
    missing.append("PaO2")
    return None


def _sofa_cardiovascular(p: NormalizedPatient, missing: list[str], notes: list[str]) -> int | None:
    if (p.latest("Vasopressors") or 0) >= 1:
        notes.append("cardiovascular: vasopressors of unknown drug and dose scored 2")
        return SOFA_VASOPRESSOR_POINTS
    mean = p.latest("MAP")
    if mean is None:
        sbp, dbp = p.latest("SBP"), p.latest("DBP")
        if sbp is None or dbp is None:
            missing.append("MAP")
            return None
        mean = (sbp + 2 * dbp) / 3
        notes.append("MAP computed as (SBP + 2 x DBP) / 3")
    return int(mean < SOFA_MAP_MIN)


def sofa_urine_points(recent: Sequence[float]) -> int | None:
    """Renal points of the urine output (mL/h) of the last SOFA_URINE_WINDOW_H hours, oldest
    first; None when there is none."""
    if not recent:
        return None
    per_day = sum(recent) / len(recent) * 24
    return _below(per_day, SOFA_URINE_BANDS)


def _sofa_renal(p: NormalizedPatient, missing: list[str], notes: list[str]) -> int | None:
    creatinine = p.latest("Creatinine")
    urine_points = sofa_urine_points(
        [o.value for o in p.observations("UrineOutput") if o.hours_ago < SOFA_URINE_WINDOW_H]
    )
    if creatinine is not None:
        return max(_at_least(creatinine, SOFA_CREATININE_BANDS), urine_points or 0)
    if urine_points:
        notes.append("renal scored from urine output alone; creatinine not sent")
        return urine_points
    # normal urine output does not rule out a raised creatinine
    missing.append("Creatinine")
    return None


def sofa(p: NormalizedPatient) -> ScoreResult:
    """Sequential Organ Failure Assessment (0-24) from the latest values."""
    missing: list[str] = []
    notes: list[str] = []
    respiration = _sofa_respiration(p, missing, notes)
    platelets = p.latest("Platelets")
    if platelets is None:
        missing.append("Platelets")
    bilirubin = p.latest("Bilirubin_total")
    if bilirubin is None:
        missing.append("Bilirubin_total")
    cardiovascular = _sofa_cardiovascular(p, missing, notes)
    gcs = p.latest("GCS")
    if gcs is None:
        missing.append("GCS")
    renal = _sofa_renal(p, missing, notes)
    components: dict[str, int | None] = {
        "respiration": respiration,
        "coagulation": None if platelets is None else _below(platelets, SOFA_PLATELET_BANDS),
        "liver": None if bilirubin is None else _at_least(bilirubin, SOFA_BILIRUBIN_BANDS),
        "cardiovascular": cardiovascular,
        "cns": None if gcs is None else _below(gcs, SOFA_GCS_BANDS),
        "renal": renal,
    }
    score = sum(v for v in components.values() if v is not None)
    words = (
        "organ dysfunction likely (>= 2 points; Sepsis-3 counts a rise from baseline)"
        if score >= SOFA_POSITIVE
        else "no organ dysfunction shown by the parts scored"
    )
    return _result(
        "SOFA",
        SOFA_MAX,
        components,
        missing,
        SOFA_POSITIVE,
        f"SOFA {score}/{SOFA_MAX}: {words}" + _scored(components),
        notes,
    )


def clinical_scores(p: NormalizedPatient) -> ClinicalScores:
    """All four scores for one patient."""
    return ClinicalScores(qsofa=qsofa(p), sirs=sirs(p), news2=news2(p), sofa=sofa(p))
