"""The guardrail's rules: conditions, the four rule kinds and history adjustments.

Rule kinds: `single` compares a variable's latest value; `combined` needs every condition of
`all_of` (conditions: `{variable, op, threshold}`, `{score: qsofa|sirs|news2|sofa, op,
threshold}` with an optional `component` (a component name, or `max` for the highest one),
`{note: flag}`, `{note_group: name}`, `{any_of: [conditions]}`); `note` fires on a note flag,
with optional extra `requires` conditions; `trend` fires on a variable rising or falling by at
least `change` from the first to the last value, or at least `slope_per_hour` over a window of
at least `min_hours`.

An adjustment makes named rules fire more readily while the patient's history mentions one of
its terms. Each model here checks its own fields; what needs the whole document (unique ids,
known note groups and rules, risk bands, adjustments that only tighten) is checked by
`sepsis_genai.guardrail_config`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from sepsis_shared.assessment import Priority
from sepsis_shared.note_flags import FLAGS
from sepsis_shared.patient import NormalizedPatient
from sepsis_shared.scores import clinical_scores
from sepsis_shared.variables import SERIES_VARIABLES

Operator = Literal["<", "<=", ">", ">="]
ScoreName = Literal["qsofa", "sirs", "news2", "sofa"]
RuleKind = Literal["single", "combined", "note", "trend"]

ID_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"


class StrictModel(BaseModel):
    """Frozen, and no field it does not know."""

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


class VariableCondition(StrictModel):
    """The latest value of a variable compared with a threshold."""

    variable: str
    op: Operator
    threshold: float

    _check_variable = field_validator("variable")(_known_variable)


class ScoreCondition(StrictModel):
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


class NoteCondition(StrictModel):
    """A note flag is present."""

    note: str

    _check_note = field_validator("note")(_known_flag)


class NoteGroupCondition(StrictModel):
    """Any flag of a named group (`note_groups`) is present."""

    note_group: str


class AnyOfCondition(StrictModel):
    """At least one of the conditions holds."""

    any_of: list[Condition] = Field(min_length=2)


CONDITION_KEYS: Final = ("variable", "score", "note_group", "note", "any_of")


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, Mapping):
        for key in CONDITION_KEYS:
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
        custom_error_message="a condition needs one of the keys: " + ", ".join(CONDITION_KEYS),
    ),
]

_CONDITION_MODELS: Final[Mapping[str, type[StrictModel]]] = {
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


class _RuleBase(StrictModel):
    id: str = Field(pattern=ID_PATTERN)
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


class Modification(StrictModel):
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


class Adjustment(StrictModel):
    """Rules made more sensitive when the history mentions one of the terms."""

    id: str = Field(pattern=ID_PATTERN)
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
