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

import bisect
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

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

_PRE_NEGATION_WORDS: Final = 6
_PRE_CONTEXT_WORDS: Final = 8  # history and hypothetical cues reach further ("PMH: HTN, UTI")
_POST_NEGATION_WORDS: Final = 3
_CUE_REACH_CHARS: Final = 240  # cues are looked for this far around a phrase


@dataclass(frozen=True, slots=True)
class NoteFinding:
    """One red flag found in the notes."""

    flag: str
    """Stable snake_case identifier, e.g. `altered_mental_status`."""
    label: str
    """The flag in words for a clinician."""
    evidence: str
    """The phrase that showed it, as written (response only; never logged)."""


_Check = Callable[["re.Match[str]"], bool]


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    check: _Check | None = None  # for numeric phrases: does the number make it a red flag?


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """A red flag of the catalogue: its id, its words and a phrase that shows it."""

    flag: str
    label: str
    example: str
    patterns: tuple[_Pattern, ...]


def _rx(pattern: str) -> re.Pattern[str]:
    # patterns are written in lower case and run on a lowercased copy of the note
    return re.compile(pattern)


def _words(*alternatives: str) -> _Pattern:
    """One pattern matching any of the alternatives as whole words."""
    return _Pattern(_rx(r"\b(?:" + "|".join(alternatives) + r")\b"))


def _number(pattern: str, check: _Check) -> _Pattern:
    return _Pattern(_rx(pattern), check)


def _value(m: re.Match[str], group: str = "v") -> float:
    return float(m.group(group))


# Numbers after a label: up to a few non-digit characters ("BP: 84/50", "sats of 88%",
# "HR up to 135", "MAPs in the 50s"). Digits may not precede the number (no "1" of "12").
_GAP = r"[^\d\n.;>]{0,16}?"  # not across ">": "MAP > 65" is a target, not a reading
_NUM = r"(?P<v>\d{1,3}(?:\.\d+)?)(?!\d)"


def _systolic_low(m: re.Match[str]) -> bool:
    return _value(m) < 90


def _map_low(m: re.Match[str]) -> bool:
    return _value(m) < 65


def _temp_c(m: re.Match[str]) -> float | None:
    v = _value(m)
    unit = (m.groupdict().get("u") or "").lower().strip()
    if unit.endswith("f") or (not unit.endswith("c") and 80 <= v <= 113):
        v = (v - 32.0) * 5.0 / 9.0
    return v if 25.0 <= v <= 45.0 else None


def _fever(m: re.Match[str]) -> bool:
    v = _temp_c(m)
    return v is not None and v >= 38.0


def _hypothermia(m: re.Match[str]) -> bool:
    v = _temp_c(m)
    return v is not None and v < 36.0


def _gcs_low(m: re.Match[str]) -> bool:
    return 3 <= _value(m) <= 14


def _urine_low(m: re.Match[str]) -> bool:
    v = _value(m)
    if m.group("kg"):
        return v < 0.5  # mL/kg/h, oliguria (KDIGO 2012 AKI urine criterion)
    # mL per hour, or a total over some hours: under 30 mL is under 30 mL/h either way
    # (0.5 mL/kg/h for a 60 kg adult)
    return v < 30


def _resp_high(m: re.Match[str]) -> bool:
    return 22 <= _value(m) <= 80  # qSOFA respiratory criterion (Seymour 2016)


def _sats_low(m: re.Match[str]) -> bool:
    return 50 <= _value(m) < 92  # NEWS2 scale 1 scores 3 at <= 91 % (RCP 2017)


def _hr_high(m: re.Match[str]) -> bool:
    return 100 <= _value(m) <= 250


def _crt_long(m: re.Match[str]) -> bool:
    return 3 <= _value(m) <= 20


# a bare "T" only with a decimal reading ("T 38.9"), too ambiguous otherwise
_BARE_T = r"(?<![\w/])t\s*[:=]?\s*(?P<v>\d{2,3}\.\d)(?!\d)"
_TEMP_UNIT = r"\s*(?P<u>°?\s*[cf](?![a-z]))?"

_BP_LABEL = r"\b(?:n?i?bp|blood\s+pressures?|abp|art\s+line\s+bp)"

_CATALOGUE: Final[tuple[FlagSpec, ...]] = (
    FlagSpec(
        "altered_mental_status",
        "Altered mental status or new confusion",
        "new confusion this evening",
        (
            _words(r"ams", r"delirium", r"delirious", r"obtunded", r"obtundation"),
            _words(
                r"altered\s+(?:mental\s+(?:status|state)|mentation|sensorium|"
                r"conscious(?:ness|\s+level)|level\s+of\s+consciousness|loc)"
            ),
            _words(
                r"(?:new(?:ly)?\s+|acute(?:ly)?\s+|increasing(?:ly)?\s+|more\s+)?confus(?:ed|ion)"
            ),
            _words(r"disorient(?:at)?(?:ed|ion)", r"unresponsive", r"loss\s+of\s+consciousness"),
            _words(
                r"(?:decreased|reduced|depressed|lowered|fluctuating|declining|impaired|"
                r"drop\s+in|dropping|falling)\s+(?:loc|level\s+of\s+consciousness|"
                r"conscious\s+level|gcs)"
            ),
            _words(r"(?:not|no\s+longer|isn't|is\s+not)\s+(?:fully\s+)?oriented"),
            _Pattern(_rx(r"(?<![\w&])(?:a\s*&\s*o|a\s*\+\s*o|ao|oriented)\s*x\s*[0-2](?!\d)")),
            _number(r"\bgcs" + _GAP + _NUM, _gcs_low),
        ),
    ),
    FlagSpec(
        "lethargy",
        "Lethargy or drowsiness",
        "appears lethargic",
        (
            _words(
                r"letharg(?:y|ic)",
                r"drows(?:y|iness)",
                r"somnolen(?:t|ce)",
                r"listless",
                r"(?:difficult|hard|unable|cannot|can't|can\s+not)\s+(?:to\s+)?(?:be\s+)?a?rous(?:e|ed)",
            ),
        ),
    ),
    FlagSpec(
        "mottled_skin",
        "Mottled or ashen skin",
        "skin mottled on lower extremities",
        (_words(r"mottl(?:ed|ing|e)", r"livedo", r"ashen"),),
    ),
    FlagSpec(
        "cool_peripheries",
        "Cool or clammy peripheries",
        "cool peripheries",
        (
            _words(
                r"(?:cool|cold)\s+(?:and\s+clammy\s+|(?:and\s+)?mottled\s+)?"
                r"(?:peripher(?:y|ies)|extremit(?:y|ies)|hands|feet|fingers|toes|limbs|skin|"
                r"legs|arms|knees)",
                r"clammy",
                r"peripher(?:ies|ally)\s+(?:cool|cold|shut\s*down)",
                r"(?:cool|cold)\s+to\s+(?:the\s+)?touch",
                r"shut\s*down\s+peripher(?:ies|ally)",
                r"(?:skin|peripher(?:y|ies)|extremit(?:y|ies)|hands|feet|limbs|legs)\s+"
                r"(?:is\s+|are\s+|feels?\s+)?(?:cool|cold)",
            ),
        ),
    ),
    FlagSpec(
        "delayed_capillary_refill",
        "Delayed capillary refill",
        "capillary refill prolonged",
        (
            _Pattern(
                _rx(
                    r"\b(?:cap(?:illary)?\s*refill(?:\s+time)?|crt)\s*(?:is\s+|of\s+|was\s+)?"
                    r"(?:>|greater\s+than|more\s+than|over|prolonged|delayed|sluggish|slow)"
                )
            ),
            _words(r"(?:prolonged|delayed|sluggish|slow)\s+(?:cap(?:illary)?\s*refill|crt)"),
            _number(
                r"\b(?:cap(?:illary)?\s*refill(?:\s+time)?|crt)"
                + _GAP
                + _NUM
                + r"\s*(?:s|secs?|seconds)\b",
                _crt_long,
            ),
        ),
    ),
    FlagSpec(
        "low_urine_output",
        "Low urine output",
        "UOP low",
        (
            _words(r"oligur(?:ia|ic)", r"anur(?:ia|ic)"),
            _words(
                r"(?:low|poor|reduced|decreased|minimal|scant|scanty|diminished|falling|dropping|"
                r"declining|inadequate|little)\s+(?:urine(?:\s+output)?|uop|u/o|urinary\s+output)"
            ),
            _Pattern(
                _rx(
                    r"\b(?:urine\s+output|uop|u/o)\s+(?:is\s+|has\s+been\s+|remains\s+)?"
                    r"(?:low|poor|reduced|decreased|minimal|scant|down|dropping|falling|"
                    r"declining|inadequate|<\s*0\.5)"
                )
            ),
            _words(
                r"no\s+(?:urine(?:\s+output)?|uop|u/o)",
                r"(?:not|hasn't|has\s+not|hasnt)\s+(?:passed\s+urine|voided|pu'd)",
                r"not\s+passing\s+urine",
            ),
            _number(
                r"\b(?:uop|u/o|urine\s+output|urine)"
                + _GAP
                + _NUM
                + r"\s*(?:ml|cc|mls)(?P<kg>\s*/\s*kg)?",
                _urine_low,
            ),
        ),
    ),
    FlagSpec(
        "rigors",
        "Rigors or shaking chills",
        "c/o rigors",
        (_words(r"rigou?rs?", r"rigou?ring", r"shaking\s+chills", r"chills", r"shivering"),),
    ),
    FlagSpec(
        "hypotension",
        "Hypotension",
        "BP 84/50",
        (
            _words(r"hypotensi(?:on|ve)"),
            _words(
                r"(?:low|soft|dropping|falling|decreased|reduced|labile)\s+"
                r"(?:bps?|blood\s+pressures?|maps?|sbps?)"
            ),
            _Pattern(
                _rx(
                    r"\b(?:bps?|blood\s+pressures?|maps?|sbps?)\s+(?:is\s+|are\s+|has\s+been\s+|"
                    r"remains?\s+)?(?:low|soft|dropping|falling|dropped|fell|trending\s+down)\b"
                )
            ),
            _number(_BP_LABEL + r"\b" + _GAP + _NUM + r"\s*/\s*\d{2,3}", _systolic_low),
            _number(r"\bsbps?\b" + _GAP + _NUM, _systolic_low),
            _number(r"\bmaps?\b" + _GAP + _NUM, _map_low),
        ),
    ),
    FlagSpec(
        "vasopressors_started",
        "Vasopressors or inotropes",
        "started on noradrenaline",
        (
            _words(
                r"(?:vaso)?pressors?",
                r"nor-?adrenaline",
                r"norad",
                r"nor-?epinephrine",
                r"norepi",
                r"levophed",
                r"vasopressin",
                r"phenylephrine",
                r"metaraminol",
                r"dopamine",
                r"dobutamine",
                r"terlipressin",
                r"inotropes?",
                r"inotropic\s+support",
                r"(?:epinephrine|adrenaline)\s+(?:infusion|drip|gtt)",
            ),
        ),
    ),
    FlagSpec(
        "suspected_infection",
        "Suspected infection",
        "?sepsis, blood cultures sent",
        (
            _words(
                r"sepsis",
                r"septic",
                r"urosepsis",
                r"infect(?:ion|ions|ed|ive)(?!\s+(?:control|prevention|risk))",
                r"pneumonia",
                r"utis?",
                r"cellulitis",
                r"abscess",
                r"cholangitis",
                r"pyelonephritis",
                r"meningitis",
                r"peritonitis",
                r"empyema",
                r"endocarditis",
                r"osteomyelitis",
                r"consolidation",
                r"purulent",
                r"pus",
                r"foul[-\s]smelling",
                r"productive\s+cough",
                r"c\.?\s?diff(?:icile)?",
            ),
            _words(
                r"(?:wound|site|line|incision)\s+(?:is\s+)?(?:red|erythematous|inflamed|oozing|"
                r"discharging|hot|infected)",
                r"(?:(?:blood|urine|sputum|wound)\s+)?(?:cultures?|bcx|b/c)\s+(?:sent|taken|drawn|"
                r"obtained|pending|collected)",
            ),
            _words(
                r"abx",
                r"antibiotics?",
                r"antimicrobials?",
                r"pip-?tazo?",
                r"piperacillin",
                r"tazocin",
                r"zosyn",
                r"meropenem",
                r"imipenem",
                r"ertapenem",
                r"vancomycin",
                r"vanc",
                r"ceftriaxone",
                r"cefepime",
                r"ceftazidime",
                r"cefuroxime",
                r"co-?amoxiclav",
                r"augmentin",
                r"gentamicin",
                r"amikacin",
                r"ciprofloxacin",
                r"levofloxacin",
                r"metronidazole",
                r"clindamycin",
                r"linezolid",
                r"daptomycin",
                r"flucloxacillin",
                r"teicoplanin",
            ),
        ),
    ),
    FlagSpec(
        "confirmed_infection",
        "Confirmed infection (positive cultures or imaging)",
        "blood cultures positive for gram negative rods",
        (
            _words(
                r"positive\s+(?:(?:blood|urine|sputum|wound|csf|line)\s+)?cultures?",
                r"(?:(?:blood|urine|sputum|wound|csf|line)\s+)?cultures?\s+(?:positive|grew|"
                r"growing|grows|came\s+back\s+positive|returned\s+positive)",
                r"bactera?emi(?:a|c)",
                r"bacteraemi(?:a|c)",
                r"fung(?:a)?emia",
                r"gram[-\s]?(?:positive|negative|pos|neg)\s+(?:cocci|rods|bacilli|bacteria|organisms)",
                r"confirmed\s+(?:infection|sepsis|pneumonia|uti|cellulitis|urosepsis)",
                r"(?:infection|sepsis|pneumonia|uti|urosepsis)\s+(?:is\s+|was\s+|has\s+been\s+)?"
                r"confirmed",
                r"(?:cxr|x-?ray|ct)\s+(?:shows|showed|confirms|confirmed|with|demonstrates)\s+"
                r"(?:\w+\s+){0,4}?(?:consolidation|pneumonia|infiltrates?|collection|abscess)",
            ),
        ),
    ),
    FlagSpec(
        "tachypnoea_or_dyspnoea",
        "Fast or laboured breathing",
        "c/o SOB",
        (
            _words(
                r"sob",
                r"soboe",
                r"short(?:ness)?\s+of\s+breath",
                r"dyspn(?:o)?e(?:a|ic)",
                r"tachypn(?:o)?e(?:a|ic)",
                r"breathless(?:ness)?",
                r"(?:increased|increasing)\s+(?:work\s+of\s+breathing|wob)",
                r"la?bou?red\s+(?:breathing|respirations?)",
                r"respiratory\s+distress",
                r"accessory\s+muscles?",
                r"air\s+hunger",
                r"(?:rapid|fast|shallow)\s+(?:breathing|respirations?|breaths)",
            ),
            _number(r"\b(?:rr|resp(?:iratory)?\s*rate|resps?)\b" + _GAP + _NUM, _resp_high),
        ),
    ),
    FlagSpec(
        "hypoxia",
        "Low oxygen saturation or rising oxygen need",
        "desaturating on room air",
        (
            _words(
                r"hypox(?:ia|ic|aemia|emia|aemic|emic)",
                r"desat(?:urat(?:ing|ion|ed|es))?s?",
                r"(?:increasing|increased|rising|escalating|higher)\s+(?:o2|oxygen|fio2)\s+"
                r"(?:requirements?|needs?|demands?)",
                r"(?:o2|oxygen)\s+(?:requirements?|needs?)\s+(?:increasing|increased|rising)",
            ),
            _number(
                r"\b(?:spo2|sats?|sao2|o2\s*sats?|saturations?|saturating|sating)\b" + _GAP + _NUM,
                _sats_low,
            ),
        ),
    ),
    FlagSpec(
        "fever_reported",
        "Fever",
        "febrile overnight",
        (
            _words(
                r"febrile",
                r"fevers?",
                r"feverish",
                r"pyrexi(?:a|al)",
                r"hyperthermi(?:a|c)",
                r"spik(?:ing|ed)\s+(?:a\s+)?(?:temps?|temperatures?|fevers?)",
                r"high\s+(?:temp|temperature)",
            ),
            _number(
                r"\b(?:temp(?:erature)?s?|tmax|t\s*max)\b" + _GAP + _NUM + _TEMP_UNIT,
                _fever,
            ),
            _number(_BARE_T + _TEMP_UNIT, _fever),
        ),
    ),
    FlagSpec(
        "hypothermia",
        "Low temperature",
        "hypothermic at 35.2",
        (
            _words(r"hypothermi(?:a|c)"),
            _number(
                r"\b(?:temp(?:erature)?s?|tmin|t\s*min)\b" + _GAP + _NUM + _TEMP_UNIT,
                _hypothermia,
            ),
            _number(_BARE_T + _TEMP_UNIT, _hypothermia),
        ),
    ),
    FlagSpec(
        "tachycardia",
        "Tachycardia",
        "tachycardic to 130s",
        (
            _words(
                r"tachycardi(?:a|c)",
                r"sinus\s+tach(?:ycardia)?",
                r"fast\s+af",
                r"rvr",
                r"(?:af|afib|atrial\s+fibrillation)\s+with\s+(?:rvr|fast|rapid)\s*(?:ventricular\s+)?"
                r"(?:response|rate)?",
                r"racing\s+(?:pulse|heart)",
            ),
            _number(r"\b(?:hr|heart\s+rate|pulse(?:\s+rate)?)\b" + _GAP + _NUM, _hr_high),
        ),
    ),
    FlagSpec(
        "petechiae_or_purpura",
        "Non-blanching rash, petechiae or purpura",
        "non-blanching rash on legs",
        (_words(r"petechia(?:e|l)?", r"purpur(?:a|ic)", r"non[-\s]?blanching"),),
    ),
    FlagSpec(
        "clinical_concern",
        "Nurse or family concerned; looks unwell",
        "nurse concerned, looks unwell",
        (
            _words(
                r"(?:looks?|looking|appears?|appearing)\s+(?:very\s+|more\s+|quite\s+|really\s+)?"
                r"(?:unwell|septic|sick|ill|toxic|grey|gray|worse|poorly|peri-?arrest)",
                r"(?:nurse|nursing\s+staff|staff|family|relatives?|wife|husband|daughter|son|"
                r"mother|father|parents?|carer|i\s+am|i'm|we\s+are|we're)\s+(?:is\s+|are\s+|am\s+)?"
                r"(?:very\s+|really\s+|quite\s+)?(?:worried|concerned)",
                r"not\s+(?:himself|herself|themselves|(?:his|her|their)\s+usual\s+self)",
                r"deteriorat(?:ing|ed|ion)",
                r"clinically\s+worse",
            ),
        ),
    ),
)

FLAGS: Final[Mapping[str, FlagSpec]] = MappingProxyType({s.flag: s for s in _CATALOGUE})
"""Every flag the extractor can report, by id, in report order."""

_ORDER: Final[Mapping[str, int]] = MappingProxyType({s.flag: i for i, s in enumerate(_CATALOGUE)})


def flag_label(flag: str) -> str:
    """The clinician-facing words for a flag id (the id itself when unknown)."""
    spec = FLAGS.get(flag)
    return spec.label if spec is not None else flag


# --------------------------------------------------------------------------------------------
# Context: clause boundaries, cues and scope terminators, each found once per note.

# A full stop ends a clause unless it is a decimal point ("38.5"); so do ; ! ? newlines,
# bullets and a spaced dash (hyphen or en dash).
_BOUNDARY = _rx(r"[;!?\n\r\u2022]|\.(?!\d)|\s[-\u2013]\s")

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
_PRE_CUES = _rx(
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
_POST_CUE = _rx(
    r"(?<![\w/])(?:(?P<pseudo>"
    + "|".join(_PSEUDO_POST)
    + r")|(?P<neg>"
    + "|".join(_NEGATION_POST)
    + r"))(?![\w/])"
)

# Words that open a new clause and so end the reach of a negation before them.
_TERMINATOR = _rx(
    r"(?<![\w/])(?:but|however|although|though|yet|except|aside\s+from|apart\s+from|whereas|"
    r"while|now|still|which|who|c/o|complain\w*|report(?:s|ed|ing)?|states?|stated|"
    r"appear(?:s|ed|ing)?|found|became|becoming|develop(?:s|ed|ing)?|remains?|present(?:s|ed)?|"
    r"is|was|are|were|has|had)(?![\w/])"
)
_POST_TERMINATOR = _rx(
    r"(?<![\w/])(?:but|however|although|though|yet|except|whereas|while|which|who)(?![\w/])"
)
_LIST_CLOSER = _rx(r"(?<![\w/])(?:or|nor)(?![\w/])")


class _Context:
    """Clause boundaries of one note (found once) and the negation test for a phrase."""

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


def _closing(pattern: str, i: int) -> int:
    """Index of the parenthesis closing the group opened at `i`."""
    depth = 0
    j = i
    while j < len(pattern):
        ch = pattern[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "[":
            j = pattern.index("]", j + 1)
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise ValueError("unbalanced pattern")


def _split_top(body: str) -> list[str]:
    parts: list[str] = []
    depth, start, j = 0, 0, 0
    while j < len(body):
        ch = body[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "[":
            j = body.index("]", j + 1)
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(body[start:j])
            start = j + 1
        j += 1
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


def _by_first_char() -> dict[str, tuple[tuple[int, tuple[_Pattern, ...]], ...]]:
    """first character -> (catalogue index, the flag's patterns that can start with it)."""
    table: dict[str, dict[int, list[_Pattern]]] = {}
    for i, spec in enumerate(_CATALOGUE):
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
_GATE: Final = _bucketed_gate([p.regex.pattern for spec in _CATALOGUE for p in spec.patterns])


def extract_findings(notes: str | None) -> list[NoteFinding]:
    """The red flags affirmed in the notes, one per flag, in catalogue order.

    Case-insensitive; negated, historical and hypothetical mentions do not count. Only the
    first `MAX_SCAN_CHARS` characters are read.
    """
    if not notes or notes.isspace():
        return []
    text = notes[:MAX_SCAN_CHARS]
    low = text.translate(_ASCII_LOWER)
    context = _Context(low)
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
        if len(found) == len(_CATALOGUE):
            break
    return [
        NoteFinding(spec.flag, spec.label, _evidence(text, *found[i]))
        for i, spec in enumerate(_CATALOGUE)
        if i in found
    ]
