"""The catalogue of bedside values the note reader takes from free text: what is observed.

Each pattern names a shared variable (`sepsis_shared.variables`) and says how the phrase it
matches gives a value: a number read from the phrase ("GCS 11", "UOP 15 ml/hr"), the sum of
GCS components ("E3V4M5"), or a fixed code ("responds to voice" is V, code 2; "on room air" is
no supplemental oxygen, 0). The vasopressor drugs and the infection evidence are the red-flag
catalogue's own patterns (`sepsis_shared.note_flags`), so both readers agree on what names a
pressor or an infection. Treatments (supplemental oxygen, vasopressors) are written with the
same building blocks in `sepsis_shared.note_treatments`.

Patterns are written in lower case, start at a word start (the reader's gate relies on it) and
use possessive quantifiers wherever whitespace runs meet, so that no pattern backtracks over a
long run of spaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sepsis_shared.note_flags import FLAGS
from sepsis_shared.variables import CONSCIOUSNESS_CODES

GCS: Final = "GCS"
CONSCIOUSNESS: Final = "Consciousness"
SUPPLEMENTAL_O2: Final = "SupplementalO2"
VASOPRESSORS: Final = "Vasopressors"
URINE_OUTPUT: Final = "UrineOutput"
INFECTION: Final = "Infection"
"""0 none known, 1 suspected, 2 confirmed."""

NOTE_VARIABLES: Final = (GCS, CONSCIOUSNESS, SUPPLEMENTAL_O2, VASOPRESSORS, URINE_OUTPUT, INFECTION)
"""The variables the reader can take from notes, in the order it reports them."""

HIGHEST_WINS: Final = frozenset({INFECTION})
"""Variables where the highest value stated wins (a confirmed infection is not undone by a
later mention of the cultures sent); every other variable takes the last statement."""

Read = Callable[["re.Match[str]"], float | None]
"""How a match gives its value: the value, or None when the match states none."""


@dataclass(frozen=True, slots=True)
class ValuePattern:
    """One way a bedside value is written, and how the phrase gives the value."""

    variable: str
    regex: re.Pattern[str]
    read: Read
    """The value the match states, None when the match turns out not to state one."""
    current_only: bool = True
    """Whether plans, targets and past states ("may need", "target", "was") give nothing."""


def fixed(value: float) -> Read:
    """A reader giving `value` whatever the match."""
    code = float(value)

    def read(_m: re.Match[str]) -> float:
        return code

    return read


def words(variable: str, value: float, *alternatives: str) -> ValuePattern:
    """A pattern giving a fixed value for any of the alternatives, as whole words."""
    return ValuePattern(
        variable, re.compile(r"\b(?:" + "|".join(alternatives) + r")(?![\w-])"), fixed(value)
    )


def word_before(m: re.Match[str]) -> str:
    """The word right before the match ("self" of "self-ventilated" too)."""
    words = m.string[max(0, m.start() - 24) : m.start()].split()
    return words[-1].strip("-:,(") if words else ""


def flag_patterns(
    variable: str, flag: str, read: Read, *, current_only: bool
) -> tuple[ValuePattern, ...]:
    """The red-flag catalogue's patterns of `flag`, each giving what `read` gives."""

    def checked(check: Callable[[re.Match[str]], bool]) -> Read:
        def read_checked(m: re.Match[str]) -> float | None:
            return read(m) if check(m) else None

        return read_checked

    return tuple(
        ValuePattern(variable, p.regex, read if p.check is None else checked(p.check), current_only)
        for p in FLAGS[flag].patterns
    )


# --------------------------------------------------------------------------------------------
# GCS: a total after its label ("GCS 11", "GCS of 9", "GCS: 14/15", "GCS dropped to 9") or the
# three components (E 1-4, V 1-5, M 1-6). Not after "goal" or "target" (the label's gap does
# not take them, and a target before the label is a plan).

_GCS_GAP = (
    r"(?:\s*+[:=])?(?:\s++(?:score|total|of|is|was|now|remains|(?:dropped|fell|down|improved|up)"
    r"\s++to)(?![\w/])){0,2}\s*+"
)


def _number(m: re.Match[str]) -> float:
    return float(m.group("v"))


def _gcs_sum(m: re.Match[str]) -> float:
    return float(int(m.group("e")) + int(m.group("vv")) + int(m.group("m")))


_GCS_PATTERNS = (
    ValuePattern(
        GCS,
        re.compile(r"\bgcs" + _GCS_GAP + r"(?P<v>\d{1,2})(?:\s*+/\s*+15)?(?!\d|\s*/|\.\d)"),
        _number,
    ),
    ValuePattern(
        GCS,
        re.compile(
            r"\be\s*+(?P<e>[1-4])\s*+,?\s*+v\s*+(?P<vv>[1-5])\s*+,?\s*+m\s*+(?P<m>[1-6])(?!\d)"
        ),
        _gcs_sum,
    ),
)


# --------------------------------------------------------------------------------------------
# Consciousness, ACVPU code: A 0, C 1 (new confusion), V 2, P 3, U 4. Plain "confused" is not
# read as C: the C of ACVPU is confusion that is new, and a note saying "confused" does not
# say whether it is (dementia is confusion too); the red-flag reader still reports it.

_AVPU = r"a?c?vpu"
_LEVEL_WORDS = r"(?:alert|voice|pain|unresponsive|confus(?:ed|ion)|new\s++confusion|[acvpu])"


def _avpu_code(m: re.Match[str]) -> float | None:
    word = " ".join(m.group("l").split())
    code = CONSCIOUSNESS_CODES.get(word)
    return None if code is None else float(code)


def _avpu_letter_first(m: re.Match[str]) -> float | None:
    code = CONSCIOUSNESS_CODES.get(m.group(0)[0])
    return None if code is None else float(code)


_RESPONDS = (
    r"\b(?:respond(?:s|ed|ing)?|responsive|(?:a)?rousable|rous(?:es|ing)|opens?\s++eyes)"
    r"\s++(?:only\s++)?to\s++"
)
_PAIN = (
    r"(?:(?:deep|central|peripheral)\s++)?(?:pain(?:ful\s++stimul(?:i|us))?"
    r"|painful\s++stimul(?:i|us)|sternal\s++rub|trapezius\s++(?:squeeze|pinch))(?![\w-])"
    # pain relief is a treatment the patient responds to, not a stimulus
    r"(?!\s++(?:relief|killers?|med\w*|control|management|team|score))"
)
# a haemodynamic "unresponsive" (fluid-unresponsive shock, hypotension unresponsive to fluids)
_NOT_CONSCIOUSNESS = frozenset(
    {"fluid", "volume", "treatment", "bp", "map", "pressure", "hypotension", "shock", "fluids"}
)


def _unresponsive(m: re.Match[str]) -> float | None:
    return None if word_before(m) in _NOT_CONSCIOUSNESS else 4.0


def _alert_opens_clause(m: re.Match[str]) -> float | None:
    # "Alert, chatty" at the start of a clause; not "sepsis alert." or "NEWS alert, ..."
    before = m.string[max(0, m.start() - 8) : m.start()].rstrip(" \t-*\u2022")
    return 0.0 if not before or before[-1] in ".;:!?\n\r" else None


_CONSCIOUSNESS_PATTERNS = (
    words(
        CONSCIOUSNESS,
        1,
        r"(?:new(?:ly)?|acute(?:ly)?|increasing(?:ly)?|more|worsening)\s++"
        r"(?:confus(?:ed|ion)|disorient(?:at)?(?:ed|ion))",
        r"acute\s++confusional\s++state",
        r"delirium",
        r"delirious",
    ),
    ValuePattern(
        CONSCIOUSNESS,
        re.compile(
            _RESPONDS
            + r"(?:(?:his|her|their)\s++)?(?:voice|verbal\s++stimul(?:i|us)|speech|name)\b"
        ),
        fixed(2),
    ),
    ValuePattern(CONSCIOUSNESS, re.compile(_RESPONDS + _PAIN), fixed(3)),
    ValuePattern(
        CONSCIOUSNESS,
        re.compile(
            r"\b(?:unresponsive(?:\s++to\s++" + _PAIN + r"|(?![\w-])(?!\s++to\b))|unrousable\b)"
        ),
        _unresponsive,
    ),
    words(
        CONSCIOUSNESS,
        0,
        r"(?:a\s*+[&+]\s*+o|a?ao|alert\s++(?:and|&)\s++orient(?:at)?ed|orient(?:at)?ed)"
        r"\s*+x\s*+[34](?!\d)",
        r"alert(?:\s*+,\s*+|\s++(?:and|&)\s++|\s*+&\s*+)(?:orient(?:at)?ed|chatty|conversant|"
        r"talking|interactive|appropriate|cooperative|responsive)",
        r"(?:is|appears?|appearing|remains?|remained|became|now|fully|more|awake(?:\s++(?:and|&))?"
        r"|pt|patient|he|she)\s++alert"
        # an alert that is raised, sent or fired is a message, not a level of consciousness
        r"(?![\w-])(?!\s++(?:to|sent|raised|triggered|fired|called|activated|team|page|system))",
    ),
    ValuePattern(CONSCIOUSNESS, re.compile(r"\balert(?=\s*+[,.;\n]|\s*+$)"), _alert_opens_clause),
    # "AVPU: V", "ACVPU C", "AVPU = pain", "V on AVPU"
    ValuePattern(
        CONSCIOUSNESS,
        re.compile(
            r"\b"
            + _AVPU
            + r"(?:\s*+[:=-]|\s++(?:score|is|was|of))?\s*+(?P<l>"
            + _LEVEL_WORDS
            + r")(?![\w-])"
        ),
        _avpu_code,
    ),
    ValuePattern(
        CONSCIOUSNESS,
        re.compile(r"\b(?:a|c|v|p|u)\s++(?:on|for)\s++(?:the\s++)?" + _AVPU + r"\b"),
        _avpu_letter_first,
    ),
)


# --------------------------------------------------------------------------------------------
# Urine output in mL/h, only where the rate is explicit ("UOP 15 ml/hr", "urine output 20 mL/h",
# "UOP 10 ml in the last hour"). A volume over several hours or per kilogram is left alone: the
# variable is the hour's output, and the patient's weight is not known here.

_URINE = (
    r"\b(?:uop|u/o|uo|urine(?:\s++output)?|urinary\s++output)(?:\s*+[:=~])?"
    r"(?:\s++(?:of|is|was|now|only|approx\.?|approximately|about|around|averag(?:e|ing)|"
    r"has\s++been|remains|running\s++at|at)(?![\w/])){0,2}\s*+~?"
    r"(?P<v>\d{1,4}(?:\.\d+)?)\s*+(?:mls?|cc)"
    r"(?:\s*+/\s*+|\s++(?:per|an?|each|every)\s++)(?:hrs?|hours?|h)(?![\w/])"
)
_URINE_LAST_HOUR = (
    r"\b(?:uop|u/o|uo|urine(?:\s++output)?|urinary\s++output)(?:\s*+[:=~])?\s*+"
    r"(?P<v>\d{1,4}(?:\.\d+)?)\s*+(?:mls?|cc)\s++(?:in|over)\s++(?:the\s++)?(?:last|past|previous)"
    r"\s++(?:1\s++|one\s++)?(?:hr|hour)(?![\w/])"
)

_URINE_PATTERNS = (
    ValuePattern(URINE_OUTPUT, re.compile(_URINE), _number),
    ValuePattern(URINE_OUTPUT, re.compile(_URINE_LAST_HOUR), _number),
)


# --------------------------------------------------------------------------------------------
# Infection: the red-flag catalogue's suspected (1) and confirmed (2) evidence. A suspicion is a
# statement even when worded as one ("?sepsis", "consider sepsis"), so these are read as the
# flags are, without the plan check.

_INFECTION_PATTERNS = (
    *flag_patterns(INFECTION, "suspected_infection", fixed(1), current_only=False),
    *flag_patterns(INFECTION, "confirmed_infection", fixed(2), current_only=False),
)

READING_PATTERNS: Final[tuple[ValuePattern, ...]] = (
    *_GCS_PATTERNS,
    *_CONSCIOUSNESS_PATTERNS,
    *_URINE_PATTERNS,
    *_INFECTION_PATTERNS,
)
"""The patterns of what is observed (GCS, consciousness, urine output, infection); the
treatments (oxygen, vasopressors) are in `sepsis_shared.note_treatments`."""
