"""The variables a patient record may carry: canonical names, units, ranges, aliases, units.

Canonical names are those of the PhysioNet/CinC 2019 challenge (Reyna et al., Crit Care Med
2020), plus the bedside inputs the clinical scores need (GCS, AVPU consciousness, supplemental
oxygen, PaO2, urine output, vasopressors). Every value is stored in the unit listed here.

Units follow the challenge data, with one deliberate exception: the challenge documentation
lists Lactate in mg/dL, but its values are mmol/L in practice (median 1.8, which would be far
below normal in mg/dL). Lactate is therefore defined in mmol/L; a client sending mg/dL says so
with `"units": {"Lactate": "mg/dL"}` and the value is divided by 9.008. FiO2 is a fraction
(0.21-1.0), again as the challenge values are.

Ranges are wide physiological limits: they catch unit mix-ups, typos and device artefacts, not
abnormal physiology. A value outside its range cannot be a measurement of a living patient: the
parser leaves it out of the assessment and lists it in the answer's `data_quality`, or, where
the value has one obvious other reading (FiO2 40 for 40 %, Temp 101.3 in °F), reads it that way
and lists that (see `sepsis_shared.patient`). A handful of set A entries lie outside the ranges
(e.g. Temp 20.9 °C, FiO2 0.0 or 10, BaseExcess 100): recording artefacts of that kind.

`freshness` says how long a value describes the patient: a vital sign or bedside observation
for the vitals' age limit (default 8 hours), a laboratory result for the labs' (default 24
hours); see `sepsis_shared.intake`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = [
    "ALIASES",
    "BEDSIDE_VARIABLES",
    "BINARY_VARIABLES",
    "CONSCIOUSNESS_CODES",
    "CONSCIOUSNESS_LETTERS",
    "DEMOGRAPHICS",
    "IGNORED_NAMES",
    "INFECTION_CODES",
    "INFECTION_WORDS",
    "PHYSIONET_VARIABLES",
    "SERIES_VARIABLES",
    "VARIABLES",
    "VariableSpec",
    "canonical_name",
    "normalise_unit",
    "unit_converter",
]


@dataclass(frozen=True, slots=True)
class VariableSpec:
    """One input variable: its unit, its accepted range and what it means."""

    name: str
    unit: str
    low: float
    high: float
    description: str
    kind: str  # "vital", "lab", "bedside" or "demographic"
    freshness: str = "vital"  # "vital" or "lab": which age limit applies (demographics: none)
    integer: bool = False
    aliases: tuple[str, ...] = ()
    # unit spellings (normalised, see `normalise_unit`) -> conversion into `unit`
    conversions: Mapping[str, Callable[[float], float]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def range_text(self) -> str:
        """The accepted range in words, e.g. `25-45 °C`."""
        unit = f" {self.unit}" if self.unit else ""
        return f"{_num(self.low)} to {_num(self.high)}{unit}"


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)


def _same(x: float) -> float:
    return x


def _conv(
    *identity: str, **others: Callable[[float], float]
) -> Mapping[str, Callable[[float], float]]:
    table: dict[str, Callable[[float], float]] = dict.fromkeys(identity, _same)
    table.update(others)
    return MappingProxyType(table)


def _f_to_c(x: float) -> float:
    return (x - 32.0) * 5.0 / 9.0


# Conversion factors: lactate 1 mmol/L = 9.008 mg/dL (molar mass 90.08 g/mol); creatinine
# 1 mg/dL = 88.4 µmol/L; bilirubin 1 mg/dL = 17.1 µmol/L; glucose 1 mmol/L = 18.016 mg/dL.
_MG_DL = ("mg/dl", "mgdl", "mg/100ml")
_MMOL_L = ("mmol/l", "mmoll")
_UMOL_L = ("umol/l", "umoll")

_TEMP_UNITS = _conv(
    "degc",
    "c",
    "celsius",
    degf=_f_to_c,
    f=_f_to_c,
    fahrenheit=_f_to_c,
)
_LACTATE_UNITS = _conv(*_MMOL_L, **dict.fromkeys(_MG_DL, lambda x: x / 9.008))
_CREATININE_UNITS = _conv(*_MG_DL, **dict.fromkeys(_UMOL_L, lambda x: x / 88.4))
_BILIRUBIN_UNITS = _conv(*_MG_DL, **dict.fromkeys(_UMOL_L, lambda x: x / 17.1))
_GLUCOSE_UNITS = _conv(*_MG_DL, **dict.fromkeys(_MMOL_L, lambda x: x * 18.016))
_FIO2_UNITS = _conv(
    "fraction", "ratio", "1", **{"%": lambda x: x / 100.0, "percent": lambda x: x / 100.0}
)
_HGB_UNITS = _conv("g/dl", "gdl", **{"g/l": lambda x: x / 10.0})
# Other spellings of a canonical unit (normalised); mEq/L equals mmol/L for monovalent ions.
_SAME_UNITS: Mapping[str, tuple[str, ...]] = {
    "beats/min": ("bpm", "/min", "1/min"),
    "breaths/min": ("/min", "1/min"),
    "mmol/l": ("meq/l",),
}


def _v(
    name: str,
    unit: str,
    low: float,
    high: float,
    description: str,
    kind: str,
    *,
    aliases: tuple[str, ...] = (),
    integer: bool = False,
    freshness: str | None = None,
    conversions: Mapping[str, Callable[[float], float]] | None = None,
) -> VariableSpec:
    if conversions is None:
        norm = normalise_unit(unit)
        conversions = _conv(norm, *_SAME_UNITS.get(norm, ())) if unit else _conv()
    return VariableSpec(
        name=name,
        unit=unit,
        low=low,
        high=high,
        description=description,
        kind=kind,
        freshness=freshness or ("lab" if kind == "lab" else "vital"),
        integer=integer,
        aliases=aliases,
        conversions=conversions,
    )


def normalise_unit(unit: str) -> str:
    """A unit spelling reduced for lookup: lower case, no spaces, µ as u, ° as deg."""
    u = unit.strip().lower().replace(" ", "").replace("µ", "u").replace("μ", "u")
    return u.replace("°", "deg")


_SPECS: tuple[VariableSpec, ...] = (
    # Vital signs (PhysioNet 2019 columns 3-10)
    _v(
        "HR",
        "beats/min",
        0,
        300,
        "Heart rate",
        "vital",
        aliases=("heartrate", "heart_rate", "pulse"),
    ),
    _v(
        "O2Sat",
        "%",
        0,
        100,
        "Pulse oximetry oxygen saturation (SpO2)",
        "vital",
        aliases=("spo2", "o2_sat", "oxygen_saturation", "sats"),
    ),
    _v(
        "Temp",
        "°C",
        25,
        45,
        "Body temperature",
        "vital",
        aliases=("temperature", "temp_c", "body_temperature"),
        conversions=_TEMP_UNITS,
    ),
    _v(
        "SBP",
        "mmHg",
        0,
        300,
        "Systolic blood pressure",
        "vital",
        aliases=("systolic", "sys_bp", "systolic_bp"),
    ),
    _v(
        "MAP",
        "mmHg",
        0,
        300,
        "Mean arterial pressure",
        "vital",
        aliases=("mean_bp", "mean_arterial_pressure"),
    ),
    _v(
        "DBP",
        "mmHg",
        0,
        300,
        "Diastolic blood pressure",
        "vital",
        aliases=("diastolic", "dia_bp", "diastolic_bp"),
    ),
    _v(
        "Resp",
        "breaths/min",
        0,
        120,
        "Respiratory rate",
        "vital",
        aliases=("rr", "resprate", "resp_rate", "respiratory_rate", "respiration"),
    ),
    _v("EtCO2", "mmHg", 0, 150, "End-tidal carbon dioxide", "vital", aliases=("etco2",)),
    # Laboratory values (columns 11-36)
    _v("BaseExcess", "mmol/L", -50, 50, "Base excess", "lab", aliases=("base_excess",)),
    _v("HCO3", "mmol/L", 0, 80, "Bicarbonate", "lab", aliases=("bicarbonate", "bicarb")),
    _v(
        "FiO2",
        "fraction",
        0.21,
        1.0,
        "Fraction of inspired oxygen (0.21 = room air); send `%` as its unit for 21-100",
        "lab",
        aliases=("fio2", "fio_2"),
        conversions=_FIO2_UNITS,
    ),
    _v("pH", "", 6.5, 8.0, "Arterial pH", "lab", aliases=("ph",)),
    _v("PaCO2", "mmHg", 5, 250, "Arterial partial pressure of CO2", "lab", aliases=("paco2",)),
    _v("SaO2", "%", 0, 100, "Arterial oxygen saturation (blood gas)", "lab", aliases=("sao2",)),
    _v("AST", "IU/L", 0, 50000, "Aspartate transaminase", "lab", aliases=("sgot",)),
    _v("BUN", "mg/dL", 0, 400, "Blood urea nitrogen", "lab", aliases=("urea_nitrogen",)),
    _v(
        "Alkalinephos",
        "IU/L",
        0,
        10000,
        "Alkaline phosphatase",
        "lab",
        aliases=("alp", "alkaline_phosphatase", "alkphos"),
    ),
    _v("Calcium", "mg/dL", 0, 30, "Calcium", "lab"),
    _v("Chloride", "mmol/L", 40, 200, "Chloride", "lab"),
    _v(
        "Creatinine",
        "mg/dL",
        0,
        60,
        "Serum creatinine",
        "lab",
        aliases=("creat", "cr"),
        conversions=_CREATININE_UNITS,
    ),
    _v(
        "Bilirubin_direct",
        "mg/dL",
        0,
        80,
        "Direct bilirubin",
        "lab",
        aliases=("direct_bilirubin", "bilirubindirect", "dbili"),
        conversions=_BILIRUBIN_UNITS,
    ),
    _v(
        "Glucose",
        "mg/dL",
        0,
        3000,
        "Serum glucose",
        "lab",
        aliases=("glu", "blood_glucose"),
        conversions=_GLUCOSE_UNITS,
    ),
    _v(
        "Lactate",
        "mmol/L",
        0,
        50,
        "Lactate (mmol/L; the challenge README says mg/dL but its values are mmol/L)",
        "lab",
        aliases=("lactic_acid", "lac"),
        conversions=_LACTATE_UNITS,
    ),
    _v("Magnesium", "mg/dL", 0, 20, "Magnesium", "lab"),
    _v("Phosphate", "mg/dL", 0, 30, "Phosphate", "lab", aliases=("phos", "phosphorus")),
    _v("Potassium", "mmol/L", 0, 30, "Potassium", "lab"),
    _v(
        "Bilirubin_total",
        "mg/dL",
        0,
        80,
        "Total bilirubin",
        "lab",
        aliases=("bilirubin", "total_bilirubin", "bili", "tbili", "bilirubintotal"),
        conversions=_BILIRUBIN_UNITS,
    ),
    _v(
        "TroponinI",
        "ng/mL",
        0,
        1000,
        "Troponin I",
        "lab",
        aliases=("troponin", "troponin_i", "tni"),
    ),
    _v("Hct", "%", 0, 100, "Haematocrit", "lab", aliases=("hematocrit", "haematocrit")),
    _v(
        "Hgb",
        "g/dL",
        0,
        35,
        "Haemoglobin",
        "lab",
        aliases=("hb", "hemoglobin", "haemoglobin"),
        conversions=_HGB_UNITS,
    ),
    _v("PTT", "s", 0, 300, "Partial thromboplastin time", "lab", aliases=("aptt",)),
    _v(
        "WBC",
        "10^3/uL",
        0,
        500,
        "White blood cell count",
        "lab",
        aliases=("leukocytes", "white_cells", "wbc_count"),
        conversions=_conv("10^3/ul", "10^9/l", "k/ul", "x10^9/l", "x10^3/ul"),
    ),
    _v("Fibrinogen", "mg/dL", 0, 3000, "Fibrinogen", "lab"),
    _v(
        "Platelets",
        "10^3/uL",
        0,
        5000,
        "Platelet count",
        "lab",
        aliases=("plt", "platelet", "platelet_count"),
        conversions=_conv("10^3/ul", "10^9/l", "k/ul", "x10^9/l", "x10^3/ul"),
    ),
    # Bedside inputs the clinical scores need (not in the challenge data)
    _v(
        "GCS",
        "points",
        3,
        15,
        "Glasgow Coma Scale total (3-15)",
        "bedside",
        aliases=("glasgow", "glasgow_coma_scale", "gcs_total"),
        integer=True,
    ),
    _v(
        "Consciousness",
        "ACVPU code",
        0,
        4,
        "Level of consciousness, ACVPU: A (alert), C (new confusion), V (responds to voice), "
        "P (responds to pain), U (unresponsive); send the letter or its code 0-4",
        "bedside",
        aliases=("avpu", "acvpu", "level_of_consciousness", "mental_status"),
        integer=True,
    ),
    _v(
        "SupplementalO2",
        "0/1",
        0,
        1,
        "On supplemental oxygen (1) or breathing room air (0)",
        "bedside",
        aliases=("supplemental_o2", "on_oxygen", "o2_therapy", "supplemental_oxygen"),
        integer=True,
    ),
    _v(
        "PaO2",
        "mmHg",
        10,
        800,
        "Arterial partial pressure of oxygen",
        "bedside",
        aliases=("pao2",),
        freshness="lab",
    ),
    _v(
        "UrineOutput",
        "mL/h",
        0,
        5000,
        "Urine output over the hour",
        "bedside",
        aliases=("urine_output", "urine_output_ml_h"),
        freshness="lab",
    ),
    _v(
        "Vasopressors",
        "0/1",
        0,
        1,
        "Receiving vasopressors or inotropes (1) or not (0)",
        "bedside",
        aliases=("vasopressor", "pressors", "on_vasopressors"),
        integer=True,
    ),
    _v(
        "Infection",
        "code",
        0,
        2,
        "Infection: 0 none known, 1 suspected (cultures sent, antibiotics started), 2 confirmed "
        "(positive cultures or imaging); send the code or `none`/`suspected`/`confirmed`",
        "bedside",
        aliases=("suspected_infection", "infection_status"),
        integer=True,
        freshness="lab",
    ),
    # Demographics and stay (scalars only)
    _v(
        "Age",
        "years",
        0,
        120,
        "Age (the challenge caps it at 89)",
        "demographic",
        aliases=("age_years",),
    ),
    _v(
        "Gender",
        "0/1",
        0,
        1,
        "Sex: 0 or `female`/`f`, 1 or `male`/`m`",
        "demographic",
        aliases=("sex",),
        integer=True,
    ),
    _v(
        "ICULOS",
        "hours",
        0,
        10000,
        "Hours since ICU admission at the scored hour",
        "demographic",
        aliases=("icu_los", "icu_hours", "iculos_hours"),
    ),
    _v(
        "HospAdmTime",
        "hours",
        -100000,
        1000,
        "Hours between hospital admission and ICU admission (usually negative)",
        "demographic",
        aliases=("hosp_adm_time",),
    ),
)

VARIABLES: Final[Mapping[str, VariableSpec]] = MappingProxyType({s.name: s for s in _SPECS})
"""Every accepted variable by canonical name, in PhysioNet column order then bedside inputs."""

PHYSIONET_VARIABLES: Final[tuple[str, ...]] = tuple(
    s.name for s in _SPECS if s.kind in ("vital", "lab")
)
"""The 34 time-varying variables of the PhysioNet 2019 challenge, in column order."""

BEDSIDE_VARIABLES: Final[tuple[str, ...]] = tuple(s.name for s in _SPECS if s.kind == "bedside")
DEMOGRAPHICS: Final[tuple[str, ...]] = ("Age", "Gender", "ICULOS", "HospAdmTime")
SERIES_VARIABLES: Final[frozenset[str]] = frozenset(PHYSIONET_VARIABLES + BEDSIDE_VARIABLES)
"""Variables that may be sent as a number, a list or a time series."""

BINARY_VARIABLES: Final[frozenset[str]] = frozenset({"SupplementalO2", "Vasopressors"})
"""0/1 flags; JSON true/false is accepted for these (and only these)."""

IGNORED_NAMES: Final[frozenset[str]] = frozenset({"unit1", "unit2"})
"""Challenge columns accepted for compatibility with replayed rows but never used: which ICU
unit admitted the patient is one hospital's bookkeeping, not physiology."""

CONSCIOUSNESS_LETTERS: Final[tuple[str, ...]] = ("A", "C", "V", "P", "U")
"""ACVPU letters; the stored code of a letter is its index (A = 0 ... U = 4)."""

CONSCIOUSNESS_CODES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "a": 0,
        "alert": 0,
        "c": 1,
        "confused": 1,
        "confusion": 1,
        "new confusion": 1,
        "v": 2,
        "voice": 2,
        "p": 3,
        "pain": 3,
        "u": 4,
        "unresponsive": 4,
    }
)


INFECTION_WORDS: Final[tuple[str, ...]] = ("none", "suspected", "confirmed")
"""Infection status in words; the stored code of a word is its index."""

INFECTION_CODES: Final[Mapping[str, int]] = MappingProxyType(
    {"none": 0, "no": 0, "suspected": 1, "possible": 1, "confirmed": 2, "proven": 2}
)


def _build_aliases() -> dict[str, str]:
    table: dict[str, str] = {}
    for spec in _SPECS:
        for key in (spec.name, *spec.aliases):
            low = key.lower()
            if low in table and table[low] != spec.name:
                raise RuntimeError(f"alias {key!r} maps to two variables")
            table[low] = spec.name
    return table


ALIASES: Final[Mapping[str, str]] = MappingProxyType(_build_aliases())
"""Lower-case name or alias -> canonical name (canonical names themselves included)."""


def canonical_name(name: str) -> str | None:
    """The canonical name for a (case-insensitive) name or alias, None when unknown."""
    found = ALIASES.get(name)
    if found is None:
        found = ALIASES.get(name.lower())
    return found


def unit_converter(name: str, unit: str) -> Callable[[float], float] | None:
    """The function converting `unit` into the canonical unit of `name`, None when unknown."""
    spec = VARIABLES.get(name)
    if spec is None:
        return None
    return spec.conversions.get(normalise_unit(unit))
