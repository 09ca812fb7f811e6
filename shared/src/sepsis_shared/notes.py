"""Sepsis red flags and bedside values in free-text nursing notes, found deterministically.

The extractor looks for a fixed catalogue of red flags (new confusion, mottled skin, low urine
output, rigors, suspected infection, ...) written the way ward notes are written: abbreviations
(AMS, SOB, UOP, c/o, LOC, abx, BP, A&Ox1, h/o, r/o), numbers ("BP 84/50", "UOP 15 ml/hr",
"T 38.9") and shorthand. Each phrase it finds is checked against its context before it counts:

- negation before it ("no confusion", "denies chills", "negative for", "without", "not
  mottled", "ruled out sepsis"), within a window of a few words, stopped by a clause boundary
  (". ; ! ? newline, ' - '"), by a word that opens a new clause ("but", "however", "now",
  "is", "appears", "c/o", ...) and by a comma, unless the comma is part of a list closed by
  "or"/"nor" ("no fever, chills or rigors" negates all three; "no fever, new confusion" does
  not negate the confusion);
- negation after it ("sepsis ruled out", "mottling resolved", "pressors stopped");
- history ("h/o UTI", "PMH: pneumonia") and hypothetical mentions ("monitor for signs of
  sepsis", "call if confused", "prophylactic antibiotics");
- phrases that look negative but are not ("cannot rule out sepsis", "no improvement in
  confusion", "not resolved").

When unsure the extractor keeps the finding: a red flag missed costs more than a spurious one,
which the clinician sees quoted.

`read_bedside_values` reads, with the same context rules, the values the clinical scores take
from the bedside (GCS, ACVPU consciousness, supplemental oxygen, vasopressors, urine output per
hour, suspected or confirmed infection; catalogue in `sepsis_shared.note_values` and
`sepsis_shared.note_treatments`). It is the
stricter reader: a value read wrongly moves a score, so a plan ("may need pressors"), a target
("target GCS 15") or a past state ("was A&Ox3") gives nothing, and so does a phrase that might
mean something else ("RA" alone may be rheumatoid arthritis).

The work is a bounded number of precompiled, backtracking-safe regular expressions over at most
`MAX_SCAN_CHARS` characters, so its time is linear in the note and bounded.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from sepsis_shared.note_flags import CATALOGUE, FLAGS, FlagPattern, FlagSpec, flag_label
from sepsis_shared.note_negation import NoteContext
from sepsis_shared.note_treatments import TREATMENT_PATTERNS
from sepsis_shared.note_values import HIGHEST_WINS, NOTE_VARIABLES, READING_PATTERNS, ValuePattern
from sepsis_shared.variables import VARIABLES

__all__ = [
    "FLAGS",
    "MAX_EVIDENCE_CHARS",
    "MAX_SCAN_CHARS",
    "NOTE_VARIABLES",
    "FlagSpec",
    "NoteFinding",
    "NoteValue",
    "extract_findings",
    "flag_label",
    "read_bedside_values",
]

MAX_SCAN_CHARS: Final = 20_000
"""Notes are scanned up to this many characters (the shared input limit on notes)."""

MAX_EVIDENCE_CHARS: Final = 80


@dataclass(frozen=True, slots=True)
class NoteFinding:
    """One red flag found in the notes."""

    flag: str
    """Stable snake_case identifier, e.g. `altered_mental_status`."""
    label: str
    """The flag in words for a clinician."""
    evidence: str
    """The phrase that showed it, as written (response only; never logged)."""


@dataclass(frozen=True, slots=True)
class NoteValue:
    """One bedside value stated in the notes."""

    variable: str
    """Canonical variable name (`sepsis_shared.variables`), e.g. `GCS`, `SupplementalO2`."""
    value: float
    """In the variable's unit or code: GCS points, ACVPU code (A 0 ... U 4), 0/1, mL/h, or for
    `Infection` 1 suspected, 2 confirmed."""
    evidence: str
    """The phrase it was read from, as written (response only; never logged)."""


def _evidence(text: str, start: int, end: int) -> str:
    phrase = " ".join(text[start:end].split())
    if len(phrase) > MAX_EVIDENCE_CHARS:
        phrase = phrase[: MAX_EVIDENCE_CHARS - 1].rstrip() + "…"
    return phrase


# --------------------------------------------------------------------------------------------
# Scanning. Patterns run on an ASCII-lowercased copy of the note (same length, so spans map
# back to the original for the evidence). A gate tries every pattern at once, but only at word
# starts, in one pass inside the regex engine; the flags and patterns are then matched only where
# the gate opened. Every pattern starts at a word start, so the gate misses nothing.

_ASCII_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _ungrouped(pattern: str) -> str:
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)  # one regex cannot repeat group names


def _union(patterns: Iterable[str]) -> str:
    return "|".join(f"(?:{_ungrouped(p)})" for p in patterns)


def _structure(pattern: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """Index and character of each parenthesis and `|` of a pattern from `start`, stepping
    over escaped characters and character classes."""
    j = start
    while j < len(pattern):
        ch = pattern[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "[":
            j = pattern.index("]", j + 1)
        elif ch in "()|":
            yield j, ch
        j += 1


def _closing(pattern: str, i: int) -> int:
    """Index of the parenthesis closing the group opened at `i`."""
    depth = 0
    for j, ch in _structure(pattern, i):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced pattern")


def _split_top(body: str) -> list[str]:
    """The alternatives of a pattern body, split at its top-level `|`."""
    parts: list[str] = []
    depth = start = 0
    for j, ch in _structure(body):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            parts.append(body[start:j])
            start = j + 1
    parts.append(body[start:])
    return parts


def first_chars(pattern: str) -> frozenset[str] | None:
    """The characters a match of the pattern can start with; None when not sure.

    Understands what the catalogue's patterns start with (letters, `\\b`, lookbehinds,
    non-capturing groups, optional groups and letters); anything else gives None, which puts
    the pattern where every position is tried.
    """
    if not pattern:
        return None  # an empty match: any position
    if pattern.startswith("\\b"):
        return first_chars(pattern[2:])
    if pattern.startswith(("(?<!", "(?<=")):
        return first_chars(pattern[_closing(pattern, 0) + 1 :])
    if pattern.startswith("(?:"):
        end = _closing(pattern, 0)
        rest = pattern[end + 1 :]
        optional = rest[:1] in ("?", "*")
        if rest[:1] in ("?", "*", "+"):
            rest = rest[1:]
        chars: set[str] = set()
        for alternative in _split_top(pattern[3:end]):
            got = first_chars(alternative + rest)
            if got is None:
                return None
            chars |= got
        if optional:
            got = first_chars(rest)
            if got is None:
                return None
            chars |= got
        return frozenset(chars)
    ch = pattern[0]
    if not (ch.isalnum() or ch in "&/'"):
        return None
    if pattern[1:2] in ("?", "*") or pattern[1:3] == "{0":
        got = first_chars(pattern[2:] if pattern[1:2] in ("?", "*") else "")
        return None if got is None else got | {ch}
    return frozenset(ch)


def _bucketed_gate(sources: Sequence[str]) -> re.Pattern[str]:
    """A regex matching (empty) wherever one of the sources matches at a word start.

    Sources are grouped by the character they can start with, so at each word start only the
    group of its first character is tried.
    """
    buckets: dict[str, list[str]] = {}
    anywhere: list[str] = []
    for source in sources:
        chars = first_chars(source)
        if chars is None:
            anywhere.append(source)
        else:
            for ch in chars:
                buckets.setdefault(ch, []).append(source)
    branches = [f"(?={re.escape(ch)})(?:{_union(group)})" for ch, group in sorted(buckets.items())]
    if anywhere:
        branches.append(_union(anywhere))
    return re.compile(r"(?<![a-z0-9])(?=" + "|".join(branches) + ")")


def _by_first_char() -> dict[str, tuple[tuple[int, tuple[FlagPattern, ...]], ...]]:
    """first character -> (catalogue index, the flag's patterns that can start with it)."""
    table: dict[str, dict[int, list[FlagPattern]]] = {}
    for i, spec in enumerate(CATALOGUE):
        for pattern in spec.patterns:
            chars = first_chars(pattern.regex.pattern)
            if chars is None:
                raise ValueError(f"{spec.flag}: a pattern must start with known characters")
            for ch in chars:
                table.setdefault(ch, {}).setdefault(i, []).append(pattern)
    return {
        ch: tuple((i, tuple(patterns)) for i, patterns in sorted(flags.items()))
        for ch, flags in table.items()
    }


_CANDIDATES: Final = _by_first_char()
_GATE: Final = _bucketed_gate([p.regex.pattern for spec in CATALOGUE for p in spec.patterns])


def extract_findings(notes: str | None) -> list[NoteFinding]:
    """The red flags affirmed in the notes, one per flag, in catalogue order.

    Case-insensitive; negated, historical and hypothetical mentions do not count. Only the
    first `MAX_SCAN_CHARS` characters are read.
    """
    if not notes or notes.isspace():
        return []
    text = notes[:MAX_SCAN_CHARS]
    low = text.translate(_ASCII_LOWER)
    context = NoteContext(low)
    found: dict[int, tuple[int, int]] = {}  # catalogue index -> span of the first affirmed phrase
    for gate in _GATE.finditer(low):
        pos = gate.start()
        for i, patterns in _CANDIDATES.get(low[pos], ()):
            if i in found:
                continue
            for pattern in patterns:
                m = pattern.regex.match(low, pos)
                if m is None or (pattern.check is not None and not pattern.check(m)):
                    continue
                if not context.negated(m.start(), m.end()):
                    found[i] = m.span()
                    break
        if len(found) == len(CATALOGUE):
            break
    return [
        NoteFinding(spec.flag, spec.label, _evidence(text, *found[i]))
        for i, spec in enumerate(CATALOGUE)
        if i in found
    ]


# --------------------------------------------------------------------------------------------
# Bedside values: the same gate over the value catalogue; every pattern is tried at every word
# start it can begin at (overlapping statements included), then per variable the statement
# that counts is picked.


_VALUE_PATTERNS: Final = (*READING_PATTERNS, *TREATMENT_PATTERNS)


def _value_candidates() -> tuple[dict[str, tuple[ValuePattern, ...]], tuple[ValuePattern, ...]]:
    """first character -> the value patterns that can start with it; and those that can start
    with anything the gate opens at (a number)."""
    table: dict[str, list[ValuePattern]] = {}
    anywhere: list[ValuePattern] = []
    for pattern in _VALUE_PATTERNS:
        chars = first_chars(pattern.regex.pattern)
        if chars is None:
            anywhere.append(pattern)
        else:
            for ch in chars:
                table.setdefault(ch, []).append(pattern)
    return {ch: (*patterns, *anywhere) for ch, patterns in table.items()}, tuple(anywhere)


_VALUE_CANDIDATES, _VALUE_ANYWHERE = _value_candidates()
_VALUE_GATE: Final = _bucketed_gate([p.regex.pattern for p in _VALUE_PATTERNS])


def _in_range(variable: str, value: float) -> bool:
    spec = VARIABLES.get(variable)
    # a variable the table does not list yet (Infection) has only the reader's own codes
    return spec is None or spec.low <= value <= spec.high


class _Statement(NamedTuple):
    value: float
    start: int
    end: int
    current_only: bool


def _counted(
    variable: str, statements: list[_Statement], context: NoteContext
) -> _Statement | None:
    """The statement of a variable that counts: the first affirmed in order of precedence.

    Statements are ranked, not read in turn, so that the context of a phrase (the costly part)
    is checked only until one is affirmed, usually once.
    """
    highest = variable in HIGHEST_WINS
    if highest:
        # the highest code; of equal codes the first phrase, as its red flag quotes it
        order = sorted(range(len(statements)), key=lambda i: (-statements[i].value, i))
    else:
        # the statement ending last; a match inside a longer one is part of that statement
        # ("pressors" of "pressors not required", "oriented x3" of "alert and oriented x3")
        order = sorted(range(len(statements)), key=lambda i: (-statements[i].end, i))
    rejected_from = len(context.text)  # the earliest start of a statement set aside
    for i in order:
        st = statements[i]
        # ends no later than every statement set aside so far: inside one when it starts
        # after it ("on room air" of "was on room air", "4L NC" of "was on 4L NC")
        if not highest and st.start >= rejected_from:
            continue
        if context.negated(st.start, st.end) or (
            st.current_only and context.not_current(st.start, st.end)
        ):
            rejected_from = min(rejected_from, st.start)
            continue
        return st
    return None


def read_bedside_values(notes: str | None) -> list[NoteValue]:
    """The bedside values the notes state, at most one per variable, in `NOTE_VARIABLES` order.

    Reads `GCS` ("GCS 11", "GCS: 14/15", "E3V4M5"), `Consciousness` as its ACVPU code ("new
    confusion" 1, "responds to voice" 2, "P on AVPU" 3, "unresponsive" 4, "alert and oriented"
    0), `SupplementalO2` ("4L NC", "on CPAP", "intubated" 1; "on room air", "O2 stopped" 0),
    `Vasopressors` ("norad running" 1; "off pressors" 0), `UrineOutput` in mL/h where a rate per
    hour is written ("UOP 15 ml/hr"), and `Infection` (1 suspected, 2 confirmed, from the
    evidence the red flags `suspected_infection` and `confirmed_infection` rest on).

    When the notes state a variable more than once, the last statement in the text counts (the
    one ending last; a phrase inside a longer one is part of it): a running note is written
    oldest first, so the last is the newest, and a change ("weaned from NRB to room air") ends
    on the state now. Conflicting statements are resolved the same way. `Infection` is the
    exception: confirmed wins over suspected wherever each is written, and its evidence is the
    first phrase of the code reported (the one its red flag quotes).

    Negated, historical and hypothetical statements give nothing (as for the red flags), and so
    do plans, targets and past states ("may need pressors", "target GCS 15", "was A&Ox3"), with
    two deliberate exceptions: an explicit absence is a value ("off pressors", "no O2 required"
    give 0), and a suspicion is itself the suspected-infection evidence ("?sepsis"). A value
    outside the variable's range (`sepsis_shared.variables`) is not a reading and is passed
    over. Case-insensitive; only the first `MAX_SCAN_CHARS` characters are read.
    """
    if not notes or notes.isspace():
        return []
    text = notes[:MAX_SCAN_CHARS]
    low = text.translate(_ASCII_LOWER)
    found: dict[str, list[_Statement]] = {}  # variable -> statements, in scan order
    for gate in _VALUE_GATE.finditer(low):
        pos = gate.start()
        for pattern in _VALUE_CANDIDATES.get(low[pos], _VALUE_ANYWHERE):
            m = pattern.regex.match(low, pos)
            if m is None:
                continue
            value = pattern.read(m)
            if value is not None and _in_range(pattern.variable, value):
                statement = _Statement(value, m.start(), m.end(), pattern.current_only)
                found.setdefault(pattern.variable, []).append(statement)
    context = NoteContext(low)
    values: list[NoteValue] = []
    for name in NOTE_VARIABLES:
        st = _counted(name, found.get(name, []), context)
        if st is not None:
            values.append(NoteValue(name, st.value, _evidence(text, st.start, st.end)))
    return values
