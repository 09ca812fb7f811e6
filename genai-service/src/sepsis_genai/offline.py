"""The offline provider: a deterministic assessment from scores, trends and note findings.

It is what the service answers with no LLM configured (the embedded default), and the base of
the degraded answer when the LLM fails. It is always reported as `provider: offline` or with the
LLM's failure status, never as an LLM answer. It has the shape of an `LLMAnswer` so that the
rest of the pipeline (guardrail floors, response) treats both the same way.

The risk score is a transparent sum of weighted clinical criteria, not a trained model and not
a calibrated probability. Weights follow how strongly each criterion is tied to sepsis
mortality in its source: qSOFA >= 2 (Seymour et al., JAMA 2016;315(8):762-774), NEWS2 >= 5
and >= 7 response thresholds (Royal College of Physicians 2017), SOFA points (Singer et al.,
Sepsis-3, JAMA 2016;315(8):801-810), lactate > 2 and >= 4 mmol/L and MAP < 65 mmHg or
vasopressors (Sepsis-3 septic shock; Surviving Sepsis Campaign 2021, Evans et al., Crit Care
Med 2021;49(11):e1063-e1143), SIRS >= 2 (Bone et al., Chest 1992). The guardrail then applies
its floors on top, exactly as for an LLM answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sepsis_genai.schemas import MAX_LIST_ITEMS, LLMAnswer
from sepsis_genai.trends import Trend
from sepsis_shared.assessment import Priority, missing_inputs
from sepsis_shared.notes import NoteFinding
from sepsis_shared.patient import NormalizedPatient
from sepsis_shared.scores import ClinicalScores

OFFLINE_MODEL_NAME: Final = "sepsis-genai-offline-rules"
OFFLINE_RULES_VERSION: Final = "1"

BASE_RISK: Final = 3
# priority bands of the summed risk: the same as both configs (tests/test_contract_bands.py)
CRITICAL_FROM: Final = 75
URGENT_FROM: Final = 50
ELEVATED_FROM: Final = 25

QSOFA_POINTS: Final[Mapping[int, int]] = {0: 0, 1: 8, 2: 25, 3: 35}
SIRS_POINTS: Final[Mapping[int, int]] = {0: 0, 1: 2, 2: 10, 3: 14, 4: 18}
NEWS2_HIGH_POINTS: Final = 25  # >= 7, emergency response
NEWS2_MEDIUM_POINTS: Final = 15  # 5-6, urgent response
NEWS2_LOW_POINTS: Final = 5  # 1-4
NEWS2_RED_PARAMETER_POINTS: Final = 6  # one parameter scoring 3
SOFA_BANDS: Final[Sequence[tuple[int, int]]] = ((9, 40), (6, 28), (4, 18), (2, 10), (1, 4))
LACTATE_SHOCK_MMOL: Final = 4.0
LACTATE_HIGH_MMOL: Final = 2.0
LACTATE_SHOCK_POINTS: Final = 25
LACTATE_HIGH_POINTS: Final = 12
SBP_LOW: Final = 90.0
MAP_LOW: Final = 65.0
HYPOTENSION_POINTS: Final = 15
VASOPRESSOR_POINTS: Final = 25
NOTE_FINDING_POINTS: Final = 6
NOTE_FINDINGS_MAX_POINTS: Final = 24
# trend criteria: (variable, change over the window that counts, points, words)
TREND_RULES: Final[Sequence[tuple[str, float, int, str]]] = (
    ("SBP", -20.0, 8, "systolic pressure falling"),
    ("MAP", -15.0, 8, "mean arterial pressure falling"),
    ("Lactate", 1.0, 8, "lactate rising"),
    ("HR", 20.0, 5, "heart rate rising"),
    ("Resp", 6.0, 4, "respiratory rate rising"),
    ("O2Sat", -4.0, 4, "oxygen saturation falling"),
    ("Temp", 1.0, 3, "temperature rising"),
)


@dataclass(frozen=True, slots=True)
class _Criterion:
    points: int
    words: str


def priority_for_risk(risk: int) -> Priority:
    if risk >= CRITICAL_FROM:
        return Priority.CRITICAL
    if risk >= URGENT_FROM:
        return Priority.URGENT
    if risk >= ELEVATED_FROM:
        return Priority.ELEVATED
    return Priority.STANDARD


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def _criteria(
    patient: NormalizedPatient,
    scores: ClinicalScores,
    trends: Mapping[str, Trend],
    findings: Sequence[NoteFinding],
) -> list[_Criterion]:
    out: list[_Criterion] = []
    q = scores.qsofa
    if QSOFA_POINTS.get(min(q.score, 3), 0):
        out.append(_Criterion(QSOFA_POINTS[min(q.score, 3)], f"qSOFA {q.score}/{q.max_score}"))
    s = scores.sirs
    if SIRS_POINTS.get(min(s.score, 4), 0) >= SIRS_POINTS[2]:
        out.append(_Criterion(SIRS_POINTS[min(s.score, 4)], f"SIRS {s.score}/{s.max_score}"))
    n = scores.news2
    if n.score >= 7:
        out.append(_Criterion(NEWS2_HIGH_POINTS, f"NEWS2 {n.score} (emergency response band)"))
    elif n.score >= 5:
        out.append(_Criterion(NEWS2_MEDIUM_POINTS, f"NEWS2 {n.score} (urgent response band)"))
    elif n.score >= 1:
        out.append(_Criterion(NEWS2_LOW_POINTS, f"NEWS2 {n.score}"))
    if any(v == 3 for v in n.components.values()):
        out.append(_Criterion(NEWS2_RED_PARAMETER_POINTS, "a single NEWS2 parameter scores 3"))
    so = scores.sofa
    for at_least, points in SOFA_BANDS:
        if so.score >= at_least:
            partial = "" if so.complete else ", partial"
            out.append(_Criterion(points, f"SOFA {so.score}{partial}"))
            break
    lactate = patient.latest("Lactate")
    if lactate is not None and lactate >= LACTATE_SHOCK_MMOL:
        out.append(_Criterion(LACTATE_SHOCK_POINTS, f"lactate {_num(lactate)} mmol/L"))
    elif lactate is not None and lactate > LACTATE_HIGH_MMOL:
        out.append(_Criterion(LACTATE_HIGH_POINTS, f"lactate {_num(lactate)} mmol/L"))
    sbp, mean = patient.latest("SBP"), patient.latest("MAP")
    if (sbp is not None and sbp < SBP_LOW) or (mean is not None and mean < MAP_LOW):
        shown = f"SBP {_num(sbp)} mmHg" if sbp is not None and sbp < SBP_LOW else ""
        if mean is not None and mean < MAP_LOW:
            shown = f"{shown}, MAP {_num(mean)} mmHg" if shown else f"MAP {_num(mean)} mmHg"
        out.append(_Criterion(HYPOTENSION_POINTS, f"hypotension ({shown})"))
    if (patient.latest("Vasopressors") or 0) >= 1:
        out.append(_Criterion(VASOPRESSOR_POINTS, "on vasopressors"))
    if findings:
        points = min(NOTE_FINDINGS_MAX_POINTS, NOTE_FINDING_POINTS * len(findings))
        labels = ", ".join(f.label for f in findings[:4])
        out.append(_Criterion(points, f"notes: {labels}"))
    for variable, change, points, words in TREND_RULES:
        trend = trends.get(variable)
        if trend is None or trend.n < 2:
            continue
        delta = trend.last - trend.first
        if (change < 0 and delta <= change) or (change > 0 and delta >= change):
            out.append(
                _Criterion(
                    points,
                    f"{words} ({_num(trend.first)} -> {_num(trend.last)} over "
                    f"{_num(trend.hours_span)} h)",
                )
            )
    out.sort(key=lambda c: -c.points)
    return out


_ACTIONS: Final[Mapping[Priority, tuple[str, ...]]] = {
    Priority.CRITICAL: (
        "Immediate bedside review by the responding clinician",
        "Start the hour-1 sepsis bundle: lactate, blood cultures before antibiotics, "
        "broad-spectrum antibiotics, 30 mL/kg crystalloid for hypotension or lactate >= 4",
        "Vasopressors if MAP stays below 65 mmHg after fluids; involve critical care",
    ),
    Priority.URGENT: (
        "Clinician review within 30 minutes",
        "Look for a source of infection; measure or repeat lactate; take blood cultures",
        "Observations at least hourly",
    ),
    Priority.ELEVATED: (
        "Nurse review now and observations at least every 4 hours",
        "Escalate if any vital sign worsens or new confusion appears",
    ),
    Priority.STANDARD: ("Routine observations",),
}


def offline_assessment(
    patient: NormalizedPatient,
    *,
    scores: ClinicalScores,
    trends: Mapping[str, Trend],
    findings: Sequence[NoteFinding],
) -> LLMAnswer:
    """The deterministic assessment of one patient (same shape as an LLM answer)."""
    criteria = _criteria(patient, scores, trends, findings)
    risk = min(99, BASE_RISK + sum(c.points for c in criteria))
    priority = priority_for_risk(risk)
    actions = list(_ACTIONS[priority])
    missing = missing_inputs(patient)
    if "Lactate" in missing and priority.rank >= Priority.ELEVATED.rank:
        actions.append("Measure lactate")
    if missing:
        actions.append("Send " + ", ".join(missing[:6]) + " to complete the scores")
    found = "; ".join(c.words for c in criteria[:6]) or "no sepsis criterion met"
    rationale = (
        f"Deterministic rule-based assessment, no language model involved. {found}. "
        f"Risk {risk}/100 is a weighted sum of clinical criteria, not a calibrated probability."
    )
    return LLMAnswer(
        risk_score=risk,
        priority=priority,
        sepsis_probability_6h=round(risk / 100, 2),
        rationale=rationale[:1500],
        key_findings=[c.words[:240] for c in criteria[:MAX_LIST_ITEMS]],
        recommended_actions=[a[:240] for a in actions[:MAX_LIST_ITEMS]],
    )
