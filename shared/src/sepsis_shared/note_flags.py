"""The catalogue of sepsis red flags the note extractor looks for.

Each flag has an id, words for a clinician, an example phrase and the patterns that show it:
whole words and abbreviations, or numbers after a label with a check on the value ("BP 84/50",
"UOP 15 ml/hr", "T 38.9"). Patterns are written in lower case (notes are scanned lowercased)
and each starts at a word start, which the extractor's gate relies on. The thresholds behind
the numeric checks cite their source where one exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

_Check = Callable[["re.Match[str]"], bool]


@dataclass(frozen=True, slots=True)
class FlagPattern:
    """One way a flag is written, and for numeric phrases the check on the number."""

    regex: re.Pattern[str]
    check: _Check | None = None  # for numeric phrases: does the number make it a red flag?


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """A red flag of the catalogue: its id, its words and a phrase that shows it."""

    flag: str
    label: str
    example: str
    patterns: tuple[FlagPattern, ...]


def _rx(pattern: str) -> re.Pattern[str]:
    # patterns are written in lower case and run on a lowercased copy of the note
    return re.compile(pattern)


def _words(*alternatives: str) -> FlagPattern:
    """One pattern matching any of the alternatives as whole words."""
    return FlagPattern(_rx(r"\b(?:" + "|".join(alternatives) + r")\b"))


def _number(pattern: str, check: _Check) -> FlagPattern:
    return FlagPattern(_rx(pattern), check)


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

CATALOGUE: Final[tuple[FlagSpec, ...]] = (
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
            FlagPattern(_rx(r"(?<![\w&])(?:a\s*&\s*o|a\s*\+\s*o|ao|oriented)\s*x\s*[0-2](?!\d)")),
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
            FlagPattern(
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
            FlagPattern(
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
            FlagPattern(
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

FLAGS: Final[Mapping[str, FlagSpec]] = MappingProxyType({s.flag: s for s in CATALOGUE})
"""Every flag the extractor can report, by id, in report order."""


def flag_label(flag: str) -> str:
    """The clinician-facing words for a flag id (the id itself when unknown)."""
    spec = FLAGS.get(flag)
    return spec.label if spec is not None else flag
