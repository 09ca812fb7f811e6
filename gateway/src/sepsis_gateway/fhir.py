"""A FHIR R4 Bundle turned into the patient request both pathways already take.

The Bundle is parsed with `fhir.resources` (its R4B models: R4B is the point release of R4,
4.3.0, and the resources read here, Bundle, Patient, Observation, Condition,
MedicationStatement, MedicationAdministration, Medication and DocumentReference, have the same
elements as in R4 4.0.1), then read entry by entry:

- `Observation` with a LOINC code of `fhir_codes.LOINC` (or components with such codes, as the
  blood-pressure panel 85354-9 has) becomes one time-series point of its variable at its
  `effectiveDateTime`, `effectiveInstant` or `effectivePeriod.end` (`.start` when the period
  is open), converted into the variable's unit from its UCUM unit. A unit that cannot be
  converted is a 422 naming the resource and the path of the unit.
- `status`: final, amended, corrected and preliminary results are used; entered-in-error,
  cancelled and registered (no result yet) are left out and listed; unknown is used and said.
- `dataAbsentReason`: the value is missing for that reason (FHIR obs-6: never with a value);
  the observation is listed with the reason and not used.
- `interpretation` (H, L, HH, LL, A, AA, ...) is the laboratory's reading of the value: it
  never changes the value, and is listed beside the value used. A `comparator` (`<0.01`) is
  used at its bound and said.
- `Patient`: the age in whole years at the newest observation, from `birthDate` (a year-only
  or year-month date is taken from its first day, and said); sex from `gender` (other and
  unknown are not guessed).
- `Condition` (not refuted, not entered in error, not resolved) and `MedicationStatement`
  (active, intended, on-hold) become the history; a `MedicationAdministration` of a
  vasopressor or inotrope in progress is `Vasopressors` = 1 from its start (and 0 from the end
  of a completed one).
- Nursing notes: `DocumentReference` text attachments (plain text, inline) and the text of an
  Observation whose value is a string, or its `note`, joined oldest first.

Everything else (other resource types, codes the assessment does not use, values that are not
numbers) is listed back under `not_used` with the reason, never dropped in silence. Resources
about another patient than the Bundle's Patient are refused.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference

from sepsis_gateway.fhir_codes import (
    BP_PANEL,
    LOINC_SYSTEM,
    RXNORM_SYSTEM,
    Target,
    oxygen_saturation_target,
)
from sepsis_gateway.fhir_elements import (
    Point,
    Reader,
    age_at,
    all_codes,
    category_codes,
    codes_in,
    component_target,
    concept_text,
    effective_time,
    effective_time_or_none,
    first_coding,
    instant,
    invalid,
    is_vasopressor,
    iso,
    quantity_value,
    ref_text,
    validate_bundle,
)
from sepsis_shared.patient_types import MAX_NOTES_CHARS
from sepsis_shared.variables import VARIABLES

__all__ = ["FhirConversion", "bundle_to_patient"]


_USED_STATUSES: Final = frozenset({"final", "amended", "corrected", "preliminary", "unknown"})


_LEFT_OUT_STATUSES: Final = {
    "entered-in-error": "entered in error",
    "cancelled": "cancelled",
    "registered": "registered, no result yet",
}


_CONDITION_LEFT_OUT: Final = frozenset({"refuted", "entered-in-error"})


_CONDITION_INACTIVE: Final = frozenset({"inactive", "resolved", "remission"})


_MED_STATEMENT_USED: Final = frozenset({"active", "intended", "on-hold"})


_MED_ADMIN_LEFT_OUT: Final = frozenset({"not-done", "entered-in-error"})


_CRITICAL_INTERPRETATIONS: Final = frozenset({"HH", "LL", "AA", "HU", "LU"})


@dataclass(frozen=True, slots=True)
class FhirConversion:
    """The patient request built from a Bundle, what was done with each entry, and where in
    the Bundle each request field came from (for the answer's `data_quality` and errors)."""

    request: dict[str, Any]
    report: dict[str, Any]
    sources: dict[str, str]


class _Patients:
    """The Bundle's Patient and the references that point at it."""

    def __init__(self) -> None:
        self.refs: set[str] = set()
        self.label: str | None = None
        self.seen_subject: str | None = None

    def check(self, subject: Reference | None, path: str, ref: str, reader: Reader) -> None:
        target = subject.reference if subject is not None else None
        if not target:
            return
        target = str(target)
        if self.refs:
            if target not in self.refs and not any(target.endswith("/" + r) for r in self.refs):
                reader.err(
                    f"{path}.subject.reference",
                    ref,
                    f"refers to {target}, not to the Bundle's Patient ({self.label}): one "
                    "Bundle holds one patient",
                )
        elif self.seen_subject is None:
            self.seen_subject = target
        elif target != self.seen_subject:
            reader.err(
                f"{path}.subject.reference",
                ref,
                f"refers to {target} while other entries refer to {self.seen_subject}",
            )


class _BundleReader:
    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.reader = Reader()
        self.patients = _Patients()
        self.patient: Any = None
        self.patient_path = ""
        self.medications: dict[str, Any] = {}
        for i, entry in enumerate(bundle.entry or []):
            res = entry.resource
            if res is not None and res.get_resource_type() == "Medication":
                for key in (entry.fullUrl, f"Medication/{res.id}" if res.id else None):
                    if key:
                        self.medications[str(key)] = (res, f"Bundle.entry[{i}].resource")

    def read(self) -> None:
        entries = self.bundle.entry or []
        # The Patient first: every other entry is checked against it.
        for i, entry in enumerate(entries):
            res = entry.resource
            if res is None or res.get_resource_type() != "Patient":
                continue
            path = f"Bundle.entry[{i}].resource"
            ref = ref_text("Patient", res.id, entry.fullUrl)
            if self.patient is not None:
                self.reader.err(path, ref, f"a second Patient (the first is {self.patients.label})")
                continue
            self.patient, self.patient_path = res, path
            self.patients.label = ref
            self.patients.refs = {
                r for r in (entry.fullUrl, f"Patient/{res.id}" if res.id else None) if r
            }
        for i, entry in enumerate(entries):
            path = f"Bundle.entry[{i}].resource"
            res = entry.resource
            if res is None:
                self.reader.skip(
                    f"Bundle.entry[{i}]", f"Bundle.entry[{i}]", "an entry without a resource"
                )
                continue
            rtype = res.get_resource_type()
            ref = ref_text(rtype, res.id, entry.fullUrl)
            if rtype == "Patient":
                continue
            if rtype == "Observation":
                self.observation(res, path, ref)
            elif rtype == "Condition":
                self.condition(res, path, ref)
            elif rtype == "MedicationStatement":
                self.medication_statement(res, path, ref)
            elif rtype == "MedicationAdministration":
                self.medication_administration(res, path, ref)
            elif rtype == "DocumentReference":
                self.document(res, path, ref)
            elif rtype == "Medication":
                continue  # read through the references to it
            elif rtype == "OperationOutcome" and entry.search and entry.search.mode == "outcome":
                self.reader.skip(ref, path, "a search outcome (OperationOutcome), not patient data")
            else:
                self.reader.skip(ref, path, f"{rtype} is not used by the assessment")

    # ---- Observation ----------------------------------------------------------------------

    def observation(self, obs: Any, path: str, ref: str) -> None:
        r = self.reader
        self.patients.check(obs.subject, path, ref, r)
        status = str(obs.status)
        codes = codes_in(obs.code, LOINC_SYSTEM)
        coding = first_coding(obs.code)
        if status in _LEFT_OUT_STATUSES:
            r.skip(ref, path, f"status {status}: {_LEFT_OUT_STATUSES[status]}", **coding)
            return
        if status not in _USED_STATUSES:
            r.err(f"{path}.status", ref, f"unknown Observation status {status!r}")
            return
        if status == "unknown":
            r.said.append(f"{ref}: status unknown; its value was used")
        laboratory = "laboratory" in category_codes(obs.category)
        target = next(
            (t for c in codes if (t := oxygen_saturation_target(c, laboratory=laboratory))), None
        )
        code = next((c for c in codes if oxygen_saturation_target(c, laboratory=laboratory)), None)
        components = obs.component or []
        has_value = any(
            getattr(obs, n, None) is not None
            for n in (
                "valueQuantity",
                "valueInteger",
                "valueString",
                "valueCodeableConcept",
                "valueBoolean",
                "valueRange",
                "valueRatio",
                "valueSampledData",
                "valueTime",
                "valueDateTime",
                "valuePeriod",
            )
        )
        if has_value and obs.dataAbsentReason is not None:
            r.err(f"{path}.dataAbsentReason", ref, "dataAbsentReason with a value (FHIR obs-6)")
            return
        ts: datetime | None = None
        if target is not None or any(component_target(c, laboratory) for c in components):
            ts = effective_time(obs, path, ref, r)
            if ts is None:
                return
        if target is not None and code is not None:
            self.value(obs, target, code, path, ref, ts)
        elif codes and BP_PANEL in codes and not components:
            r.skip(ref, path, "blood-pressure panel without components", **coding)
        elif not components:
            text = obs.valueString
            if text is not None and str(text).strip():
                r.notes.append((effective_time_or_none(obs), str(text), path))
                r.used.append({"resource": ref, "path": path, **coding, "used_as": "notes"})
            else:
                r.skip(ref, path, "code not used by the assessment", **coding)
        for j, comp in enumerate(components):
            cpath = f"{path}.component[{j}]"
            ccodes = codes_in(comp.code, LOINC_SYSTEM)
            ctarget = component_target(comp, laboratory)
            if ctarget is None:
                r.skip(ref, cpath, "code not used by the assessment", **first_coding(comp.code))
                continue
            ccode = next(c for c in ccodes if oxygen_saturation_target(c, laboratory=laboratory))
            assert ts is not None
            self.value(comp, ctarget, ccode, cpath, ref, ts)
        for note in obs.note or []:
            if note.text and str(note.text).strip():
                r.notes.append((effective_time_or_none(obs), str(note.text), f"{path}.note"))

    def value(
        self, element: Any, target: Target, code: str, path: str, ref: str, ts: datetime | None
    ) -> None:
        r = self.reader
        base = {"resource": ref, "path": path, "code": code, "variable": target.variable}
        q: Quantity | None = element.valueQuantity
        integer: int | None = getattr(element, "valueInteger", None)
        if q is None and integer is None:
            absent = element.dataAbsentReason
            if absent is not None:
                r.skip(
                    ref,
                    path,
                    f"value absent: {concept_text(absent)}",
                    code=code,
                    variable=target.variable,
                )
                return
            other = next(
                (
                    n
                    for n in (
                        "valueString",
                        "valueCodeableConcept",
                        "valueRange",
                        "valueRatio",
                        "valueBoolean",
                    )
                    if getattr(element, n, None) is not None
                ),
                None,
            )
            reason = f"{other} is not a number" if other else "no value"
            r.skip(ref, path, reason, code=code, variable=target.variable)
            return
        if element.dataAbsentReason is not None:
            r.err(f"{path}.dataAbsentReason", ref, "dataAbsentReason with a value (FHIR obs-6)")
            return
        got = quantity_value(q, integer, target, path, ref, r)
        if got is None or ts is None:
            return
        value, unit, sent, comparator = got
        if target.variable == "SupplementalO2":
            value = 1.0 if value > 0 else 0.0
        interpretation = [c for concept in element.interpretation or [] for c in all_codes(concept)]
        item: dict[str, Any] = {
            **base,
            "time": ts.isoformat().replace("+00:00", "Z"),
            "value": sent,
            "unit": unit,
            "used_value": round(value, 6),
            "used_unit": VARIABLES[target.variable].unit,
        }
        if comparator:
            item["comparator"] = comparator
            r.said.append(f"{ref}: value {comparator}{sent:g} used at its bound")
        if interpretation:
            item["interpretation"] = interpretation
            if set(interpretation) & _CRITICAL_INTERPRETATIONS:
                r.said.append(
                    f"{ref}: flagged critical by the laboratory ({', '.join(interpretation)})"
                )
        r.used.append(item)
        r.points.append(Point(target.variable, ts, value, path))

    # ---- history, medications, notes ----------------------------------------------------------

    def condition(self, cond: Any, path: str, ref: str) -> None:
        r = self.reader
        self.patients.check(cond.subject, path, ref, r)
        verification = set(all_codes(cond.verificationStatus))
        clinical = set(all_codes(cond.clinicalStatus))
        coding = first_coding(cond.code)
        if verification & _CONDITION_LEFT_OUT:
            r.skip(ref, path, f"verification status {', '.join(sorted(verification))}", **coding)
            return
        if clinical & _CONDITION_INACTIVE:
            r.skip(ref, path, f"clinical status {', '.join(sorted(clinical))}", **coding)
            return
        text = concept_text(cond.code)
        if not text:
            r.skip(ref, path, "a Condition without a code or text")
            return
        r.conditions.append(text)
        r.used.append({"resource": ref, "path": path, **coding, "used_as": "history.conditions"})

    def _medication(self, res: Any) -> tuple[str | None, bool]:
        concept: CodeableConcept | None = res.medicationCodeableConcept
        if concept is None and res.medicationReference is not None:
            target = str(res.medicationReference.reference or "")
            found = self.medications.get(target)
            if found is not None:
                concept = found[0].code
            elif res.medicationReference.display:
                shown = str(res.medicationReference.display)
                return shown, is_vasopressor([], shown)
        text = concept_text(concept)
        return text, is_vasopressor(codes_in(concept, RXNORM_SYSTEM), text or "")

    def medication_statement(self, med: Any, path: str, ref: str) -> None:
        r = self.reader
        self.patients.check(med.subject, path, ref, r)
        status = str(med.status)
        if status not in _MED_STATEMENT_USED:
            r.skip(ref, path, f"status {status}")
            return
        text, _ = self._medication(med)
        if not text:
            r.skip(ref, path, "a MedicationStatement without a medication name")
            return
        r.medications.append(text)
        r.used.append(
            {"resource": ref, "path": path, "display": text, "used_as": "history.medications"}
        )

    def medication_administration(self, med: Any, path: str, ref: str) -> None:
        r = self.reader
        self.patients.check(med.subject, path, ref, r)
        status = str(med.status)
        text, vasopressor = self._medication(med)
        if status in _MED_ADMIN_LEFT_OUT:
            r.skip(ref, path, f"status {status}", display=text)
            return
        if text and status == "in-progress":
            r.medications.append(text)
        if not vasopressor:
            if text and status == "in-progress":
                r.used.append(
                    {
                        "resource": ref,
                        "path": path,
                        "display": text,
                        "used_as": "history.medications",
                    }
                )
            else:
                r.skip(
                    ref, path, "not a vasopressor or inotrope, and not in progress", display=text
                )
            return
        start: datetime | None
        end: datetime | None = None
        period: Period | None = med.effectivePeriod
        if med.effectiveDateTime is not None:
            start = instant(med.effectiveDateTime)
        elif period is not None:
            start, end = instant(period.start), instant(period.end)
        else:
            start = None
        if start is None:
            r.err(f"{path}.effective[x]", ref, "a vasopressor administration needs its start time")
            return
        r.points.append(Point("Vasopressors", start, 1.0, path))
        item = {
            "resource": ref,
            "path": path,
            "display": text,
            "variable": "Vasopressors",
            "time": start.isoformat().replace("+00:00", "Z"),
            "used_value": 1.0,
        }
        r.used.append(item)
        if end is not None and status in ("completed", "stopped"):
            r.points.append(Point("Vasopressors", end, 0.0, f"{path}.effectivePeriod.end"))
            r.used.append(
                {**item, "time": end.isoformat().replace("+00:00", "Z"), "used_value": 0.0}
            )

    def document(self, doc: Any, path: str, ref: str) -> None:
        r = self.reader
        self.patients.check(doc.subject, path, ref, r)
        if str(doc.status) != "current" or str(doc.docStatus or "") == "entered-in-error":
            r.skip(
                ref,
                path,
                f"status {doc.status}{', ' + str(doc.docStatus) if doc.docStatus else ''}",
            )
            return
        when = instant(doc.date)
        texts = []
        for j, content in enumerate(doc.content or []):
            att = content.attachment
            cpath = f"{path}.content[{j}].attachment"
            ctype = str(att.contentType or "").split(";")[0].strip().lower()
            if att.data is None:
                r.skip(
                    ref, cpath, "only a URL: attachments are not fetched" if att.url else "no data"
                )
                continue
            if ctype not in ("text/plain", "text/markdown", ""):
                r.skip(ref, cpath, f"content type {ctype} is not plain text")
                continue
            raw = att.data
            try:
                text = (
                    raw.decode("utf-8")
                    if isinstance(raw, bytes)
                    else base64.b64decode(str(raw)).decode("utf-8")
                )
            except (UnicodeDecodeError, binascii.Error):
                r.err(f"{cpath}.data", ref, "not UTF-8 text in base64")
                continue
            if not text.strip():
                r.skip(ref, cpath, "no text in the attachment (empty, or not base64)")
                continue
            texts.append(text.strip())
            r.notes.append((when, text.strip(), cpath))
        if texts:
            r.used.append({"resource": ref, "path": path, "used_as": "notes"})


def bundle_to_patient(raw: object) -> FhirConversion:
    """The patient request (the structured form of DESIGN §4) of a FHIR R4 Bundle.

    Raises InvalidInput (422) naming each bad element by its FHIR path
    (`Bundle.entry[3].resource.valueQuantity.code`) and the resource (`Observation/bp-1`).
    """
    bundle = validate_bundle(raw)
    reading = _BundleReader(bundle)
    reading.read()
    r = reading.reader
    if r.errors:
        raise invalid(r.errors)

    series: dict[str, list[dict[str, Any]]] = {}
    sources: dict[str, str] = {}
    for point in sorted(r.points, key=lambda p: p.ts):
        items = series.setdefault(point.variable, [])
        sources[f"vitals.{point.variable}[{len(items)}]"] = point.location
        items.append({"val": round(point.value, 6), "ts": iso(point.ts)})
    request: dict[str, Any] = {"vitals": series}
    sources["vitals"] = "Bundle.entry"

    patient = reading.patient
    patient_ref = reading.patients.label
    if patient is not None:
        if patient.id:
            request["patient_id"] = str(patient.id)
        gender = str(patient.gender) if patient.gender else None
        if gender in ("male", "female"):
            request["Gender"] = gender
            sources["Gender"] = f"{reading.patient_path}.gender"
        elif gender:
            r.said.append(f"{patient_ref}: gender {gender} is not used (the model knows 0/1)")
        reference = max((p.ts for p in r.points), default=None)
        if patient.birthDate is not None and reference is not None:
            age = age_at(patient.birthDate, reference, r.said, patient_ref or "Patient")
            if age is not None:
                request["Age"] = age
                sources["Age"] = f"{reading.patient_path}.birthDate"
    else:
        r.said.append("no Patient in the Bundle: age and sex unknown")

    if r.conditions or r.medications:
        request["patient_history"] = {
            "conditions": list(dict.fromkeys(r.conditions)),
            "medications": list(dict.fromkeys(r.medications)),
        }
    if r.notes:
        ordered = sorted(
            r.notes, key=lambda n: (n[0] is not None, n[0] or datetime.min.replace(tzinfo=UTC))
        )
        text = "\n".join(t for _, t, _ in ordered)
        if len(text) > MAX_NOTES_CHARS:
            # the newest notes count most: the oldest are dropped, and said so
            kept: list[str] = []
            size = 0
            for _when, t, where in reversed(ordered):
                if size + len(t) + 1 > MAX_NOTES_CHARS:
                    r.skip(
                        where, where, f"notes past {MAX_NOTES_CHARS} characters (oldest dropped)"
                    )
                    continue
                kept.append(t)
                size += len(t) + 1
            text = "\n".join(reversed(kept))
        request["notes"] = text
        sources["notes"] = ", ".join(dict.fromkeys(w for _, _, w in ordered))

    report = {
        "bundle_type": str(bundle.type),
        "entries": len(bundle.entry or []),
        "patient": patient_ref,
        "used": r.used,
        "not_used": r.not_used,
        "notes": r.said,
    }
    return FhirConversion(request=request, report=report, sources=sources)
