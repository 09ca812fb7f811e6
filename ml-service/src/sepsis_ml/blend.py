"""The hybrid: the model's calibrated probability and the clinical criteria -> an assessment.

`blend` turns a probability, the clinical scores and the septic-shock facts into the 0-100 risk
score and the priority, following the active config (flattened into a `BlendPlan`): a weighted
(or max) blend of a model component and a clinical component gives the risk score and its
band; every floor that holds (septic shock, Sepsis-3 infection with organ dysfunction, score
thresholds, the model's alert threshold)
lifts the priority to at least its level; the rule that set the final priority is reported,
and the risk score is raised to the lower bound of the final band so that score and priority
agree. `drivers` says in a few words what moved the assessment. Nothing here knows about HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final

from sepsis_ml.features import WINDOW_HOURS
from sepsis_ml.mlconfig import BlendPlan, InfectionRule, ScoreName, SepticShockRule
from sepsis_shared.assessment import Priority
from sepsis_shared.patient import BedsideFinding, NormalizedPatient, Observation
from sepsis_shared.scores import ClinicalScores, ScoreResult

RULE_SEPTIC_SHOCK: Final = "septic_shock_criteria"
RULE_INFECTION: Final = "infection_with_organ_dysfunction"
RULE_MODEL: Final = "model_probability"
RULE_BAND: Final = "risk_score_band"

MAX_DRIVERS: Final = 5
MIN_DRIVERS: Final = 3

# How much each kind of driver sentence weighs when they are ranked (most important first).
# Sentences weighing at least WEIGHT_WORTH_SAYING are said (up to MAX_DRIVERS); below
# MIN_DRIVERS of them, the heaviest MIN_DRIVERS are said anyway.
WEIGHT_WORTH_SAYING: Final = 10.0
WEIGHT_SHOCK: Final = 100.0
WEIGHT_INFECTION: Final = 95.0
WEIGHT_NOTES: Final = 84.0
"""Bedside findings read from the notes, which the scores used: said after the scores whose
Urgent floor fired, before those at Elevated, so the reader sees where they came from."""
WEIGHT_LACTATE: Final = 75.0
"""Plus the lactate bound reached (2 or 4 mmol/L)."""
WEIGHT_MODEL_ALERT: Final = 90.0
WEIGHT_MODEL_BELOW: Final = 5.0
WEIGHT_MODEL_PER_COMPONENT: Final = 40.0
"""Below the alert threshold: WEIGHT_MODEL_BELOW + this x the model component (0-1)."""
WEIGHT_FLOOR: Final = 80.0
WEIGHT_FLOOR_PER_RANK: Final = 3.0
"""A score whose floor fired: WEIGHT_FLOOR + this x the floor's priority rank."""
WEIGHT_SCORE: Final = 20.0
WEIGHT_SCORE_PER_SHARE: Final = 20.0
"""A non-zero score below its floors: WEIGHT_SCORE + this x min(1, score / lowest floor)."""
WEIGHT_SCORE_ZERO: Final = 1.0
WEIGHT_SCORE_ZERO_STEP: Final = 0.1
WEIGHT_TREND: Final = 60.0
WEIGHT_TREND_PER_BOUND: Final = 10.0
WEIGHT_TREND_MAX_BOUNDS: Final = 3.0
"""A trend: WEIGHT_TREND + this x min(WEIGHT_TREND_MAX_BOUNDS, change / its bound)."""


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


def clinical_component(values: Mapping[str, int], plan: BlendPlan) -> float:
    """Weighted sum over scores of min(1, score / saturation), 0-1."""
    total = 0.0
    for name, share, saturation in plan.shares:
        value = values.get(name, 0)
        total += share if value >= saturation else share * value / saturation
    return min(1.0, total)


def score_values(scores: ClinicalScores) -> dict[str, int]:
    """The four score totals keyed by name (`ScoreName` values)."""
    return {
        "qsofa": scores.qsofa.score,
        "sirs": scores.sirs.score,
        "news2": scores.news2.score,
        "sofa": scores.sofa.score,
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
    infection_with_organ_dysfunction: bool
    model_alert: bool


def infection_with_organ_dysfunction(
    infection: float | None, sofa: int, rule: InfectionRule
) -> bool:
    """Sepsis-3 at the bedside: infection at least as certain as the rule asks, with a SOFA
    score at or above its bound. An infection status not sent never meets it."""
    if not rule.enabled or infection is None:
        return False
    return infection >= rule.infection_at_least and sofa >= rule.sofa_at_least


_RANKS: Final[Mapping[Priority, int]] = {p: p.rank for p in Priority}


def blend(
    *,
    probability: float,
    scores: Mapping[str, int],
    shock: ShockFacts,
    infection: float | None,
    plan: BlendPlan,
    alert_threshold: float,
) -> BlendResult:
    """Risk score, priority and the rule that set it, following the config's plan.
    `infection`: the infection status sent or read from the notes (None: not known)."""
    m = model_component(probability, threshold=alert_threshold, maps_to=plan.threshold_maps_to)
    c = clinical_component(scores, plan)
    raw = plan.model_weight * m + plan.clinical_weight * c if plan.weighted else max(m, c)
    # Rounded before banding, so the reported score and its band always agree.
    blended = round(100.0 * min(1.0, max(0.0, raw)), 1)

    # Floors in reporting order: when several reach the final priority, the first one named.
    fired: list[tuple[Priority, int, str]] = []
    in_shock = septic_shock(shock, plan.shock)
    if in_shock:
        level = plan.shock.priority
        fired.append((level, _RANKS[level], RULE_SEPTIC_SHOCK))
    infected = infection_with_organ_dysfunction(infection, scores.get("sofa", 0), plan.infection)
    if infected:
        level = plan.infection.priority
        fired.append((level, _RANKS[level], RULE_INFECTION))
    for floor in plan.floors:
        if scores.get(floor.score, 0) >= floor.at_least:
            fired.append((floor.priority, floor.rank, floor.rule))
    model_alert = probability >= alert_threshold
    if plan.model_floor is not None and model_alert:
        fired.append((plan.model_floor, _RANKS[plan.model_floor], RULE_MODEL))

    priority = plan.bands.priority_for(blended)
    best = _RANKS[priority]
    rule = RULE_BAND
    for level, rank, name in fired:
        # A higher level wins; at the same level the first floor named stays, and a floor
        # that merely matches the band is reported rather than the band.
        if rank > best or (rank == best and rule == RULE_BAND):
            priority, best, rule = level, rank, name
    return BlendResult(
        risk_score=max(blended, plan.bands.lower_bound(priority)),
        blended_score=blended,
        model_component=m,
        clinical_component=c,
        priority=priority,
        priority_rule=rule,
        rules_fired=tuple(name for _, _, name in fired),
        septic_shock=in_shock,
        infection_with_organ_dysfunction=infected,
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
DRIVER_SCORE_ORDER: Final = (ScoreName.qsofa, ScoreName.news2, ScoreName.sirs, ScoreName.sofa)
"""The order score sentences are offered in (it breaks ties between equal weights)."""
_SCORE_TITLES: Final[Mapping[ScoreName, str]] = {
    ScoreName.qsofa: "qSOFA",
    ScoreName.sirs: "SIRS",
    ScoreName.news2: "NEWS2",
    ScoreName.sofa: "SOFA",
}

# Lactate: > 2 mmol/L is the Sepsis-3 shock criterion (Singer 2016); >= 4 mmol/L triggers
# 30 mL/kg crystalloid in the Surviving Sepsis Campaign hour-1 bundle (Levy MM et al., Crit Care
# Med 2018;46(6):997-1000).
LACTATE_HIGH: Final = 2.0
LACTATE_VERY_HIGH: Final = 4.0

# Changes over the model's look-back window worth naming: this project's choice of a clearly
# noticeable change per vital, not a published threshold. They only pick driver sentences and
# never set a priority.
TRENDS: Final[tuple[tuple[str, float, str], ...]] = (
    ("SBP", -20.0, "mmHg"),
    ("MAP", -10.0, "mmHg"),
    ("HR", 20.0, "beats/min"),
    ("Resp", 6.0, "breaths/min"),
    ("Temp", 1.0, "°C"),
    ("Lactate", 1.0, "mmol/L"),
    ("O2Sat", -4.0, "%"),
)
"""(variable, the change worth naming with its sign, unit)."""


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


def score_sentence(patient: NormalizedPatient, name: ScoreName, result: ScoreResult) -> str:
    """A score and its (up to 3) heaviest components, quoting the patient's latest values."""
    scored = sorted(
        ((pts, key) for key, pts in result.components.items() if pts), key=lambda item: -item[0]
    )
    said = []
    for _, key in scored[:3]:
        variable = _COMPONENT_VARIABLES.get(key)
        value = None if variable is None else patient.latest(variable)
        if variable is None or value is None:
            said.append(key.replace("_", " "))
        else:
            said.append(f"{_label(variable)} {_num(value)}")
    head = f"{_SCORE_TITLES[name]} {result.score}/{result.max_score}"
    return f"{head}: {', '.join(said)}" if said else head


def trend_sentence(name: str, change: float, unit: str, span: float) -> str:
    """A change over the look-back window in words."""
    verb = "rose" if change > 0 else "fell"
    return f"{_label(name)} {verb} {_num(abs(change))} {unit} over {_num(span)} h"


def window_trend(observations: Sequence[Observation]) -> tuple[float, float] | None:
    """(change, span in hours) from the oldest observation inside the model's look-back window
    to the newest one; None with fewer than two."""
    if len(observations) < 2:
        return None
    last = observations[-1]
    first = None
    for o in observations:
        if o.hours_ago < WINDOW_HOURS:
            first = o
            break
    if first is None or first is last:
        return None
    return last.value - first.value, first.hours_ago - last.hours_ago


def _trend_sentences(patient: NormalizedPatient) -> list[tuple[float, Callable[[], str]]]:
    out: list[tuple[float, Callable[[], str]]] = []
    series = patient.series
    for name, threshold, unit in TRENDS:
        trend = window_trend(series.get(name, ()))
        if trend is None:
            continue
        change, span = trend
        # Only a change in the worrying direction, at least as large as the bound.
        if span <= 0 or change * threshold <= 0 or abs(change) < abs(threshold):
            continue
        weight = WEIGHT_TREND + WEIGHT_TREND_PER_BOUND * min(
            WEIGHT_TREND_MAX_BOUNDS, abs(change) / abs(threshold)
        )
        out.append((weight, partial(trend_sentence, name, change, unit, span)))
    return out


def shock_sentence(shock: ShockFacts, rule: SepticShockRule) -> str:
    """The septic-shock criteria met, with the values that met them."""
    if shock.map_mmhg is not None and shock.map_mmhg < rule.map_below_mmhg:
        how = "estimated from SBP/DBP " if shock.map_estimated else ""
        circulation = f"MAP {_num(round(shock.map_mmhg))} mmHg {how}(< {_num(rule.map_below_mmhg)})"
    else:
        circulation = "vasopressors running"
    return (
        f"Septic shock criteria: {circulation} with lactate "
        f"{_num(shock.lactate or 0.0)} mmol/L (> {_num(rule.lactate_above_mmol_l)})"
    )


def lactate_bound(lactate: float) -> float:
    """The lactate bound reached (call only at LACTATE_HIGH or above)."""
    return LACTATE_VERY_HIGH if lactate >= LACTATE_VERY_HIGH else LACTATE_HIGH


def lactate_sentence(lactate: float, bound: float) -> str:
    """A raised lactate and the bound it reached."""
    return f"Lactate {_num(lactate)} mmol/L (>= {_num(bound)})"


def model_sentence(probability: float, alert_threshold: float, alert: bool) -> str:
    """The model's probability against the alert threshold."""
    comparison = "at or above" if alert else "below"
    return f"Model probability {_pct(probability)}, {comparison} the alert threshold " + _pct(
        alert_threshold
    )


def infection_sentence(infection: float, sofa: int, rule: InfectionRule) -> str:
    """Sepsis-3 met at the bedside, with the values that met it."""
    how = "confirmed" if infection >= 2 else "suspected"
    return (
        f"Sepsis-3 criteria: {how} infection with SOFA {sofa} (>= {rule.sofa_at_least}), "
        "organ dysfunction caused by infection"
    )


def notes_sentence(findings: Sequence[BedsideFinding]) -> str:
    """The bedside findings the notes gave, in words."""
    return "From the notes: " + ", ".join(f.text for f in findings)


def drivers(
    *,
    patient: NormalizedPatient,
    scores: ClinicalScores,
    result: BlendResult,
    probability: float,
    alert_threshold: float,
    shock: ShockFacts,
    plan: BlendPlan,
) -> list[str]:
    """3-5 short sentences naming what moved the assessment, most important first."""
    # (weight, sentence maker): only the sentences chosen are ever formatted.
    candidates: list[tuple[float, Callable[[], str]]] = []
    infection = patient.latest("Infection")
    if result.infection_with_organ_dysfunction and infection is not None:
        sofa = scores.sofa.score
        candidates.append(
            (WEIGHT_INFECTION, partial(infection_sentence, infection, sofa, plan.infection))
        )
    noted = [f for f in patient.findings if f.source == "note"]
    if noted:
        candidates.append((WEIGHT_NOTES, partial(notes_sentence, noted)))
    if result.septic_shock:
        candidates.append((WEIGHT_SHOCK, partial(shock_sentence, shock, plan.shock)))
    elif shock.lactate is not None and shock.lactate >= LACTATE_HIGH:
        bound = lactate_bound(shock.lactate)
        candidates.append((WEIGHT_LACTATE + bound, partial(lactate_sentence, shock.lactate, bound)))
    candidates.append(
        (
            WEIGHT_MODEL_ALERT
            if result.model_alert
            else WEIGHT_MODEL_BELOW + WEIGHT_MODEL_PER_COMPONENT * result.model_component,
            partial(model_sentence, probability, alert_threshold, result.model_alert),
        )
    )

    for order, name in enumerate(DRIVER_SCORE_ORDER):
        score: ScoreResult = getattr(scores, name.value)
        value = score.score
        fired_rank = -1
        lowest: int | None = None
        for floor in plan.floors:
            if floor.score == name:
                lowest = floor.at_least if lowest is None else min(lowest, floor.at_least)
                if value >= floor.at_least:
                    fired_rank = max(fired_rank, floor.rank)
        if fired_rank >= 0:
            weight = WEIGHT_FLOOR + WEIGHT_FLOOR_PER_RANK * fired_rank - order
        elif value > 0:
            ratio = value / (lowest if lowest is not None else score.max_score)
            weight = WEIGHT_SCORE + WEIGHT_SCORE_PER_SHARE * min(1.0, ratio) - order
        else:
            weight = WEIGHT_SCORE_ZERO - WEIGHT_SCORE_ZERO_STEP * order
        candidates.append((weight, partial(score_sentence, patient, name, score)))

    candidates.extend(_trend_sentences(patient))
    candidates.sort(key=lambda item: -item[0])
    chosen = [make for weight, make in candidates if weight >= WEIGHT_WORTH_SAYING][:MAX_DRIVERS]
    if len(chosen) < MIN_DRIVERS:
        chosen = [make for _, make in candidates][:MIN_DRIVERS]
    return [make() for make in chosen]
