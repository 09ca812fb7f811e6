"""The hybrid: the model's calibrated probability and the clinical criteria -> an assessment.

`blend` turns a probability, the clinical scores and the septic-shock facts into the 0-100 risk
score and the priority, following the active `MLConfig`: a weighted (or max) blend of a model
component and a clinical component gives the risk score and its band; every floor that holds
(septic shock, score thresholds, the model's alert threshold) lifts the priority to at least
its level; the rule that set the final priority is reported, and the risk score is raised to
the lower bound of the final band so that score and priority agree. `drivers` says in a few
words what moved the assessment. Nothing here knows about HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sepsis_ml.features import WINDOW_HOURS
from sepsis_ml.mlconfig import BlendConfig, MLConfig, ScoreName, SepticShockRule
from sepsis_shared.assessment import Priority, max_priority
from sepsis_shared.patient import NormalizedPatient
from sepsis_shared.scores import ClinicalScores, ScoreResult

RULE_SEPTIC_SHOCK: Final = "septic_shock_criteria"
RULE_MODEL: Final = "model_probability"
RULE_BAND: Final = "risk_score_band"

MAX_DRIVERS: Final = 5
MIN_DRIVERS: Final = 3


# --------------------------------------------------------------------------------------------
# Septic shock facts


@dataclass(frozen=True, slots=True)
class ShockFacts:
    """The bedside values the septic-shock criteria read (latest of each)."""

    map_mmhg: float | None
    map_estimated: bool
    lactate: float | None
    vasopressors: bool


def shock_facts(patient: NormalizedPatient, rule: SepticShockRule) -> ShockFacts:
    """Latest MAP (or its SBP/DBP estimate when the rule allows), lactate and vasopressors."""
    map_mmhg = patient.latest("MAP")
    estimated = False
    if map_mmhg is None and rule.estimate_map_from_sbp_dbp:
        sbp, dbp = patient.latest("SBP"), patient.latest("DBP")
        if sbp is not None and dbp is not None:
            map_mmhg = (sbp + 2.0 * dbp) / 3.0
            estimated = True
    vaso = patient.latest("Vasopressors")
    return ShockFacts(
        map_mmhg=map_mmhg,
        map_estimated=estimated,
        lactate=patient.latest("Lactate"),
        vasopressors=vaso is not None and vaso >= 0.5,
    )


def septic_shock(facts: ShockFacts, rule: SepticShockRule) -> bool:
    """Sepsis-3 septic shock at the bedside: (MAP below the bound or vasopressors) and lactate
    above the bound. Missing values never meet a criterion."""
    if not rule.enabled or facts.lactate is None:
        return False
    if not facts.lactate > rule.lactate_above_mmol_l:
        return False
    low_map = facts.map_mmhg is not None and facts.map_mmhg < rule.map_below_mmhg
    return low_map or (rule.vasopressors_count and facts.vasopressors)


# --------------------------------------------------------------------------------------------
# Risk score and priority


def model_component(probability: float, *, threshold: float, maps_to: float) -> float:
    """Probability -> 0-1, piecewise linear through (0, 0), (threshold, maps_to), (1, 1)."""
    p = min(1.0, max(0.0, probability))
    if threshold <= 0.0:
        return maps_to + (1.0 - maps_to) * p
    if p <= threshold:
        return maps_to * p / threshold
    if threshold >= 1.0:
        return 1.0
    return maps_to + (1.0 - maps_to) * (p - threshold) / (1.0 - threshold)


def clinical_component(values: Mapping[ScoreName, int], blend: BlendConfig) -> float:
    """Weighted sum over scores of min(1, score / saturation), 0-1."""
    total = 0.0
    for name, share in blend.clinical_weights.items():
        saturation = blend.clinical_saturation[name]
        total += share * min(1.0, values.get(name, 0) / saturation)
    return min(1.0, total)


def score_values(scores: ClinicalScores) -> dict[ScoreName, int]:
    """The four score totals keyed by name."""
    return {
        ScoreName.qsofa: scores.qsofa.score,
        ScoreName.sirs: scores.sirs.score,
        ScoreName.news2: scores.news2.score,
        ScoreName.sofa: scores.sofa.score,
    }


@dataclass(frozen=True, slots=True)
class BlendResult:
    """What the hybrid decided for one patient."""

    risk_score: float
    """0-100, at least the lower bound of the final priority's band."""
    blended_score: float
    """0-100, the blend before any floor lifted it."""
    model_component: float
    clinical_component: float
    priority: Priority
    priority_rule: str
    rules_fired: tuple[str, ...]
    septic_shock: bool
    model_alert: bool


def blend(
    *,
    probability: float,
    scores: Mapping[ScoreName, int],
    shock: ShockFacts,
    config: MLConfig,
    alert_threshold: float,
) -> BlendResult:
    """Risk score, priority and the rule that set it, following `config`."""
    b = config.blend
    m = model_component(probability, threshold=alert_threshold, maps_to=b.threshold_maps_to)
    c = clinical_component(scores, b)
    raw = max(m, c) if b.method == "max" else b.model_weight * m + b.clinical_weight * c
    # Rounded before banding, so the reported score and its band always agree.
    blended = round(100.0 * min(1.0, max(0.0, raw)), 1)

    # Floors in reporting order: when several reach the final priority, the first one named.
    fired: list[tuple[Priority, str]] = []
    in_shock = septic_shock(shock, config.septic_shock)
    if in_shock:
        fired.append((config.septic_shock.priority, RULE_SEPTIC_SHOCK))
    for floor in config.score_floors:
        if scores.get(floor.score, 0) >= floor.at_least:
            fired.append((floor.priority, floor.rule))
    model_alert = probability >= alert_threshold
    if config.model_floor.enabled and model_alert:
        fired.append((config.model_floor.priority, RULE_MODEL))

    priority = max_priority(config.bands.priority_for(blended), *(level for level, _ in fired))
    rule = next((name for level, name in fired if level is priority), RULE_BAND)
    risk = max(blended, config.bands.lower_bound(priority))
    return BlendResult(
        risk_score=risk,
        blended_score=blended,
        model_component=m,
        clinical_component=c,
        priority=priority,
        priority_rule=rule,
        rules_fired=tuple(name for _, name in fired),
        septic_shock=in_shock,
        model_alert=model_alert,
    )


# --------------------------------------------------------------------------------------------
# Drivers: the few findings that moved the assessment, in words

_LABELS: Final[Mapping[str, str]] = {"Resp": "RR", "O2Sat": "SpO2", "Bilirubin_total": "Bilirubin"}
# Score components (keys of `ScoreResult.components`) -> the variable worth quoting.
_COMPONENT_VARIABLES: Final[Mapping[str, str]] = {
    "respiratory_rate": "Resp",
    "respiration_rate": "Resp",
    "respiratory": "Resp",
    "systolic_bp": "SBP",
    "temperature": "Temp",
    "heart_rate": "HR",
    "pulse": "HR",
    "white_cells": "WBC",
    "spo2_scale1": "O2Sat",
    "altered_mentation": "GCS",
    "cns": "GCS",
    "coagulation": "Platelets",
    "liver": "Bilirubin_total",
    "renal": "Creatinine",
    "cardiovascular": "MAP",
}
_SCORE_TITLES: Final[Mapping[ScoreName, str]] = {
    ScoreName.qsofa: "qSOFA",
    ScoreName.sirs: "SIRS",
    ScoreName.news2: "NEWS2",
    ScoreName.sofa: "SOFA",
}

# Lactate: > 2 mmol/L is the Sepsis-3 shock criterion and >= 4 the Surviving Sepsis Campaign's
# trigger for fluid resuscitation (Evans L et al., Crit Care Med 2021).
LACTATE_HIGH: Final = 2.0
LACTATE_VERY_HIGH: Final = 4.0

# Changes over the look-back window worth naming (descriptive only; they set no priority).
# A fall of 20 mmHg systolic or 10 mmHg mean and a rise of 20 beats/min, 6 breaths/min, 1 °C
# or 1 mmol/L lactate are the orders of change early-warning reviews treat as deterioration.
_TRENDS: Final[tuple[tuple[str, float, str], ...]] = (
    ("SBP", -20.0, "mmHg"),
    ("MAP", -10.0, "mmHg"),
    ("HR", 20.0, "beats/min"),
    ("Resp", 6.0, "breaths/min"),
    ("Temp", 1.0, "°C"),
    ("Lactate", 1.0, "mmol/L"),
    ("O2Sat", -4.0, "%"),
)


def _num(x: float) -> str:
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2g}" if abs(x) < 1 else f"{x:.1f}"


def _pct(p: float) -> str:
    pct = 100.0 * p
    if pct >= 10 or pct == 0:
        return f"{pct:.0f}%"
    return f"{pct:.1f}%"


def _label(name: str) -> str:
    return _LABELS.get(name, name)


def _component_text(patient: NormalizedPatient, key: str) -> str:
    name = _COMPONENT_VARIABLES.get(key)
    value = patient.latest(name) if name is not None else None
    if name is not None and value is not None:
        return f"{_label(name)} {_num(value)}"
    return key.replace("_", " ")


def _score_sentence(patient: NormalizedPatient, name: ScoreName, result: ScoreResult) -> str:
    scored = sorted(
        ((pts, key) for key, pts in result.components.items() if pts),
        key=lambda item: -item[0],
    )
    parts = [_component_text(patient, key) for _, key in scored[:3]]
    text = f"{_SCORE_TITLES[name]} {result.score}/{result.max_score}"
    return f"{text}: {', '.join(parts)}" if parts else text


def _trend_sentences(patient: NormalizedPatient) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    for name, threshold, unit in _TRENDS:
        recent = [o for o in patient.observations(name) if o.hours_ago < WINDOW_HOURS]
        if len(recent) < 2:
            continue
        first, last = recent[0], recent[-1]
        span = first.hours_ago - last.hours_ago
        change = last.value - first.value
        if span <= 0 or change == 0 or math.copysign(1.0, change) != math.copysign(1.0, threshold):
            continue
        if abs(change) < abs(threshold):
            continue
        verb = "rose" if change > 0 else "fell"
        text = f"{_label(name)} {verb} {_num(abs(change))} {unit} over {_num(span)} h"
        out.append((60.0 + 10.0 * min(3.0, abs(change) / abs(threshold)), text))
    return out


def drivers(
    *,
    patient: NormalizedPatient,
    scores: ClinicalScores,
    result: BlendResult,
    probability: float,
    alert_threshold: float,
    shock: ShockFacts,
    config: MLConfig,
) -> list[str]:
    """3-5 short sentences naming what moved the assessment, most important first."""
    candidates: list[tuple[float, str]] = []
    rule = config.septic_shock
    if result.septic_shock and shock.lactate is not None:
        if shock.map_mmhg is not None and shock.map_mmhg < rule.map_below_mmhg:
            how = "estimated from SBP/DBP " if shock.map_estimated else ""
            circulation = (
                f"MAP {_num(round(shock.map_mmhg))} mmHg {how}(< {_num(rule.map_below_mmhg)})"
            )
        else:
            circulation = "vasopressors running"
        candidates.append(
            (
                100.0,
                f"Septic shock criteria: {circulation} with lactate "
                f"{_num(shock.lactate)} mmol/L (> {_num(rule.lactate_above_mmol_l)})",
            )
        )
    elif shock.lactate is not None and shock.lactate >= LACTATE_HIGH:
        bound = LACTATE_VERY_HIGH if shock.lactate >= LACTATE_VERY_HIGH else LACTATE_HIGH
        candidates.append(
            (75.0 + bound, f"Lactate {_num(shock.lactate)} mmol/L (>= {_num(bound)})")
        )

    comparison = "at or above" if result.model_alert else "below"
    candidates.append(
        (
            90.0 if result.model_alert else 5.0 + 40.0 * result.model_component,
            f"Model probability {_pct(probability)}, {comparison} the alert threshold "
            f"{_pct(alert_threshold)}",
        )
    )

    values = score_values(scores)
    floors = {floor.score: floor for floor in config.score_floors}
    results: dict[ScoreName, ScoreResult] = {
        ScoreName.qsofa: scores.qsofa,
        ScoreName.news2: scores.news2,
        ScoreName.sirs: scores.sirs,
        ScoreName.sofa: scores.sofa,
    }
    for order, (name, score) in enumerate(results.items()):
        value = values[name]
        fired = [f for f in config.score_floors if f.score is name and value >= f.at_least]
        if fired:
            weight = 80.0 + 3.0 * max(f.priority.rank for f in fired) - order
        elif value > 0:
            floor = floors.get(name)
            ratio = value / floor.at_least if floor is not None else value / score.max_score
            weight = 20.0 + 20.0 * min(1.0, ratio) - order
        else:
            weight = 1.0 - 0.1 * order
        candidates.append((weight, _score_sentence(patient, name, score)))

    candidates.extend(_trend_sentences(patient))
    candidates.sort(key=lambda item: -item[0])
    chosen = [text for weight, text in candidates if weight >= 10.0][:MAX_DRIVERS]
    if len(chosen) < MIN_DRIVERS:
        rest = [text for _, text in candidates if text not in chosen]
        chosen.extend(rest[: MIN_DRIVERS - len(chosen)])
    return chosen
