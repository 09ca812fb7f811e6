"""What the FHIR input understands: LOINC codes, UCUM units and medication codes.

The name beside each LOINC code is its long common name in the LOINC table (Regenstrief,
loinc.org), shortened; its property decides the units taken (a mass concentration is not a
substance concentration). Where each was checked: codes marked "vital-signs profile" are those
of the FHIR R4 Vital Signs profile (hl7.org/fhir/R4/observation-vitalsigns.html); the others
against published copies of their LOINC entries (LOINC code pages, laboratory test catalogues
quoting the code with its name, the HL7 and US Core examples using it). The loinc.org
database itself could not be queried from here; the codes whose sources disagree or are few
(19889-5, 32693-4) say so where they are defined.

Units are UCUM codes (unitsofmeasure.org; case-sensitive, e.g. `mm[Hg]`, `Cel`, `[degF]`,
`10*3/uL`). A conversion between units of the same kind is UCUM's own definition (`[degF]`,
`kPa` against `mm[Hg]`, `g/L` against `g/dL`); one between a mass and a substance
concentration (mmol/L against mg/dL) needs the molar mass of the analyte, which UCUM leaves to
the user: each factor names the molar mass it comes from. Every value is converted into the
unit of `sepsis_shared.variables`, the unit the assessment is defined in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

LOINC_SYSTEM: Final = "http://loinc.org"
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"
RXNORM_SYSTEM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED_SYSTEM: Final = "http://snomed.info/sct"
OBSERVATION_CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/observation-category"

Convert = Callable[[float], float]


def _same(x: float) -> float:
    return x


def _factor(k: float) -> Convert:
    def convert(x: float) -> float:
        return x * k

    return convert


def _f_to_c(x: float) -> float:
    # UCUM: [degF] is defined as 5/9 K with the offset of 459.67 °F; in Celsius that is this.
    return (x - 32.0) * 5.0 / 9.0


# UCUM: mm[Hg] = 133.322 Pa (exactly 13.5951 g/cm3 mercury x 9.80665 m/s2), so 1 kPa is
# 1000 / 133.322 mmHg.
_KPA_TO_MMHG: Final = 1000.0 / 133.322

_PRESSURE: Final = {"mm[Hg]": _same, "kPa": _factor(_KPA_TO_MMHG)}
_PER_MIN: Final = {"/min": _same, "{beats}/min": _same, "{breaths}/min": _same, "1/min": _same}
_PERCENT: Final = {"%": _same}
# mEq/L equals mmol/L for a monovalent ion (UCUM's eq is mol times the charge).
_MONOVALENT: Final = {"mmol/L": _same, "meq/L": _same, "m[eq]/L": _same}
# Enzyme activities: the international unit of an enzyme is 1 umol/min (UCUM: U); 1 ukat/L
# (1 umol/s) is 60 U/L. [IU]/L is how many laboratories label the same U/L.
_ENZYME: Final = {"U/L": _same, "[IU]/L": _same, "ukat/L": _factor(60.0)}
_COUNT_PER_UL: Final = {
    "10*3/uL": _same,
    "10*9/L": _same,
    "/nL": _same,
    "10*3/mm3": _same,
    "/uL": _factor(1e-3),
    "/mm3": _factor(1e-3),
}


def _mass(
    molar_mass_g_mol: float, *, extra: Mapping[str, Convert] | None = None
) -> dict[str, Convert]:
    """mg/dL is the target; mmol/L and umol/L are converted with the analyte's molar mass
    (1 mmol/L = M/10 mg/dL for M in g/mol)."""
    per_mmol = molar_mass_g_mol / 10.0
    table: dict[str, Convert] = {
        "mg/dL": _same,
        "mmol/L": _factor(per_mmol),
        "umol/L": _factor(per_mmol / 1000.0),
        "g/L": _factor(100.0),
    }
    table.update(extra or {})
    return table


@dataclass(frozen=True, slots=True)
class Target:
    """Where one LOINC code goes: a variable of the assessment and the units it accepts."""

    variable: str
    name: str  # the LOINC long common name, shortened
    units: Mapping[str, Convert]
    unitless: bool = False  # a score or a pH: a quantity without any unit is taken as is


def _t(variable: str, name: str, units: Mapping[str, Convert], *, unitless: bool = False) -> Target:
    return Target(variable, name, MappingProxyType(dict(units)), unitless)


# LOINC code -> target. The PhysioNet 2019 names are those of `sepsis_shared.variables`.
LOINC: Final[Mapping[str, Target]] = MappingProxyType(
    {
        # -- vital signs --------------------------------------------------------------------
        "8867-4": _t("HR", "Heart rate (vital-signs profile)", _PER_MIN),
        "59408-5": _t(
            "O2Sat",
            "Oxygen saturation in Arterial blood by Pulse oximetry (vital-signs profile)",
            _PERCENT,
        ),
        # 2708-6 is "Oxygen saturation in Arterial blood": the R4 vital-signs profile codes a
        # pulse oximetry reading with it (beside 59408-5), a blood gas reports SaO2 with it.
        # The category of the Observation decides: see `oxygen_saturation_target`.
        "2708-6": _t("O2Sat", "Oxygen saturation in Arterial blood", _PERCENT),
        "8310-5": _t(
            "Temp",
            "Body temperature (vital-signs profile)",
            {"Cel": _same, "[degF]": _f_to_c},
        ),
        "8480-6": _t("SBP", "Systolic blood pressure (vital-signs profile)", _PRESSURE),
        "8462-4": _t("DBP", "Diastolic blood pressure (vital-signs profile)", _PRESSURE),
        "8478-0": _t("MAP", "Mean blood pressure", _PRESSURE),
        "9279-1": _t("Resp", "Respiratory rate (vital-signs profile)", _PER_MIN),
        # End-tidal CO2: 19891-1 is the partial pressure at end expiration; 19889-5 is what
        # most monitors send for EtCO2 (the list, HL7 device mappings), though some
        # references give it as a volume fraction. Both are taken as pressures only: a % value
        # cannot become mmHg without the barometric pressure, and is refused by its unit.
        "19891-1": _t(
            "EtCO2",
            "Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration",
            _PRESSURE,
        ),
        "19889-5": _t("EtCO2", "Carbon dioxide at end expiration in Exhaled gas", _PRESSURE),
        "9269-2": _t(
            "GCS", "Glasgow coma score total", {"{score}": _same, "1": _same}, unitless=True
        ),
        # -- oxygen ---------------------------------------------------------------------------
        "3150-0": _t(
            "FiO2",
            "Inhaled oxygen concentration",
            # FiO2 is a fraction in the assessment; LOINC's example unit for 3150-0 is %.
            {"%": _factor(0.01), "1": _same, "{ratio}": _same, "L/L": _same},
        ),
        # Inhaled oxygen flow rate (the pulse-oximetry profiles' component): any flow above
        # zero means supplemental oxygen; see `fhir.py`.
        "3151-8": _t("SupplementalO2", "Inhaled oxygen flow rate", {"L/min": _same}),
        # -- blood gas ------------------------------------------------------------------------
        "1925-7": _t("BaseExcess", "Base excess in Arterial blood by calculation", _MONOVALENT),
        "1960-4": _t("HCO3", "Bicarbonate [Moles/volume] in Arterial blood", _MONOVALENT),
        "2744-1": _t("pH", "pH of Arterial blood", {"[pH]": _same, "1": _same}, unitless=True),
        "11558-4": _t("pH", "pH of Blood", {"[pH]": _same, "1": _same}, unitless=True),
        "2019-8": _t("PaCO2", "Carbon dioxide [Partial pressure] in Arterial blood", _PRESSURE),
        "2703-7": _t("PaO2", "Oxygen [Partial pressure] in Arterial blood", _PRESSURE),
        # -- chemistry ------------------------------------------------------------------------
        "1920-8": _t(
            "AST",
            "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
            _ENZYME,
        ),
        # Urea nitrogen: 1 mmol/L of urea carries 2 N, 2 x 14.007 = 28.014 g/mol.
        "3094-0": _t("BUN", "Urea nitrogen [Mass/volume] in Serum or Plasma", _mass(28.014)),
        "6299-2": _t("BUN", "Urea nitrogen [Mass/volume] in Blood", _mass(28.014)),
        "6768-6": _t(
            "Alkalinephos",
            "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
            _ENZYME,
        ),
        # Calcium 40.078 g/mol; 2 mEq per mmol (divalent).
        "17861-6": _t(
            "Calcium",
            "Calcium [Mass/volume] in Serum or Plasma",
            _mass(40.078, extra={"meq/L": _factor(40.078 / 20.0)}),
        ),
        "2000-8": _t(
            "Calcium",
            "Calcium [Moles/volume] in Serum or Plasma",
            _mass(40.078, extra={"meq/L": _factor(40.078 / 20.0)}),
        ),
        "2075-0": _t("Chloride", "Chloride [Moles/volume] in Serum or Plasma", _MONOVALENT),
        # Creatinine 113.12 g/mol: 1 mg/dL = 88.4 umol/L.
        "2160-0": _t("Creatinine", "Creatinine [Mass/volume] in Serum or Plasma", _mass(113.12)),
        # Bilirubin 584.66 g/mol: 1 mg/dL = 17.1 umol/L.
        "1968-7": _t(
            "Bilirubin_direct",
            "Bilirubin.direct [Mass/volume] in Serum or Plasma",
            _mass(584.66),
        ),
        "1975-2": _t(
            "Bilirubin_total",
            "Bilirubin.total [Mass/volume] in Serum or Plasma",
            _mass(584.66),
        ),
        # Glucose 180.16 g/mol: 1 mmol/L = 18.016 mg/dL.
        "2345-7": _t("Glucose", "Glucose [Mass/volume] in Serum or Plasma", _mass(180.16)),
        "2339-0": _t("Glucose", "Glucose [Mass/volume] in Blood", _mass(180.16)),
        # Lactate is held in mmol/L; 90.08 g/mol: 1 mmol/L = 9.008 mg/dL.
        "2524-7": _t(
            "Lactate",
            "Lactate [Moles/volume] in Serum or Plasma",
            {"mmol/L": _same, "meq/L": _same, "mg/dL": _factor(1.0 / 9.008)},
        ),
        # 32693-4 as several laboratory catalogues and FHIR examples use it for blood lactate.
        "32693-4": _t(
            "Lactate",
            "Lactate [Moles/volume] in Blood",
            {"mmol/L": _same, "meq/L": _same, "mg/dL": _factor(1.0 / 9.008)},
        ),
        # Magnesium 24.305 g/mol; 2 mEq per mmol.
        "19123-9": _t(
            "Magnesium",
            "Magnesium [Mass/volume] in Serum or Plasma",
            _mass(24.305, extra={"meq/L": _factor(24.305 / 20.0)}),
        ),
        # Phosphate is reported as phosphorus, 30.974 g/mol.
        "2777-1": _t("Phosphate", "Phosphate [Mass/volume] in Serum or Plasma", _mass(30.974)),
        "2823-3": _t("Potassium", "Potassium [Moles/volume] in Serum or Plasma", _MONOVALENT),
        # -- cardiac, haematology, coagulation --------------------------------------------------
        "10839-9": _t(
            "TroponinI",
            "Troponin I.cardiac [Mass/volume] in Serum or Plasma",
            {"ng/mL": _same, "ug/L": _same, "ng/L": _factor(1e-3), "pg/mL": _factor(1e-3)},
        ),
        "42757-5": _t(
            "TroponinI",
            "Troponin I.cardiac [Mass/volume] in Blood",
            {"ng/mL": _same, "ug/L": _same, "ng/L": _factor(1e-3), "pg/mL": _factor(1e-3)},
        ),
        "4544-3": _t(
            "Hct",
            "Hematocrit [Volume Fraction] of Blood by Automated count",
            {"%": _same, "L/L": _factor(100.0), "1": _factor(100.0)},
        ),
        "20570-8": _t(
            "Hct",
            "Hematocrit [Volume Fraction] of Blood",
            {"%": _same, "L/L": _factor(100.0), "1": _factor(100.0)},
        ),
        # Haemoglobin in mmol/L (as Dutch laboratories report it) counts the monomer,
        # 16.114 kg/mol: 1 mmol/L = 1.6114 g/dL.
        "718-7": _t(
            "Hgb",
            "Hemoglobin [Mass/volume] in Blood",
            {"g/dL": _same, "g/L": _factor(0.1), "mmol/L": _factor(1.6114)},
        ),
        "14979-9": _t(
            "PTT",
            "aPTT in Platelet poor plasma by Coagulation assay",
            {"s": _same},
        ),
        "26464-8": _t("WBC", "Leukocytes [#/volume] in Blood", _COUNT_PER_UL),
        "6690-2": _t("WBC", "Leukocytes [#/volume] in Blood by Automated count", _COUNT_PER_UL),
        "3255-7": _t(
            "Fibrinogen",
            "Fibrinogen [Mass/volume] in Platelet poor plasma by Coagulation assay",
            {"mg/dL": _same, "g/L": _factor(100.0)},
        ),
        "26515-7": _t("Platelets", "Platelets [#/volume] in Blood", _COUNT_PER_UL),
        "777-3": _t("Platelets", "Platelets [#/volume] in Blood by Automated count", _COUNT_PER_UL),
    }
)

BP_PANEL: Final = "85354-9"
"""Blood pressure panel with all children optional (vital-signs profile): its components carry
8480-6 and 8462-4 (and sometimes 8478-0)."""

SAO2_TARGET: Final = _t("SaO2", "Oxygen saturation in Arterial blood", _PERCENT)


def oxygen_saturation_target(code: str, *, laboratory: bool) -> Target | None:
    """2708-6 in a laboratory Observation is a blood gas SaO2, else a pulse oximetry SpO2."""
    if code == "2708-6" and laboratory:
        return SAO2_TARGET
    return LOINC.get(code)


# Vasopressors and inotropes (SOFA cardiovascular), by RxNorm ingredient (RxNav, the
# ingredient's RXCUI) and by name; a MedicationAdministration of one of them in progress is
# `Vasopressors` = 1.
VASOPRESSOR_RXNORM: Final[Mapping[str, str]] = MappingProxyType(
    {
        "7512": "norepinephrine",
        "3992": "epinephrine",
        "11149": "vasopressin",
        "3628": "dopamine",
        "8163": "phenylephrine",
        "3616": "dobutamine",
    }
)
VASOPRESSOR_WORDS: Final = (
    "norepinephrine",
    "noradrenaline",
    "levophed",
    "epinephrine",
    "adrenaline",
    "vasopressin",
    "dopamine",
    "phenylephrine",
    "dobutamine",
)
