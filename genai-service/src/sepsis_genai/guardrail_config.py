"""The guardrail's rule file: schema, validation, loading and its public view.

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

Rule kinds: `single` compares a variable's latest value; `combined` needs every condition of
`all_of` (conditions: `{variable, op, threshold}`, `{score: qsofa|sirs|news2|sofa, op,
threshold}` with an optional `component` (a component name, or `max` for the highest one),
`{note: flag}`, `{note_group: name}`, `{any_of: [conditions]}`); `note` fires on a note flag,
with optional extra `requires` conditions; `trend` fires on a variable rising or falling by at
least `change` from the first to the last value, or at least `slope_per_hour` over a window of
at least `min_hours`.

An adjustment may only make its rules fire more readily (a higher threshold under `<`, a lower
one under `>`, a smaller trend change or slope): the guardrail is a safety floor and a patient's
history never loosens it. Everything is checked when the file is loaded; a problem raises
`GuardrailConfigError` naming the rule or adjustment and the field.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from sepsis_genai.notes import FLAGS
from sepsis_shared.assessment import Priority
from sepsis_shared.patient import NormalizedPatient
from sepsis_shared.scores import clinical_scores
from sepsis_shared.variables import SERIES_VARIABLES

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

Operator = Literal["<", "<=", ">", ">="]
ScoreName = Literal["qsofa", "sirs", "news2", "sofa"]
RuleKind = Literal["single", "combined", "note", "trend"]

_ID_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"


class GuardrailConfigError(ValueError):
    """A guardrail config that cannot be used; the message names each rule and field at fault."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems: tuple[str, ...] = tuple(problems) or (message,)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _known_variable(name: str) -> str:
    if name not in SERIES_VARIABLES:
        raise ValueError(f"unknown variable {name!r} (use a canonical name, e.g. MAP, Lactate)")
    return name


def _known_flag(flag: str) -> str:
    if flag not in FLAGS:
        raise ValueError(f"unknown note flag {flag!r} (known: {', '.join(FLAGS)})")
    return flag


@functools.cache
def score_components() -> Mapping[str, frozenset[str]]:
    """The component names of each score, as the shared scoring functions report them."""
    scores = clinical_scores(NormalizedPatient())
    return {
        name: frozenset(getattr(scores, name).components)
        for name in ("qsofa", "sirs", "news2", "sofa")
    }


# --------------------------------------------------------------------------------------------
# Conditions


class VariableCondition(_Model):
    """The latest value of a variable compared with a threshold."""

    variable: str
    op: Operator
    threshold: float

    _check_variable = field_validator("variable")(_known_variable)


class ScoreCondition(_Model):
    """A clinical score (or one of its components) compared with a threshold."""

    score: ScoreName
    component: str | None = Field(
        default=None, description="A component name, or `max` for the highest component."
    )
    op: Operator
    threshold: float

    @model_validator(mode="after")
    def _check_component(self) -> ScoreCondition:
        if self.component is not None and self.component != "max":
            known = score_components()[self.score]
            if self.component not in known:
                raise ValueError(
                    f"unknown {self.score} component {self.component!r} "
                    f"(known: max, {', '.join(sorted(known))})"
                )
        return self


class NoteCondition(_Model):
    """A note flag is present."""

    note: str

    _check_note = field_validator("note")(_known_flag)


class NoteGroupCondition(_Model):
    """Any flag of a named group (`note_groups`) is present."""

    note_group: str


class AnyOfCondition(_Model):
    """At least one of the conditions holds."""

    any_of: list[Condition] = Field(min_length=2)


_CONDITION_KEYS: Final = ("variable", "score", "note_group", "note", "any_of")


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, Mapping):
        for key in _CONDITION_KEYS:
            if key in value:
                return key
        return None
    for key, model in _CONDITION_MODELS.items():
        if isinstance(value, model):
            return key
    return None


Condition = Annotated[
    Annotated[VariableCondition, Tag("variable")]
    | Annotated[ScoreCondition, Tag("score")]
    | Annotated[NoteGroupCondition, Tag("note_group")]
    | Annotated[NoteCondition, Tag("note")]
    | Annotated[AnyOfCondition, Tag("any_of")],
    Discriminator(
        _condition_tag,
        custom_error_type="unknown_condition",
        custom_error_message="a condition needs one of the keys: " + ", ".join(_CONDITION_KEYS),
    ),
]

_CONDITION_MODELS: Final[Mapping[str, type[_Model]]] = {
    "variable": VariableCondition,
    "score": ScoreCondition,
    "note_group": NoteGroupCondition,
    "note": NoteCondition,
    "any_of": AnyOfCondition,
}
AnyOfCondition.model_rebuild()


def iter_conditions(conditions: Sequence[Condition]) -> Iterator[Condition]:
    """Every condition, nested ones included, depth first."""
    for c in conditions:
        yield c
        if isinstance(c, AnyOfCondition):
            yield from iter_conditions(c.any_of)


# --------------------------------------------------------------------------------------------
# Rules


class _RuleBase(_Model):
    id: str = Field(pattern=_ID_PATTERN)
    description: str = Field(min_length=1, max_length=300)
    priority: Priority = Field(description="The priority floor when the rule fires.")
    risk_floor: int = Field(ge=0, le=100, description="The risk score floor when it fires.")
    wording: str = Field(min_length=1, max_length=600, description="What the clinician reads.")
    source: str | None = Field(default=None, max_length=300, description="Citation.")


class SingleRule(_RuleBase):
    """A variable's latest value against a threshold."""

    kind: Literal["single"]
    variable: str
    op: Operator
    threshold: float

    _check_variable = field_validator("variable")(_known_variable)


class CombinedRule(_RuleBase):
    """Every condition must hold."""

    kind: Literal["combined"]
    all_of: list[Condition] = Field(min_length=1)


class NoteRule(_RuleBase):
    """A note flag is present (and the optional extra conditions hold)."""

    kind: Literal["note"]
    flag: str
    requires: list[Condition] = Field(default_factory=list)

    _check_flag = field_validator("flag")(_known_flag)


class TrendRule(_RuleBase):
    """A variable rising or falling over the window."""

    kind: Literal["trend"]
    variable: str
    direction: Literal["rising", "falling"]
    change: float | None = Field(
        default=None, gt=0, description="Fires when last - first moves this much the given way."
    )
    slope_per_hour: float | None = Field(
        default=None, gt=0, description="Fires when the least-squares slope is this steep."
    )
    min_points: int = Field(default=2, ge=2, le=1000)
    min_hours: float = Field(
        default=1.0, ge=0, description="The slope criterion needs a window at least this long."
    )
    requires: list[Condition] = Field(default_factory=list)

    _check_variable = field_validator("variable")(_known_variable)

    @model_validator(mode="after")
    def _needs_a_criterion(self) -> TrendRule:
        if self.change is None and self.slope_per_hour is None:
            raise ValueError("a trend rule needs `change`, `slope_per_hour` or both")
        return self


Rule = Annotated[SingleRule | CombinedRule | NoteRule | TrendRule, Field(discriminator="kind")]


def rule_conditions(rule: Rule) -> list[Condition]:
    """The conditions of a rule (nested ones included); empty for single and trend rules."""
    if isinstance(rule, CombinedRule):
        return list(iter_conditions(rule.all_of))
    if isinstance(rule, NoteRule | TrendRule):
        return list(iter_conditions(rule.requires))
    return []


# --------------------------------------------------------------------------------------------
# History adjustments


class Modification(_Model):
    """A new threshold for one rule while an adjustment applies.

    For a single rule, `threshold` replaces the rule's threshold. For a combined or note rule,
    `variable` or `score` picks the conditions whose `threshold` changes. For a trend rule,
    `change` and/or `slope_per_hour` replace the rule's.
    """

    rule: str
    variable: str | None = None
    score: ScoreName | None = None
    threshold: float | None = None
    change: float | None = Field(default=None, gt=0)
    slope_per_hour: float | None = Field(default=None, gt=0)

    @field_validator("variable")
    @classmethod
    def _check_variable(cls, v: str | None) -> str | None:
        return None if v is None else _known_variable(v)


class Adjustment(_Model):
    """Rules made more sensitive when the history mentions one of the terms."""

    id: str = Field(pattern=_ID_PATTERN)
    description: str = Field(min_length=1, max_length=300)
    history: Literal["conditions", "medications", "any"] = Field(
        description="Which history list the terms are looked for in (`any`: both)."
    )
    terms: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)
    note: str = Field(min_length=1, max_length=600, description="Added to the response.")
    modifies: list[Modification] = Field(default_factory=list)
    source: str | None = Field(default=None, max_length=300)

    _terms_rx: re.Pattern[str] = PrivateAttr()
    _exclude_rx: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("terms", "exclude")
    @classmethod
    def _check_terms(cls, terms: list[str]) -> list[str]:
        for term in terms:
            if not term.strip() or len(term) > 100:
                raise ValueError("terms must be non-empty text of at most 100 characters")
        return terms

    def model_post_init(self, _context: Any, /) -> None:
        self._terms_rx = _term_regex(self.terms)
        self._exclude_rx = _term_regex(self.exclude) if self.exclude else None

    def match(self, entries: Sequence[str]) -> str | None:
        """The configured term that one of the history entries mentions, if any."""
        for entry in entries:
            text = entry if self._exclude_rx is None else self._exclude_rx.sub(" ", entry)
            m = self._terms_rx.search(text)
            if m is not None:
                return _term_for(self.terms, m.group(0))
        return None


def _term_regex(terms: Sequence[str]) -> re.Pattern[str]:
    # word start only: "metoprolol" matches "Metoprolol succinate 50 mg"
    parts = sorted((r"\s+".join(map(re.escape, t.split())) for t in terms), key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + ")", re.IGNORECASE)


def _term_for(terms: Sequence[str], matched: str) -> str:
    folded = " ".join(matched.split()).casefold()
    for term in terms:
        if " ".join(term.split()).casefold() == folded:
            return term
    return matched


# --------------------------------------------------------------------------------------------
# The config


class RiskBands(_Model):
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


class GuardrailConfig(_Model):
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

    @field_validator("note_groups")
    @classmethod
    def _check_groups(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, flags in groups.items():
            if not re.match(_ID_PATTERN, name):
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
_TAGS: Final = frozenset({"single", "combined", "note", "trend", *_CONDITION_KEYS})


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
