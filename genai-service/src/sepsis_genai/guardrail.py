"""The clinical guardrail: deterministic floors on priority and risk that no LLM can lower.

Each rule of the config (`sepsis_genai.guardrail_config`) is checked against the patient's
latest values, its clinical scores, the red flags found in its notes and its trends. Every rule
that fires is reported with the value and the threshold it crossed; the assessment's priority
and risk score are then raised to the highest floors (`apply_floor`). History adjustments
(chronic hypertension, beta-blockers, antipyretics, ...) make named rules fire more readily and
add a note to the response saying so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sepsis_genai.guardrail_config import (
    GuardrailConfig,
    GuardrailConfigError,
    guardrail_public_view,
    load_guardrail_config,
    parse_guardrail_config,
)
from sepsis_genai.guardrail_rules import (
    AnyOfCondition,
    CombinedRule,
    Condition,
    NoteCondition,
    NoteGroupCondition,
    NoteRule,
    Rule,
    ScoreCondition,
    SingleRule,
    TrendRule,
    VariableCondition,
)
from sepsis_genai.trends import Trend
from sepsis_shared.assessment import Priority, max_priority
from sepsis_shared.notes import NoteFinding
from sepsis_shared.patient import NormalizedPatient
from sepsis_shared.scores import ClinicalScores, ScoreResult
from sepsis_shared.variables import VARIABLES

__all__ = [
    "FiredRule",
    "GuardrailConfig",
    "GuardrailConfigError",
    "GuardrailResult",
    "apply_floor",
    "evaluate_guardrail",
    "guardrail_public_view",
    "load_guardrail_config",
    "parse_guardrail_config",
]


@dataclass(frozen=True, slots=True)
class FiredRule:
    """One rule that fired, with what it saw and the threshold it crossed."""

    rule_id: str
    description: str
    priority: Priority
    """The priority floor this rule sets."""
    risk_floor: int
    value: float | str | None
    threshold: float | str | None
    wording: str
    kind: str | None = None
    adjusted_by: str | None = None
    """The history adjustment that changed this rule's threshold, if one did."""
    source: str | None = None

    @property
    def severity(self) -> Priority:
        """Another name for `priority`."""
        return self.priority


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """The floors the guardrail sets and why."""

    priority_floor: Priority
    risk_floor: int
    fired: tuple[FiredRule, ...]
    """Every rule that fired, highest priority first, config order within a priority."""
    config_version: str
    adjustments: tuple[str, ...] = ()
    """Notes of the history adjustments that applied to this patient."""

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The ids of the rules that fired (safe to log)."""
        return tuple(f.rule_id for f in self.fired)


def apply_floor(
    priority: Priority, risk_score: int, result: GuardrailResult
) -> tuple[Priority, int, bool]:
    """Raise an assessment to the guardrail's floors; the flag says whether anything rose."""
    raised_priority = max_priority(priority, result.priority_floor)
    raised_risk = max(risk_score, result.risk_floor)
    return raised_priority, raised_risk, (raised_priority != priority or raised_risk != risk_score)


# --------------------------------------------------------------------------------------------
# Evaluation

_Key = tuple[str, str]  # (rule id, "threshold" | "variable:X" | "score:Y" | "change" | "slope")


@dataclass(frozen=True, slots=True)
class _Override:
    value: float
    adjustment: str


class _Inputs:
    __slots__ = ("flags", "groups", "overrides", "patient", "scores", "trends")

    def __init__(
        self,
        patient: NormalizedPatient,
        scores: ClinicalScores,
        flags: frozenset[str],
        trends: Mapping[str, Trend],
        overrides: Mapping[_Key, list[_Override]],
        groups: Mapping[str, list[str]],
    ) -> None:
        self.patient = patient
        self.scores = scores
        self.flags = flags
        self.trends = trends
        self.overrides = overrides
        self.groups = groups

    def latest(self, name: str) -> tuple[float | None, bool]:
        """The newest value of a variable, and whether it was estimated.

        Without a measured MAP, it is estimated as (SBP + 2 x DBP) / 3 from the latest
        SBP and DBP, as the clinical scores do.
        """
        value = self.patient.latest(name)
        if value is not None or name != "MAP":
            return value, False
        sbp, dbp = self.patient.latest("SBP"), self.patient.latest("DBP")
        if sbp is None or dbp is None:
            return None, False
        return (sbp + 2.0 * dbp) / 3.0, True

    def threshold(self, key: _Key, op: str, default: float) -> tuple[float, str | None]:
        """The threshold in force: the most sensitive override, else the configured one."""
        found = self.overrides.get(key)
        if not found:
            return default, None
        low = op in ("<", "<=")
        best = max(found, key=lambda o: o.value) if low else min(found, key=lambda o: o.value)
        return best.value, best.adjustment


def _compare(value: float, op: str, threshold: float) -> bool:
    if op == "<":
        return value < threshold
    if op == "<=":
        return value <= threshold
    if op == ">":
        return value > threshold
    return value >= threshold


def _num(x: float) -> str:
    return f"{x:.4g}" if x != int(x) else str(int(x))


_ESTIMATED: Final = " (estimated as (SBP + 2 x DBP) / 3)"


def _unit(variable: str) -> str:
    spec = VARIABLES.get(variable)
    return f" {spec.unit}" if spec is not None and spec.unit and spec.unit != "0/1" else ""


def _score_value(result: ScoreResult, component: str | None) -> float | None:
    if component is None:
        return float(result.score)
    if component == "max":
        points = [v for v in result.components.values() if v is not None]
        return float(max(points)) if points else None
    value = result.components.get(component)
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class _Seen:
    """A condition that holds: what was seen, the threshold in words, any adjustment."""

    value: str
    threshold: str
    adjusted_by: str | None = None


def _check(c: Condition, rule_id: str, inp: _Inputs) -> _Seen | None:
    if isinstance(c, VariableCondition):
        value, estimated = inp.latest(c.variable)
        if value is None:
            return None
        thr, adj = inp.threshold((rule_id, "variable:" + c.variable), c.op, c.threshold)
        if not _compare(value, c.op, thr):
            return None
        unit = _unit(c.variable)
        return _Seen(
            f"{c.variable} {_num(round(value, 1))}{unit}{_ESTIMATED if estimated else ''}",
            f"{c.variable} {c.op} {_num(thr)}{unit}",
            adj,
        )
    if isinstance(c, ScoreCondition):
        result: ScoreResult = getattr(inp.scores, c.score)
        score = _score_value(result, c.component)
        if score is None:
            return None
        thr, adj = inp.threshold((rule_id, "score:" + c.score), c.op, c.threshold)
        if not _compare(score, c.op, thr):
            return None
        name = result.name if c.component is None else f"{result.name} {c.component}"
        return _Seen(f"{name} {_num(score)}", f"{name} {c.op} {_num(thr)}", adj)
    if isinstance(c, NoteCondition):
        return _Seen(c.note, f"note: {c.note}") if c.note in inp.flags else None
    if isinstance(c, NoteGroupCondition):
        group = inp.groups.get(c.note_group, [])
        for flag in group:
            if flag in inp.flags:
                return _Seen(flag, f"notes: {c.note_group} ({' or '.join(group)})")
        return None
    return _check_any(c, rule_id, inp)


def _check_any(c: AnyOfCondition, rule_id: str, inp: _Inputs) -> _Seen | None:
    for option in c.any_of:
        seen = _check(option, rule_id, inp)
        if seen is not None:
            words = " or ".join(_describe(o) for o in c.any_of)
            return _Seen(seen.value, f"({words})", seen.adjusted_by)
    return None


def _describe(c: Condition) -> str:
    if isinstance(c, VariableCondition):
        return f"{c.variable} {c.op} {_num(c.threshold)}{_unit(c.variable)}"
    if isinstance(c, ScoreCondition):
        name = c.score if c.component is None else f"{c.score} {c.component}"
        return f"{name} {c.op} {_num(c.threshold)}"
    if isinstance(c, NoteCondition):
        return f"note: {c.note}"
    if isinstance(c, NoteGroupCondition):
        return f"notes: {c.note_group}"
    return "(" + " or ".join(_describe(o) for o in c.any_of) + ")"


def _check_all(conditions: Sequence[Condition], rule_id: str, inp: _Inputs) -> list[_Seen] | None:
    seen: list[_Seen] = []
    for c in conditions:
        hit = _check(c, rule_id, inp)
        if hit is None:
            return None
        seen.append(hit)
    return seen


def _fired(
    rule: Rule,
    value: float | str | None,
    threshold: float | str | None,
    adjusted_by: str | None,
) -> FiredRule:
    return FiredRule(
        rule_id=rule.id,
        description=rule.description,
        priority=rule.priority,
        risk_floor=rule.risk_floor,
        value=value,
        threshold=threshold,
        wording=rule.wording,
        kind=rule.kind,
        adjusted_by=adjusted_by,
        source=rule.source,
    )


def _from_seen(rule: Rule, seen: Sequence[_Seen]) -> FiredRule:
    adjusted = next((s.adjusted_by for s in seen if s.adjusted_by is not None), None)
    return _fired(
        rule,
        "; ".join(dict.fromkeys(s.value for s in seen)),  # a band names its value once
        " and ".join(dict.fromkeys(s.threshold for s in seen)),
        adjusted,
    )


def _evaluate_single(rule: SingleRule, inp: _Inputs) -> FiredRule | None:
    value, estimated = inp.latest(rule.variable)
    if value is None:
        return None
    thr, adj = inp.threshold((rule.id, "variable:" + rule.variable), rule.op, rule.threshold)
    if not _compare(value, rule.op, thr):
        return None
    shown: float | str = f"{_num(round(value, 1))}{_ESTIMATED}" if estimated else value
    return _fired(rule, shown, thr, adj)


def _evaluate_note(rule: NoteRule, inp: _Inputs) -> FiredRule | None:
    if rule.flag not in inp.flags:
        return None
    extra = _check_all(rule.requires, rule.id, inp)
    if extra is None:
        return None
    return _from_seen(rule, [_Seen(rule.flag, f"note: {rule.flag}"), *extra])


def _evaluate_trend(rule: TrendRule, inp: _Inputs) -> FiredRule | None:
    trend = inp.trends.get(rule.variable)
    if trend is None or trend.n < rule.min_points:
        return None
    extra = _check_all(rule.requires, rule.id, inp)
    if extra is None:
        return None
    hit = _trend_hit(rule, trend, inp)
    if hit is None or not extra:
        return hit
    value, threshold, adjusted = hit.value, hit.threshold, hit.adjusted_by
    return _fired(
        rule,
        "; ".join([str(value), *(s.value for s in extra)]),
        " and ".join([str(threshold), *(s.threshold for s in extra)]),
        adjusted or next((s.adjusted_by for s in extra if s.adjusted_by), None),
    )


def _trend_hit(rule: TrendRule, trend: Trend, inp: _Inputs) -> FiredRule | None:
    sign = 1.0 if rule.direction == "rising" else -1.0
    unit = _unit(rule.variable)
    verb = "rise" if sign > 0 else "fall"
    span = _num(round(trend.hours_span, 1))
    if rule.change is not None:
        need, adj = inp.threshold((rule.id, "change"), ">=", rule.change)
        if sign * trend.change >= need:
            return _fired(
                rule,
                f"{_num(trend.first)} -> {_num(trend.last)}{unit} "
                f"({trend.change:+.4g} over {span} h)",
                f"{verb} of {_num(need)}{unit} or more",
                adj,
            )
    slope = trend.slope_per_hour
    if rule.slope_per_hour is not None and slope is not None and trend.hours_span >= rule.min_hours:
        need, adj = inp.threshold((rule.id, "slope"), ">=", rule.slope_per_hour)
        if sign * slope >= need:
            return _fired(
                rule,
                f"{slope:+.3g}{unit} per hour over {span} h",
                f"{verb} of {_num(need)}{unit} per hour or faster",
                adj,
            )
    return None


def _evaluate(rule: Rule, inp: _Inputs) -> FiredRule | None:
    if isinstance(rule, SingleRule):
        return _evaluate_single(rule, inp)
    if isinstance(rule, CombinedRule):
        seen = _check_all(rule.all_of, rule.id, inp)
        return None if seen is None else _from_seen(rule, seen)
    if isinstance(rule, NoteRule):
        return _evaluate_note(rule, inp)
    return _evaluate_trend(rule, inp)


_NO_OVERRIDES: Final[Mapping[_Key, list[_Override]]] = {}


def _active_adjustments(
    config: GuardrailConfig, patient: NormalizedPatient
) -> tuple[Mapping[_Key, list[_Override]], tuple[str, ...]]:
    if not config.adjustments:
        return _NO_OVERRIDES, ()
    history = patient.history
    overrides: dict[_Key, list[_Override]] = {}
    notes: list[str] = []
    for adj in config.adjustments:
        if adj.history == "conditions":
            entries: Sequence[str] = history.conditions
        elif adj.history == "medications":
            entries = history.medications
        else:
            entries = [*history.conditions, *history.medications]
        if not entries:
            continue
        term = adj.match(entries)
        if term is None:
            continue
        notes.append(f"{adj.note} (history: {term})")
        for mod in adj.modifies:
            rule = config.rule(mod.rule)
            changes: list[tuple[str, float | None]]
            if isinstance(rule, TrendRule):
                changes = [("change", mod.change), ("slope", mod.slope_per_hour)]
            elif isinstance(rule, SingleRule):
                changes = [("variable:" + rule.variable, mod.threshold)]
            elif mod.variable is not None:
                changes = [("variable:" + mod.variable, mod.threshold)]
            else:
                changes = [(f"score:{mod.score}", mod.threshold)]
            for key, value in changes:
                if value is not None:
                    overrides.setdefault((mod.rule, key), []).append(_Override(value, adj.id))
    return overrides, tuple(notes)


def evaluate_guardrail(
    config: GuardrailConfig,
    *,
    patient: NormalizedPatient,
    scores: ClinicalScores,
    findings: Sequence[NoteFinding],
    trends: Mapping[str, Trend],
) -> GuardrailResult:
    """Check every rule of the config; the floors are the highest of those that fired."""
    overrides, notes = _active_adjustments(config, patient)
    inputs = _Inputs(
        patient,
        scores,
        frozenset(f.flag for f in findings),
        trends,
        overrides,
        config.note_groups,
    )
    fired = [hit for rule in config.rules if (hit := _evaluate(rule, inputs)) is not None]
    fired.sort(key=lambda f: -f.priority.rank)  # stable: config order within a priority
    return GuardrailResult(
        priority_floor=max_priority(f.priority for f in fired),
        risk_floor=max((f.risk_floor for f in fired), default=0),
        fired=tuple(fired),
        config_version=config.version,
        adjustments=notes,
    )
