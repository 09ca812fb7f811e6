"""OpenAPI description of the patient request bodies (both forms) and their examples.

The routes read the raw JSON body themselves (parsing is done by `sepsis_shared.patient`, which
re-exports everything here), so they document the body with `openapi_extra`. The limits quoted
in the schema are the parser's own (`sepsis_shared.patient_types`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from sepsis_shared.patient_types import (
    MAX_HISTORY_ITEM_CHARS,
    MAX_HISTORY_ITEMS,
    MAX_INT_PATIENT_ID,
    MAX_NOTES_CHARS,
    MAX_PATIENT_ID_CHARS,
    MAX_POINTS_PER_VARIABLE,
)
from sepsis_shared.variables import (
    BINARY_VARIABLES,
    DEMOGRAPHICS,
    SERIES_VARIABLES,
    VARIABLES,
    VariableSpec,
)

__all__ = [
    "FLAT_EXAMPLE",
    "SERIES_EXAMPLE",
    "STRUCTURED_EXAMPLE",
    "patient_batch_request_openapi",
    "patient_request_openapi",
    "patient_schema",
]


FLAT_EXAMPLE: Final[Mapping[str, Any]] = {
    "HR": 110,
    "SBP": 95,
    "DBP": 60,
    "Temp": 38.5,
    "Resp": 22,
    "O2Sat": 94,
    "WBC": 15.5,
    "Lactate": 2.5,
    "Creatinine": 1.8,
    "Age": 65,
    "Gender": 1,
}
"""The original deployment guide's `/classify` request (DESIGN §8)."""

STRUCTURED_EXAMPLE: Final[Mapping[str, Any]] = {
    "patient_id": "TEST001",
    "vitals": {"HR": 118, "SBP": 88, "Temp": 38.9, "Lactate": 3.2, "WBC": 18.5},
    "notes": "Patient appears lethargic, skin mottled on lower extremities",
}
"""The original deployment guide's `/genai-classify` request (DESIGN §8)."""

SERIES_EXAMPLE: Final[Mapping[str, Any]] = {
    "patient_id": "ICU-7-0042",
    "vitals": {
        "HR": [{"val": 118, "ts": "2026-02-07T18:30"}, {"val": 104, "ts": "2026-02-07T17:30"}],
        "SpO2": [92, 94, 95],
        "RR": 24,
        "Temp": 101.8,
        "Lactate": 3.1,
        "GCS": 14,
        "Age": 71,
        "Gender": "female",
    },
    "units": {"Temp": "degF"},
    "notes": "New confusion since this afternoon.",
    "patient_history": {"conditions": ["type 2 diabetes"], "medications": ["metformin"]},
}


def _point_schema(value: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["val", "ts"],
        "properties": {
            "val": {**value, "description": "The value."},
            "ts": {
                "type": "string",
                "format": "date-time",
                "description": "ISO 8601; a time without offset is UTC.",
            },
        },
        "additionalProperties": False,
    }


def _number_schema(spec: VariableSpec) -> dict[str, Any]:
    """One value of the variable as the parser takes it. No minimum/maximum: a value outside
    the range is not refused but left out of the assessment and listed in `data_quality` (or
    read another way, such as FiO2 20 as 20 %)."""
    if spec.name == "Consciousness":
        return {
            "type": ["number", "string"],
            "description": "ACVPU: A, C, V, P or U, or a word such as alert or confusion "
            "(any case), or its code 0-4.",
        }
    if spec.name == "Infection":
        return {
            "type": ["number", "string"],
            "description": "none, suspected or confirmed (any case), or its code 0-2.",
        }
    if spec.name in BINARY_VARIABLES:
        return {"type": ["number", "boolean"], "description": "1 or true: yes; 0 or false: no."}
    return {"type": "number"}


def _value_schema(spec: VariableSpec) -> dict[str, Any]:
    unit = f" ({spec.unit})" if spec.unit else ""
    number = _number_schema(spec)
    aliases = f" Also accepted as: {', '.join(spec.aliases)}." if spec.aliases else ""
    return {
        "description": f"{spec.description}{unit}, used {spec.range_text} (a value outside it "
        f"is left out and listed in `data_quality`); null: not sent.{aliases}",
        "oneOf": [
            {"type": "null"},
            number,
            {
                "type": "array",
                "description": "One value per hour, newest first.",
                "items": number,
                "minItems": 1,
                "maxItems": MAX_POINTS_PER_VARIABLE,
            },
            {
                "type": "array",
                "description": "Time series in any order; sorted by `ts`.",
                "items": _point_schema(number),
                "minItems": 1,
                "maxItems": MAX_POINTS_PER_VARIABLE,
            },
        ],
    }


def _demographic_schema(spec: VariableSpec) -> dict[str, Any]:
    unit = f" ({spec.unit})" if spec.unit else ""
    if spec.name == "Gender":
        return {
            "description": "Sex: 0 = female, 1 = male, or the words female/male (f/m); null: "
            "not sent.",
            "oneOf": [
                {"type": "null"},
                {"type": "integer", "enum": [0, 1]},
                {"type": "string", "enum": ["female", "male", "f", "m"]},
            ],
        }
    return {
        "type": ["number", "null"],
        "description": f"{spec.description}{unit}, used {spec.range_text} (a value outside it "
        "is left out and listed in `data_quality`); null: not sent.",
    }


def _meta_properties() -> dict[str, Any]:
    return {
        "patient_id": {
            "type": ["string", "integer", "null"],
            "minLength": 1,
            "maxLength": MAX_PATIENT_ID_CHARS,
            "minimum": -(MAX_INT_PATIENT_ID - 1),
            "maximum": MAX_INT_PATIENT_ID - 1,
            "description": "The client's identifier (a string, or a whole number echoed back as "
            "a string), echoed back; never logged. null: none.",
        },
        "notes": {
            "type": ["string", "null"],
            "maxLength": MAX_NOTES_CHARS,
            "description": "Free-text nursing notes (used by the GenAI pathway). null: none.",
        },
        "patient_history": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                name: {
                    "type": ["array", "null"],
                    "maxItems": MAX_HISTORY_ITEMS,
                    "items": {"type": "string", "maxLength": MAX_HISTORY_ITEM_CHARS},
                }
                for name in ("conditions", "medications")
            },
        },
        "units": {
            "type": ["object", "null"],
            "description": (
                "Units of values not sent in the canonical unit, by variable: Temp degF; "
                "Lactate mg/dL; Creatinine, Bilirubin_total, Bilirubin_direct umol/L; "
                "Glucose mmol/L; FiO2 %; Hgb g/L. An unknown unit is a 422; null: none."
            ),
            "additionalProperties": {"type": "string"},
            "example": {"Temp": "degF", "Lactate": "mg/dL"},
        },
    }


def _patient_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    series = {n: _value_schema(VARIABLES[n]) for n in VARIABLES if n in SERIES_VARIABLES}
    demo = {n: _demographic_schema(VARIABLES[n]) for n in DEMOGRAPHICS}
    meta = _meta_properties()
    flat = {
        "title": "Flat patient",
        "type": "object",
        "description": (
            "The original system's form: variables at the top level. Names are the PhysioNet "
            "2019 ones (case-insensitive, common aliases accepted); units as listed."
        ),
        "properties": {**series, **demo, **meta},
        "additionalProperties": False,
    }
    vitals = {
        "type": ["object", "null"],
        "description": "Vital signs, labs and bedside inputs by name (and optionally the "
        "demographics).",
        "properties": {**series, **demo},
        "additionalProperties": False,
    }
    structured = {
        "title": "Structured patient",
        "type": "object",
        "required": ["vitals"],
        "properties": {
            **meta,
            "vitals": vitals,
            "labs": {
                "type": ["object", "null"],
                "description": "Optional second map, e.g. for laboratory values; the same names "
                "and value forms as `vitals`. null: none.",
            },
            **demo,
        },
        "additionalProperties": False,
    }
    return flat, structured


def patient_schema() -> dict[str, Any]:
    """JSON schema of one patient: a oneOf of the flat and the structured forms."""
    flat, structured = _patient_schemas()
    return {"oneOf": [flat, structured]}


_EXAMPLES: Final[Mapping[str, Any]] = {
    "flat": {"summary": "Flat form (original system)", "value": FLAT_EXAMPLE},
    "structured": {"summary": "Structured form with notes", "value": STRUCTURED_EXAMPLE},
    "series": {"summary": "Time series, lists, aliases and units", "value": SERIES_EXAMPLE},
}


def _fresh(doc: dict[str, Any]) -> dict[str, Any]:
    # FastAPI merges openapi_extra into its document: hand out copies, never shared constants.
    return copy.deepcopy(doc)


def patient_request_openapi() -> dict[str, Any]:
    """The `openapi_extra` of a single-patient route: its request body and examples."""
    return _fresh(
        {
            "requestBody": {
                "required": True,
                "description": "One patient, in the flat or the structured form.",
                "content": {
                    "application/json": {
                        "schema": patient_schema(),
                        "examples": dict(_EXAMPLES),
                    }
                },
            }
        }
    )


def patient_batch_request_openapi(max_items: int) -> dict[str, Any]:
    """The `openapi_extra` of a batch route: `{"patients": [...]}` of up to `max_items`."""
    return _fresh(
        {
            "requestBody": {
                "required": True,
                "description": (
                    f"Up to {max_items} patients, each in either form. A bad patient yields an "
                    "error entry at its index; the others are still assessed."
                ),
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["patients"],
                            "properties": {
                                "patients": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": max_items,
                                    "items": patient_schema(),
                                }
                            },
                            "additionalProperties": False,
                        },
                        "examples": {
                            "mixed": {
                                "summary": "Both forms in one batch",
                                "value": {"patients": [FLAT_EXAMPLE, STRUCTURED_EXAMPLE]},
                            }
                        },
                    }
                },
            }
        }
    )
