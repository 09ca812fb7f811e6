"""The guardrail's rule file: the document, its cross-checks, loading and its public view.

A guardrail config is a versioned JSON or YAML document::

    version: "2026.02.1"              # required; reported with every assessment
    note_groups:                      # named sets of note flags, "any of" semantics
      infection: [suspected_infection, confirmed_infection]
    rules:                            # each sets a floor on priority and risk when it fires
      - id: map_low                   # unique snake_case id
        kind: single                  # single | combined | note | trend
        variable: MAP                 # canonical variable name (sepsis_shared.variables)
        op: "<"                       # <, <=, >, >=
        threshold: 65
        priority: Urgent              # the priority floor
        risk_floor: 65                # 0-100
        description: Mean arterial pressure below 65 mmHg
        wording: Hypotension (MAP below target) ...
        source: Surviving Sepsis Campaign 2021   # optional citation
    adjustments:                      # history-aware changes
      - id: chronic_hypertension
        history: conditions           # conditions | medications
        terms: [hypertension, htn]    # word-start, case-insensitive
        exclude: [pulmonary hypertension]
        note: Chronic hypertension ...
        modifies:
          - {rule: map_low, threshold: 70}

The rule kinds and their conditions are described in `sepsis_genai.guardrail_rules`.

An adjustment may only make its rules fire more readily (a higher threshold under `<`, a lower
one under `>`, a smaller trend change or slope): the guardrail is a safety floor and a patient's
history never loosens it. Everything is checked when the file is loaded; a problem raises
`GuardrailConfigError` naming the rule or adjustment and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from sepsis_genai.guardrail_rules import (
    CONDITION_KEYS,
    ID_PATTERN,
    Adjustment,
    AnyOfCondition,
    CombinedRule,
    Condition,
    Modification,
    NoteCondition,
    NoteGroupCondition,
    NoteRule,
    Operator,
    Rule,
    ScoreCondition,
    ScoreName,
    SingleRule,
    StrictModel,
    TrendRule,
    VariableCondition,
    rule_conditions,
    score_components,
)
from sepsis_shared.assessment import Priority
from sepsis_shared.intake import InputLimits
from sepsis_shared.note_flags import FLAGS

__all__ = [
    "DEFAULT_CONFIG_RESOURCE",
    "MAX_CONFIG_BYTES",
    "Adjustment",
    "AnyOfCondition",
    "CombinedRule",
    "Condition",
    "GuardrailConfig",
    "GuardrailConfigError",
    "Modification",
    "NoteCondition",
    "NoteGroupCondition",
    "NoteRule",
    "Operator",
    "RiskBands",
    "Rule",
    "ScoreCondition",
    "ScoreName",
    "SingleRule",
    "TrendRule",
    "VariableCondition",
    "guardrail_public_view",
    "load_guardrail_config",
    "parse_guardrail_config",
    "score_components",
]

DEFAULT_CONFIG_RESOURCE: Final = "guardrail.yaml"
MAX_CONFIG_BYTES: Final = 1_000_000


class GuardrailConfigError(ValueError):
    """A guardrail config that cannot be used; the message names each rule and field at fault."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems: tuple[str, ...] = tuple(problems) or (message,)


# --------------------------------------------------------------------------------------------
# The config


class RiskBands(StrictModel):
    """Lower bounds of the priority bands on the 0-100 risk score (as the ML pathway's)."""

    critical: int = Field(ge=1, le=100)
    urgent: int = Field(ge=1, le=100)
    elevated: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> RiskBands:
        if not self.critical > self.urgent > self.elevated:
            raise ValueError("bands must satisfy critical > urgent > elevated")
        return self

    def band(self, priority: Priority) -> tuple[int, int]:
        """The [low, high) risk range of a priority."""
        edges = {
            Priority.CRITICAL: (self.critical, 101),
            Priority.URGENT: (self.urgent, self.critical),
            Priority.ELEVATED: (self.elevated, self.urgent),
            Priority.STANDARD: (0, self.elevated),
        }
        return edges[priority]


class GuardrailConfig(StrictModel):
    """A validated guardrail config (see the module docstring for the format)."""

    version: str = Field(min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=2000)
    risk_bands: RiskBands | None = Field(
        default=None,
        description="When given, every rule's risk floor must lie in its priority's band.",
    )
    note_groups: dict[str, list[str]] = Field(default_factory=dict)
    rules: list[Rule] = Field(min_length=1)
    adjustments: list[Adjustment] = Field(default_factory=list)
    inputs: InputLimits = Field(
        default=InputLimits(),
        description="How old a vital sign or a lab result may be and still count (the same "
        "rule as the ML pathway's config).",
    )

    @field_validator("note_groups")
    @classmethod
    def _check_groups(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, flags in groups.items():
            if not re.match(ID_PATTERN, name):
                raise ValueError(f"note group name {name!r} must be snake_case")
            if not flags:
                raise ValueError(f"note group {name!r} is empty")
            for flag in flags:
                if flag not in FLAGS:
                    raise ValueError(f"note group {name!r}: unknown note flag {flag!r}")
        return groups

    @model_validator(mode="after")
    def _cross_references(self) -> GuardrailConfig:
        problems: list[str] = []
        by_id: dict[str, Rule] = {}
        for i, rule in enumerate(self.rules):
            where = f"rule {rule.id!r} (rules[{i}])"
            if rule.id in by_id:
                problems.append(f"{where}, field 'id': duplicate rule id")
            by_id[rule.id] = rule
            if self.risk_bands is not None:
                low, high = self.risk_bands.band(rule.priority)
                if not low <= rule.risk_floor < high:
                    problems.append(
                        f"{where}, field 'risk_floor': {rule.risk_floor} lies outside the "
                        f"{rule.priority.value} band {low}-{min(high - 1, 100)} of `risk_bands`"
                    )
            for c in rule_conditions(rule):
                if isinstance(c, NoteGroupCondition) and c.note_group not in self.note_groups:
                    problems.append(
                        f"{where}, field 'note_group': unknown note group {c.note_group!r}"
                    )
        seen: set[str] = set()
        for i, adj in enumerate(self.adjustments):
            where = f"adjustment {adj.id!r} (adjustments[{i}])"
            if adj.id in seen:
                problems.append(f"{where}, field 'id': duplicate adjustment id")
            seen.add(adj.id)
            for j, mod in enumerate(adj.modifies):
                field = f"modifies[{j}]"
                target = by_id.get(mod.rule)
                if target is None:
                    problems.append(f"{where}, field '{field}.rule': unknown rule {mod.rule!r}")
                    continue
                problems.extend(f"{where}, field '{field}': {p}" for p in _check_mod(mod, target))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def rule(self, rule_id: str) -> Rule | None:
        """The rule with this id, if any."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        return None


def _more_sensitive(op: str, old: float, new: float) -> bool:
    return new >= old if op in ("<", "<=") else new <= old


def _check_mod(mod: Modification, rule: Rule) -> list[str]:
    """What is wrong with a modification of this rule (empty when it is sound)."""
    trend_fields = mod.change is not None or mod.slope_per_hour is not None
    if isinstance(rule, TrendRule):
        problems = []
        if mod.threshold is not None or mod.variable is not None or mod.score is not None:
            problems.append("a trend rule takes only `change` and `slope_per_hour`")
        for name, new, old in (
            ("change", mod.change, rule.change),
            ("slope_per_hour", mod.slope_per_hour, rule.slope_per_hour),
        ):
            if new is not None and (old is None or new > old):
                problems.append(f"`{name}` must tighten the rule's own (at most {old})")
        if not trend_fields:
            problems.append("nothing to change: give `change` or `slope_per_hour`")
        return problems
    if trend_fields:
        return [f"`change`/`slope_per_hour` apply to trend rules only ({rule.id} is {rule.kind})"]
    if mod.threshold is None:
        return ["`threshold` is required"]
    if isinstance(rule, SingleRule):
        if mod.score is not None or (mod.variable is not None and mod.variable != rule.variable):
            return [f"rule {rule.id!r} compares {rule.variable}"]
        if not _more_sensitive(rule.op, rule.threshold, mod.threshold):
            return [_loosens(rule.op, rule.threshold)]
        return []
    if (mod.variable is None) == (mod.score is None):
        return ["give exactly one of `variable` or `score` to pick the conditions to change"]
    targets = [
        c
        for c in rule_conditions(rule)
        if (isinstance(c, VariableCondition) and c.variable == mod.variable)
        or (isinstance(c, ScoreCondition) and c.score == mod.score and mod.variable is None)
    ]
    if not targets:
        return [f"rule {rule.id!r} has no condition on {mod.variable or mod.score}"]
    return [
        _loosens(c.op, c.threshold)
        for c in targets
        if isinstance(c, VariableCondition | ScoreCondition)
        and not _more_sensitive(c.op, c.threshold, mod.threshold)
    ]


def _loosens(op: str, old: float) -> str:
    way = "at least" if op in ("<", "<=") else "at most"
    return f"an adjustment may only make a rule fire more readily: threshold must be {way} {old:g}"


# --------------------------------------------------------------------------------------------
# Loading


def parse_guardrail_config(data: object, *, source: str = "guardrail config") -> GuardrailConfig:
    """Validate an already decoded config document."""
    if not isinstance(data, Mapping):
        raise GuardrailConfigError(f"{source}: the document must be a mapping of fields")
    try:
        return GuardrailConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_describe_error(err, data) for err in exc.errors()]
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise GuardrailConfigError(f"{source}: {shown}{more}", problems) from None


def load_guardrail_config(path: Path | None = None) -> GuardrailConfig:
    """Read and validate a config: JSON or YAML by suffix; the packaged one by default."""
    if path is None:
        packaged = resources.files("sepsis_genai").joinpath(DEFAULT_CONFIG_RESOURCE)
        data = _decode(packaged.read_text("utf-8"), "yaml", DEFAULT_CONFIG_RESOURCE)
        return parse_guardrail_config(data, source=DEFAULT_CONFIG_RESOURCE)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise GuardrailConfigError(f"{path.name}: use a .json, .yaml or .yml file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GuardrailConfigError(f"{path.name}: cannot read the file ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise GuardrailConfigError(f"{path.name}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GuardrailConfigError(f"{path.name}: not UTF-8 text") from None
    data = _decode(text, "json" if suffix == ".json" else "yaml", path.name)
    return parse_guardrail_config(data, source=path.name)


def _decode(text: str, fmt: str, name: str) -> object:
    try:
        if fmt == "json":
            return json.loads(text)
        # safe_load builds plain data only (no Python objects)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        where = ""
        if isinstance(exc, json.JSONDecodeError):
            where = f" at line {exc.lineno}"
        elif isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            where = f" at line {exc.problem_mark.line + 1}"
            if exc.problem:
                where += f" ({exc.problem})"
        raise GuardrailConfigError(f"{name}: not valid {fmt.upper()}{where}") from None


# Union tags pydantic inserts into error locations after a list index
_TAGGED_LISTS: Final = frozenset({"rules", "all_of", "any_of", "requires"})
_TAGS: Final = frozenset({"single", "combined", "note", "trend", *CONDITION_KEYS})


def _describe_error(err: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    loc = list(err.get("loc", ()))
    parts: list[str] = []
    i = 0
    while i < len(loc):
        item = loc[i]
        if isinstance(item, int):
            parts.append(f"[{item}]")
            prev = loc[i - 1] if i > 0 else None
            nxt = loc[i + 1] if i + 1 < len(loc) else None
            if prev in _TAGGED_LISTS and nxt in _TAGS:
                i += 1  # skip the union tag
        else:
            parts.append(f".{item}" if parts else str(item))
        i += 1
    owner = ""
    field = "".join(parts)
    if len(loc) >= 2 and loc[0] in ("rules", "adjustments") and isinstance(loc[1], int):
        items = data.get(loc[0])
        entry = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        ident = entry.get("id") if isinstance(entry, Mapping) else None
        noun = "rule" if loc[0] == "rules" else "adjustment"
        owner = f"{noun} {ident!r} ({loc[0]}[{loc[1]}])" if ident else f"{loc[0]}[{loc[1]}]"
        field = "".join(parts[2:]).lstrip(".")
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    if kind == "extra_forbidden":
        msg = "unknown field"
    elif kind == "missing":
        msg = "required field missing"
    elif kind == "union_tag_not_found" and field == "" and owner:
        msg = "`kind` is required (single, combined, note or trend)"
    elif kind == "union_tag_invalid":
        given = err.get("input", {}).get("kind")
        msg = f"unknown rule kind {given!r} (single, combined, note or trend)"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    if owner and field:
        return f"{owner}, field '{field}': {msg}"
    if owner:
        return f"{owner}: {msg}"
    if field:
        return f"field '{field}': {msg}"
    return msg


# --------------------------------------------------------------------------------------------
# Public view


def guardrail_public_view(config: GuardrailConfig) -> dict[str, Any]:
    """The active config as served by GET /genai-guardrail/thresholds."""
    view = config.model_dump(mode="json", exclude_none=True)
    view["note_flags"] = {flag: spec.label for flag, spec in FLAGS.items()}
    view["semantics"] = {
        "single": "fires when the variable's latest value meets `op threshold`",
        "combined": "fires when every condition of `all_of` holds",
        "note": "fires when the note flag is found in the notes (and `requires` holds)",
        "trend": "fires when the variable moves by `change` from first to last value, or its "
        "least-squares slope reaches `slope_per_hour` over at least `min_hours`",
        "adjustments": "apply when the patient history mentions a term; they only ever make "
        "rules fire more readily",
        "floors": "the assessment's priority and risk score are raised to the highest floor "
        "of the rules that fired, never lowered",
    }
    return view
