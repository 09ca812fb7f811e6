"""The catalogue of bedside values the note reader takes from free text: treatments.

Supplemental oxygen and vasopressors, each as 1 when the note shows the treatment given and 0
when it shows it stopped or not given, written with the building blocks of
`sepsis_shared.note_values` (lower case, word starts, possessive quantifiers where whitespace
runs meet).
"""

from __future__ import annotations

import re
from typing import Final

from sepsis_shared.note_flags import FLAGS
from sepsis_shared.note_values import (
    SUPPLEMENTAL_O2,
    VASOPRESSORS,
    ValuePattern,
    fixed,
    flag_patterns,
    word_before,
    words,
)

# --------------------------------------------------------------------------------------------
# Supplemental oxygen: 1 for oxygen therapy written down, 0 for room air or oxygen stopped.
# "RA" counts only where it is where the patient breathes ("on RA", "96% RA"): alone it is as
# often rheumatoid arthritis or the right atrium.

_FLOW = (
    r"(?<![\w.])(?P<v>\d{1,2}(?:\.\d)?)\s*+(?:l(?:pm|/min)?|litres?|liters?)(?![a-z])"
    r"(?:\s*+(?:/|per)\s*+min(?:ute)?)?"
)
# home CPAP for sleep apnoea is not oxygen therapy in hospital
_CPAP = (
    r"(?:c|bi)pap(?!\s++(?:at\s++(?:night|home)|overnight|nocturnal\w*|for\s++(?:osa|sleep)"
    r"|machine))"
)
_DEVICE = (
    r"(?:nc|nasal\s++(?:cannulae?|prongs|specs)|np|face\s*+mask|fm|(?:simple\s++)?mask|hudson"
    r"(?:\s++mask)?|nrb(?:m)?|non[-\s]?re-?breather(?:\s++mask)?|venturi(?:\s++mask)?|hfn[oc]"
    r"|high[-\s]?flow(?:\s++nasal)?(?:\s++(?:oxygen|o2|cannula|therapy))?|optiflow|airvo|"
    + _CPAP
    + r"|niv|nippv|(?:the\s++|a\s++)?vent(?:ilator)?|mechanical\s++ventilation)(?![\w-])"
)
_O2 = r"(?:o2|oxygen)(?![\w-])(?!\s*+(?:sats?|saturations?|levels?)\b)"
_O2_MODIFIER = r"(?:(?:supplemental|supplementary|humidified|high[-\s]?flow|low[-\s]?flow)\s++)?"


def _flow_given(m: re.Match[str]) -> float | None:
    return 1.0 if float(m.group("v")) > 0 else None


def _not_home_device(m: re.Match[str]) -> float | None:
    return None if word_before(m) in ("home", "nocturnal", "nightly") else 1.0


def _not_self(m: re.Match[str]) -> float | None:
    return None if word_before(m) == "self" else 1.0


# "on RA meds", "RA flare": the disease, not room air
_NOT_RHEUMATOID = (
    r"(?!\s++(?:factor|flare|nodules?|serology|clinic|treatment|medications?|meds|drugs?|therapy|"
    r"pressure))"
)
# "to RA" is room air only after a step down ("weaned to RA", "4L NC to RA"), not "due to RA"
_STEP_DOWN = re.compile(
    r"(?:weaned|wean|back|down|switched|changed|extubated|reduced|\d+(?:\.\d)?l|nc|nrb|o2|oxygen|"
    r"mask|hfn[oc]|cpap|bipap|niv|venturi)"
)


def _weaned_to_air(m: re.Match[str]) -> float | None:
    return 0.0 if _STEP_DOWN.fullmatch(word_before(m)) else None


_OXYGEN_PATTERNS = (
    # a flow with oxygen or a device: "2 l/min O2", "4L NC", "15L via NRB"
    ValuePattern(
        SUPPLEMENTAL_O2,
        re.compile(
            _FLOW
            + r"(?:\s++of)?\s*+"
            + _O2_MODIFIER
            + r"(?:"
            + _O2
            + r"|(?:(?:via|by|on)\s++)?"
            + _DEVICE
            + r")"
        ),
        _flow_given,
    ),
    # "sats 94% on 2L", "28% venturi"
    ValuePattern(
        SUPPLEMENTAL_O2,
        re.compile(
            r"(?<![\w.])\d{2,3}\s*+%\s*+(?:(?:on|@)\s*+"
            + _FLOW
            + r"|(?:via\s++)?(?:venturi|face\s*+mask|nrb))"
        ),
        fixed(1),
    ),
    # "on O2", "requiring 4L O2", "via face mask", "on CPAP"
    ValuePattern(
        SUPPLEMENTAL_O2,
        re.compile(
            r"\b(?:on|via|using|requiring|requires|receiving|needing|needs|given|(?:placed|started|"
            r"commenced)\s++on)\s++(?:\d{1,2}(?:\.\d)?\s*+(?:l|lpm|%)\s++)?"
            + _O2_MODIFIER
            + r"(?:"
            + _O2
            + r"|"
            + _DEVICE
            + r")"
        ),
        _not_home_device,
    ),
    ValuePattern(
        SUPPLEMENTAL_O2,
        re.compile(
            r"\b(?:nrbm?|non[-\s]?re-?breather|venturi|hfn[oc]|optiflow|airvo|niv|nippv|"
            r"high[-\s]?flow\s++(?:nasal\s++)?(?:oxygen|o2|cannula|therapy)|"
            + _CPAP
            + r")(?![\w-])"
        ),
        _not_home_device,
    ),
    ValuePattern(
        SUPPLEMENTAL_O2,
        re.compile(
            r"\b(?:o2|oxygen)(?:\s++therapy\b|\s++(?:via|by|through)\s++"
            + _DEVICE
            + r"|\s*+(?:at|@)\s*+\d|\s++"
            + _FLOW
            + r")"
        ),
        fixed(1),
    ),
    ValuePattern(
        SUPPLEMENTAL_O2,
        re.compile(
            r"\b(?:intubated|(?:mechanically\s++)?ventilated|"
            r"on\s++(?:the\s++|a\s++)?ventilator)(?![\w-])"
        ),
        _not_self,
    ),
    # room air: "on room air", "on air", "on RA", "96% RA", "weaned to RA"
    words(
        SUPPLEMENTAL_O2,
        0,
        r"(?:(?:on|in|to)\s++)?room\s++air",
        r"(?:on|in)\s++air(?!\s++(?:mattress|bed|cushion|boots?))",
        r"on\s++ra" + _NOT_RHEUMATOID,
    ),
    ValuePattern(
        SUPPLEMENTAL_O2, re.compile(r"(?<![\w.])\d{2,3}\s*+%\s*+(?:on\s++)?ra(?![\w-])"), fixed(0)
    ),
    ValuePattern(
        SUPPLEMENTAL_O2, re.compile(r"\bto\s++ra(?![\w-])" + _NOT_RHEUMATOID), _weaned_to_air
    ),
    words(
        SUPPLEMENTAL_O2,
        0,
        r"(?:weaned\s++)?off\s++(?:(?:supplemental|all)\s++)?(?:o2|oxygen)",
        r"(?:stopped|discontinued|removed)\s++(?:(?:supplemental|the)\s++)?(?:o2|oxygen)",
        r"(?:o2|oxygen)(?:\s++therapy)?\s++(?:(?:was|has\s++been|now)\s++)?(?:stopped|off|"
        r"discontinued|removed|weaned\s++off|d/c(?:'d|ed)?)",
        r"(?:no|nil)\s++(?:supplemental\s++|additional\s++)?(?:o2|oxygen)(?!\s*+sat)"
        r"(?:\s++(?:required|requirement|needed|need|therapy))?",
        r"not\s++(?:on|requiring|needing|receiving)\s++(?:any\s++)?(?:supplemental\s++)?"
        r"(?:o2|oxygen)",
    ),
)


# --------------------------------------------------------------------------------------------
# Vasopressors: 1 for a pressor or inotrope named (the red-flag catalogue's drug list), 0 for
# one stopped or not given. Plans ("may need pressors") give nothing: see `NoteContext`.

_PRESSOR = "(?:" + "|".join(p.regex.pattern for p in FLAGS["vasopressors_started"].patterns) + ")"


# "dopamine agonist", "dobutamine stress echo", "phenylephrine eye drops": not an infusion
_NOT_INFUSION = frozenset(
    {"agonist", "agonists", "antagonist", "antagonists", "stress", "eye", "nasal"}
)


def _pressor_given(m: re.Match[str]) -> float | None:
    after = m.string[m.end() : m.end() + 16].split()
    return None if after and after[0] in _NOT_INFUSION else 1.0


_PRESSOR_PATTERNS = (
    *flag_patterns(VASOPRESSORS, "vasopressors_started", _pressor_given, current_only=True),
    ValuePattern(
        VASOPRESSORS,
        re.compile(
            r"\b(?:(?:(?:weaned|came|come|taken)\s++)?off\s++(?:all\s++)?"
            + _PRESSOR
            + r"|\b(?:no|nil|not\s++(?:on|requiring|needing)|never\s++on)\s++(?:any\s++)?"
            + _PRESSOR
            + ")"
        ),
        fixed(0),
    ),
    ValuePattern(
        VASOPRESSORS,
        re.compile(
            _PRESSOR + r"(?:\s++(?:infusion|drip|gtt))?(?:\s*+[:=-]\s*+(?:nil|none|no|off)\b|\s++"
            r"(?:(?:was|were|has\s++been|have\s++been|now)\s++)?(?:weaned\s++off|off|stopped|"
            r"discontinued|ceased|turned\s++off|d/c(?:'d|ed)?|not\s++(?:required|needed|indicated))"
            r"(?![\w-]))"
        ),
        fixed(0),
    ),
)


TREATMENT_PATTERNS: Final[tuple[ValuePattern, ...]] = (*_OXYGEN_PATTERNS, *_PRESSOR_PATTERNS)
"""The patterns of supplemental oxygen and vasopressors."""
