"""Whether a phrase found in a note is affirmed, or negated, historical or hypothetical.

Cues are looked for around the phrase, inside its clause: negation before it ("no", "denies",
"negative for", "ruled out"), within a few words and not past a word that opens a new clause
or a comma (unless the comma heads an "or" list); negation after it ("resolved", "ruled out");
history ("h/o", "PMH") and hypothetical cues ("monitor for", "if") with a longer reach; and
phrases that look negative but are not ("cannot rule out", "no improvement"), checked first.
A stated value (a GCS, oxygen, a vasopressor) is also checked for being a plan, a target or a
past state rather than the current one ("may need pressors", "target GCS 15", "was A&Ox3").
All of it runs on the lowercased note.
"""

from __future__ import annotations

import bisect
import re
from typing import Final

_PRE_NEGATION_WORDS: Final = 6
_PRE_CONTEXT_WORDS: Final = 8  # history and hypothetical cues reach further ("PMH: HTN, UTI")
_POST_NEGATION_WORDS: Final = 3
_CUE_REACH_CHARS: Final = 240  # cues are looked for this far around a phrase


# A full stop ends a clause unless it is a decimal point ("38.5"); so do ; ! ? newlines,
# bullets and a spaced dash (hyphen or en dash).
_BOUNDARY = re.compile(r"[;!?\n\r\u2022]|\.(?!\d)|\s[-\u2013]\s")

_NEG, _CONTEXT = 0, 1

# Phrases that contain a negation word but do not negate what follows (checked first).
_PSEUDO_PRE = (
    r"no\s+change",
    r"no\s+improvement",
    r"no\s+better",
    r"no\s+increase",
    r"no\s+doubt",
    r"not\s+only",
    r"not\s+just",
    r"not\s+improv(?:ed|ing)",
    r"not\s+resolv(?:ed|ing)",
    r"not\s+settl(?:ed|ing)",
    r"not\s+(?:been\s+)?ruled\s+out",
    r"not\s+excluded",
    r"not\s+(?:sure|certain|clear)",
    r"(?:cannot|can't|can\s+not|unable\s+to)\s+(?:be\s+)?(?:rule[ds]?\s+out|exclude[ds]?)",
    r"without\s+(?:improvement|resolution)",
    r"prior\s+to",
)
_NEGATION_PRE = (
    r"no",
    r"not",
    r"nil",
    r"never",
    r"none",
    r"den(?:y|ies|ied|ying)",
    r"neg(?:ative)?\s+for",
    r"without",
    r"w/o",
    r"free\s+of",
    r"absen(?:ce|t)(?:\s+of)?",
    r"rule[ds]\s+out",
    r"resolution\s+of",
    r"(?:weaned\s+)?off",
    r"stopped",
    r"discontinued",
    r"\w+n['\u2019]t",  # isn't, doesn't (straight or curly apostrophe)
)
_CONTEXT_PRE = (
    # history: not a current finding
    r"history\s+of",
    r"hx\s+of",
    r"h/o",
    r"pmh(?:x)?",
    r"past\s+medical\s+history",
    r"previous(?:ly)?",
    r"prior",
    # hypothetical: something to watch for, not something seen
    r"if",
    r"in\s+case\s+of",
    r"risk\s+(?:of|for)",
    r"at\s+risk",
    r"(?:monitor|watch|observe|look)(?:ing|ed)?\s+(?:out\s+)?(?:\w+\s+){0,2}?for",
    r"educat\w*\s+(?:\w+\s+){0,2}?(?:on|about)",
    r"prophyla\w*",
    r"prevent(?:ion|ing)?(?:\s+of)?",
)
_PRE_CUES = re.compile(
    r"(?<![\w/])(?:(?P<pseudo>"
    + "|".join(_PSEUDO_PRE)
    + r")|(?P<neg>"
    + "|".join(_NEGATION_PRE)
    + r")|(?P<ctx>"
    + "|".join(_CONTEXT_PRE)
    + r"))(?![\w/])"
)

_PSEUDO_POST = (
    r"not\s+(?:been\s+)?(?:ruled\s+out|excluded|resolved|settled|improved)",
    r"unresolved",
)
_NEGATION_POST = (
    r"(?:(?:was|is|has\s+been|been)\s+)?(?:ruled\s+out|excluded)",
    r"absent",
    r"resolved",
    r"settled",
    r"not\s+(?:seen|present|noted|found|observed|evident|detected|apparent|identified)",
    r"negative",
    r"unlikely",
    r"stopped",
    r"discontinued",
    r"d/c(?:'d|ed)?",
    r"(?:weaned\s+)?off",
    r"no\s+longer",
    r"prophyla\w*",
)
_POST_CUE = re.compile(
    r"(?<![\w/])(?:(?P<pseudo>"
    + "|".join(_PSEUDO_POST)
    + r")|(?P<neg>"
    + "|".join(_NEGATION_POST)
    + r"))(?![\w/])"
)

# Words that open a new clause and so end the reach of a negation before them.
_TERMINATOR = re.compile(
    r"(?<![\w/])(?:but|however|although|though|yet|except|aside\s+from|apart\s+from|whereas|"
    r"while|now|still|which|who|c/o|complain\w*|report(?:s|ed|ing)?|states?|stated|"
    r"appear(?:s|ed|ing)?|found|became|becoming|develop(?:s|ed|ing)?|remains?|present(?:s|ed)?|"
    r"is|was|are|were|has|had)(?![\w/])"
)
_POST_TERMINATOR = re.compile(
    r"(?<![\w/])(?:but|however|although|though|yet|except|whereas|while|which|who)(?![\w/])"
)
_LIST_CLOSER = re.compile(r"(?<![\w/])(?:or|nor)(?![\w/])")

# Plans, targets and past states, for stated values: a treatment one may need is not one the
# patient is on, a target GCS is not a reading, "was A&Ox3" is not how the patient is now.
_PLAN_REACH_WORDS: Final = 3
_PLAN_REACH_CHARS: Final = 60
# cues with a reach of a few words ("consider starting low dose norad")
_PLAN_FAR = (
    r"(?:may|might|could|would|will|shall|likely\s+to|to)(?:\s+\w+)?\s+"
    r"(?:need|require|start|commence|begin|benefit\s+from)",
    r"consider(?:s|ed|ing)?",
    r"discuss(?:ed|ion|ing)?",
    r"awaiting",
    r"escalat(?:e|ion)\s+(?:to|plan)",
)
# cues right before the phrase ("for NIV", "target GCS", "was A&Ox3")
_PLAN_NEAR = (
    r"for",
    r"plan(?:s|ned)?(?:\s+is)?\s*:?",  # "plan: NIV", but "plan: continue norad" is current
    r"re\s*:?",
    r"(?:target|goal|aim)(?:ing|s)?(?:\s+(?:for|of|at))?",
    r"possibl[ey]",
    r"potential(?:ly)?",
    r"wean(?:s|ing)?(?:\s+(?:o2|oxygen))?\s+to",
    r"baseline",
    r"was",
    r"were",
    r"had\s+been",
    r"initially",
    r"earlier",
    r"formerly",
)
_PLAN_PRE = re.compile(
    r"(?<![\w/])(?:(?P<far>" + "|".join(_PLAN_FAR) + r")|(?P<near>" + "|".join(_PLAN_NEAR) + r"))"
    r"(?![\w/])"
)
_PLAN_POST = re.compile(
    r"(?<![\w/])(?:if|prn|should|when\s+(?:needed|required)|as\s+(?:needed|required|tolerated)|"
    r"(?:may|might|could)\s+(?:be\s+)?(?:needed|required|necessary|considered|indicated)|"
    r"on\s+admission|at\s+baseline|baseline)(?![\w/])"
)


class NoteContext:
    """Clause boundaries of one note (found once), the negation test for a phrase and the
    plan-or-past test for a stated value."""

    __slots__ = ("_bounds", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._bounds: list[int] | None = None

    def clause(self, start: int, end: int) -> tuple[int, int]:
        if self._bounds is None:
            self._bounds = [m.start() for m in _BOUNDARY.finditer(self.text)]
        bounds = self._bounds
        i = bisect.bisect_left(bounds, start)
        lo = bounds[i - 1] + 1 if i > 0 else 0
        j = bisect.bisect_left(bounds, end)
        hi = bounds[j] if j < len(bounds) else len(self.text)
        return lo, hi

    def negated(self, start: int, end: int) -> bool:
        """Whether the phrase at [start, end) is negated, historical or hypothetical."""
        lo, hi = self.clause(start, end)
        text = self.text
        # the last cue ending at or before the phrase, inside its clause and in reach
        cue: re.Match[str] | None = None
        for m in _PRE_CUES.finditer(text, max(lo, start - _CUE_REACH_CHARS), start):
            cue = m
        if cue is not None and not cue.group("pseudo"):
            kind = _NEG if cue.group("neg") else _CONTEXT
            cue_end = cue.end()
            between = text[cue_end:start]
            window = _PRE_NEGATION_WORDS if kind == _NEG else _PRE_CONTEXT_WORDS
            if len(between.split()) <= window and not _TERMINATOR.search(between):
                # a comma ends a negation unless an "or" list follows; history cues head
                # comma lists ("PMH: HTN, DM, UTI") and keep their reach
                comma = between.find(",")
                if (
                    comma < 0
                    or kind == _CONTEXT
                    or _LIST_CLOSER.search(text, cue_end + comma, min(hi, end + _CUE_REACH_CHARS))
                ):
                    return True
        post = _POST_CUE.search(text, end, min(hi, end + _CUE_REACH_CHARS))
        if post is None or post.group("pseudo"):
            return False
        gap = text[end : post.start()]
        return len(gap.split()) <= _POST_NEGATION_WORDS and not _POST_TERMINATOR.search(gap)

    def not_current(self, start: int, end: int) -> bool:
        """Whether a value stated at [start, end) is a plan, a target or a past state.

        Looked for in the phrase's clause, not across a comma: a cue right before it ("for",
        "target", "was"), one a few words before it ("may need", "consider", "to start") or a
        few words after it ("if", "prn", "may be needed", "on admission").
        """
        lo, hi = self.clause(start, end)
        text = self.text
        # searched in the note itself (not a slice) so that word boundaries stay right
        lo = max(lo, start - _PLAN_REACH_CHARS, text.rfind(",", lo, start) + 1)
        cue: re.Match[str] | None = None
        for m in _PLAN_PRE.finditer(text, lo, start):
            cue = m
        if cue is not None:
            between = text[cue.end() : start]
            reach = _PLAN_REACH_WORDS if cue.group("far") else 0
            if len(between.split()) <= reach and not _TERMINATOR.search(between):
                return True
        hi = min(hi, end + _PLAN_REACH_CHARS)
        comma = text.find(",", end, hi)
        post = _PLAN_POST.search(text, end, hi if comma < 0 else comma)
        return post is not None and len(text[end : post.start()].split()) <= _PLAN_REACH_WORDS
