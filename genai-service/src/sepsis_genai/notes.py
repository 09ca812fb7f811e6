"""Sepsis red flags in free-text nursing notes, found deterministically.

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
which the clinician sees quoted. The work is a bounded number of precompiled, backtracking-safe
regular expressions over at most `MAX_SCAN_CHARS` characters, so its time is linear in the
note and bounded.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from sepsis_genai.note_flags import CATALOGUE, FLAGS, FlagPattern, FlagSpec, flag_label
from sepsis_genai.note_negation import NoteContext

__all__ = [
    "FLAGS",
    "MAX_EVIDENCE_CHARS",
    "MAX_SCAN_CHARS",
    "FlagSpec",
    "NoteFinding",
    "extract_findings",
    "flag_label",
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
