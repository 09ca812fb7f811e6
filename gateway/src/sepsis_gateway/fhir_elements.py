"""The elements of a FHIR R4 Bundle as the conversion reads them (`sepsis_gateway.fhir`).

Validation of the Bundle with `fhir.resources` (R4B models) and the errors it gives, named by
their FHIR path; codings, times, UCUM units and quantities; what the reader of a Bundle
collects (points, history, notes, what was used and what was not). Every error is collected
with the element's path and the resource, so one 422 names them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.quantity import Quantity
from pydantic import ValidationError

from sepsis_gateway.fhir_codes import (
    LOINC_SYSTEM,
    OBSERVATION_CATEGORY_SYSTEM,
    UCUM_SYSTEM,
    VASOPRESSOR_RXNORM,
    VASOPRESSOR_WORDS,
    Target,
    oxygen_saturation_target,
)
from sepsis_shared.errors import InvalidInput
from sepsis_shared.variables import VARIABLES

BUNDLE_TYPES: Final = ("collection", "searchset", "transaction")


MAX_ERRORS: Final = 20

# Unit spellings found in `Quantity.unit` (the human-readable unit) that are not UCUM codes,
# and the UCUM code each means. Only `unit` is read this way; a `code` must be UCUM.


UNIT_SPELLINGS: Final = {
    "mmhg": "mm[Hg]",
    "bpm": "/min",
    "beats/min": "/min",
    "breaths/min": "/min",
    "°c": "Cel",
    "degc": "Cel",
    "c": "Cel",
    "celsius": "Cel",
    "°f": "[degF]",
    "degf": "[degF]",
    "f": "[degF]",
    "fahrenheit": "[degF]",
    "mg/dl": "mg/dL",
    "mmol/l": "mmol/L",
    "umol/l": "umol/L",
    "µmol/l": "umol/L",
    "meq/l": "meq/L",
    "g/dl": "g/dL",
    "g/l": "g/L",
    "u/l": "U/L",
    "iu/l": "[IU]/L",
    "k/ul": "10*3/uL",
    "10^3/ul": "10*3/uL",
    "10^9/l": "10*9/L",
    "x10^9/l": "10*9/L",
    "ng/ml": "ng/mL",
    "ng/l": "ng/L",
    "l/min": "L/min",
    "sec": "s",
    "seconds": "s",
}


@dataclass(slots=True)
class Point:
    variable: str
    ts: datetime
    value: float
    location: str


@dataclass(slots=True)
class Reader:
    errors: list[dict[str, str]] = field(default_factory=list)
    used: list[dict[str, Any]] = field(default_factory=list)
    not_used: list[dict[str, Any]] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    medications: list[str] = field(default_factory=list)
    notes: list[tuple[datetime | None, str, str]] = field(default_factory=list)

    def err(self, path: str, resource: str, message: str) -> None:
        self.errors.append({"field": path, "resource": resource, "message": message})

    def skip(self, resource: str, path: str, reason: str, **extra: Any) -> None:
        self.not_used.append({"resource": resource, "path": path, **extra, "reason": reason})


def invalid(errors: Sequence[dict[str, str]]) -> InvalidInput:
    shown = errors[:MAX_ERRORS]
    first = shown[0]
    more = f" ({len(errors)} problems in all)" if len(errors) > 1 else ""
    return InvalidInput(
        f"Invalid FHIR Bundle: {first['field']}: {first['message']}{more}", details=list(shown)
    )


def loc_path(prefix: str, loc: Iterable[int | str]) -> str:
    out = prefix
    for part in loc:
        if part == "root":  # pydantic's name for a value that is not an object at all
            continue
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate_bundle(raw: object) -> Bundle:
    if not isinstance(raw, dict):
        raise invalid(
            [{"field": "Bundle", "resource": "Bundle", "message": "expected a JSON object"}]
        )
    if raw.get("resourceType") != "Bundle":
        raise invalid(
            [
                {
                    "field": "resourceType",
                    "resource": str(raw.get("resourceType")),
                    "message": 'expected a FHIR R4 Bundle ("resourceType": "Bundle")',
                }
            ]
        )
    btype = raw.get("type")
    if btype not in BUNDLE_TYPES:
        raise invalid(
            [
                {
                    "field": "Bundle.type",
                    "resource": "Bundle",
                    "message": f"expected one of {', '.join(BUNDLE_TYPES)}, got {btype!r}",
                }
            ]
        )
    entries = raw.get("entry")
    errors: list[dict[str, str]] = []
    if isinstance(entries, list):
        for i, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            name = resource.get("resourceType")
            try:
                get_fhir_model_class(str(name))
            except (KeyError, ValueError, LookupError):
                errors.append(
                    {
                        "field": f"Bundle.entry[{i}].resource.resourceType",
                        "resource": str(name),
                        "message": f"{name!r} is not a FHIR R4 resource type",
                    }
                )
    if errors:
        raise invalid(errors)
    try:
        return Bundle.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False)[:MAX_ERRORS]:
            loc = e["loc"]
            resource = "Bundle"
            if len(loc) >= 3 and loc[0] == "entry" and isinstance(loc[1], int):
                # the entry and its resource may be anything at all here: it failed validation
                entry = entries[loc[1]] if isinstance(entries, list) else None
                res = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(res, dict):
                    resource = ref_text(res.get("resourceType"), res.get("id"), None) or resource
            problems.append(
                {"field": loc_path("Bundle", loc), "resource": resource, "message": e["msg"]}
            )
        raise invalid(problems) from None


def ref_text(rtype: object, rid: object, full_url: str | None) -> str:
    if rtype and rid:
        return f"{rtype}/{rid}"
    return full_url or str(rtype or "")


def codes_in(concept: CodeableConcept | None, system: str) -> list[str]:
    if concept is None:
        return []
    return [c.code for c in concept.coding or [] if c.system == system and c.code]


def concept_text(concept: CodeableConcept | None) -> str | None:
    if concept is None:
        return None
    if concept.text:
        return str(concept.text)
    for coding in concept.coding or []:
        if coding.display:
            return str(coding.display)
    for coding in concept.coding or []:
        if coding.code:
            return str(coding.code)
    return None


def first_coding(concept: CodeableConcept | None) -> dict[str, str]:
    for coding in (concept.coding if concept else None) or []:
        out = {"code": str(coding.code)} if coding.code else {}
        if coding.system:
            out["system"] = str(coding.system)
        if coding.display:
            out["display"] = str(coding.display)
        return out
    text = concept_text(concept)
    return {"display": text} if text else {}


def instant(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return None


def effective_time(resource: Any, path: str, ref: str, reader: Reader) -> datetime | None:
    """The time a resource describes; an error when it has none or only a date."""
    for name in ("effectiveDateTime", "effectiveInstant"):
        value = getattr(resource, name, None)
        if value is not None:
            if isinstance(value, datetime):
                return value.astimezone(UTC)
            reader.err(f"{path}.{name}", ref, "a date without a time of day cannot be placed")
            return None
    period: Period | None = getattr(resource, "effectivePeriod", None)
    if period is not None:
        for name in ("end", "start"):
            value = getattr(period, name)
            if isinstance(value, datetime):
                return value.astimezone(UTC)
            if value is not None:
                reader.err(f"{path}.effectivePeriod.{name}", ref, "a date without a time of day")
                return None
    issued = instant(getattr(resource, "issued", None))
    if issued is not None:
        reader.said.append(f"{ref}: no effective time; its issued time was used")
        return issued
    reader.err(f"{path}.effective[x]", ref, "no effectiveDateTime, effectivePeriod or issued time")
    return None


def ucum_code(q: Quantity) -> tuple[str | None, str]:
    """The UCUM code of a quantity and the element it was read from."""
    if q.code and (q.system is None or q.system == UCUM_SYSTEM):
        return str(q.code), "code"
    if q.unit:
        text = str(q.unit).strip()
        return UNIT_SPELLINGS.get(text.lower(), text), "unit"
    return None, "code"


def quantity_value(
    q: Quantity | None,
    integer: int | None,
    target: Target,
    path: str,
    ref: str,
    reader: Reader,
) -> tuple[float, str | None, float, str | None] | None:
    """(value in the variable's unit, UCUM unit sent, value sent, comparator), or None after
    an error."""
    spec = VARIABLES[target.variable]
    if integer is not None:
        if not target.unitless:
            reader.err(
                f"{path}.valueInteger",
                ref,
                f"{target.variable} needs a Quantity with a UCUM unit ({spec.unit})",
            )
            return None
        return float(integer), None, float(integer), None
    assert q is not None
    if q.value is None:
        reader.err(f"{path}.valueQuantity.value", ref, "a Quantity without a value")
        return None
    sent = float(Decimal(q.value))
    unit, element = ucum_code(q)
    if unit is None:
        if target.unitless:
            return sent, None, sent, q.comparator
        reader.err(
            f"{path}.valueQuantity.code",
            ref,
            f"no unit for {target.variable}; send a UCUM unit ({', '.join(sorted(target.units))})",
        )
        return None
    convert = target.units.get(unit)
    if convert is None:
        reader.err(
            f"{path}.valueQuantity.{element}",
            ref,
            f"unit {unit!r} cannot be converted to {spec.unit or 'a plain number'} for "
            f"{target.variable}; UCUM units accepted: {', '.join(sorted(target.units))}",
        )
        return None
    return convert(sent), unit, sent, q.comparator


def category_codes(categories: Sequence[CodeableConcept] | None) -> list[str]:
    return [
        c for concept in categories or [] for c in codes_in(concept, OBSERVATION_CATEGORY_SYSTEM)
    ]


def all_codes(concept: CodeableConcept | None) -> list[str]:
    if concept is None:
        return []
    return [str(c.code) for c in concept.coding or [] if c.code]


def component_target(comp: Any, laboratory: bool) -> Target | None:
    for code in codes_in(comp.code, LOINC_SYSTEM):
        target = oxygen_saturation_target(code, laboratory=laboratory)
        if target is not None:
            return target
    return None


def effective_time_or_none(resource: Any) -> datetime | None:
    for name in ("effectiveDateTime", "effectiveInstant", "issued"):
        value = instant(getattr(resource, name, None))
        if value is not None:
            return value
    period = getattr(resource, "effectivePeriod", None)
    return instant(period.end or period.start) if period is not None else None


def is_vasopressor(rxnorm: Sequence[str], text: str) -> bool:
    if any(code in VASOPRESSOR_RXNORM for code in rxnorm):
        return True
    low = text.lower()
    return any(word in low for word in VASOPRESSOR_WORDS)


def age_at(birth: object, at: datetime, said: list[str], ref: str) -> int | None:
    if isinstance(birth, date):
        born = birth
    elif isinstance(birth, str):
        parts = [int(p) for p in birth.split("-")]
        born = date(parts[0], parts[1] if len(parts) > 1 else 1, 1)
        said.append(
            f"{ref}: birthDate {birth} has no day; the age is counted from {born.isoformat()}"
        )
    else:
        return None
    day = at.date()
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")
