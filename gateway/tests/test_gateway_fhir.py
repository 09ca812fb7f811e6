"""FHIR R4 Bundle -> patient request: codes, units, statuses, absent values, notes, history."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sepsis_gateway.fhir import bundle_to_patient
from sepsis_shared.errors import InvalidInput
from sepsis_shared.patient import parse_patient

BUNDLE = Path(__file__).parent / "data" / "fhir-sepsis-bundle.json"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
T = "2026-02-07T18:30:00Z"


def ward_bundle() -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(BUNDLE.read_text())
    return bundle


def bundle(*resources: dict[str, Any], btype: str = "collection") -> dict[str, Any]:
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-06-30"}
    entries = [{"fullUrl": "urn:uuid:p1", "resource": patient}]
    entries += [{"resource": r} for r in resources]
    return {"resourceType": "Bundle", "type": btype, "entry": entries}


def obs(
    code: str, value: float | None = None, unit: str | None = None, **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": extra.pop("id", f"o-{code}"),
        "status": extra.pop("status", "final"),
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": extra.pop("time", T),
    }
    if value is not None:
        quantity: dict[str, Any] = {"value": value}
        if unit is not None:
            quantity |= {"system": UCUM, "code": unit}
        resource["valueQuantity"] = quantity
    resource.update(extra)
    return resource


def errors_of(raw: object) -> list[dict[str, str]]:
    with pytest.raises(InvalidInput) as caught:
        bundle_to_patient(raw)
    details: list[dict[str, str]] = caught.value.details
    return details


def test_ward_bundle_becomes_time_series_in_the_assessments_units() -> None:
    vitals = bundle_to_patient(ward_bundle()).request["vitals"]
    assert [p["val"] for p in vitals["HR"]] == [96.0, 108.0, 118.0]
    assert [p["ts"] for p in vitals["SBP"]] == [
        "2026-02-07T14:30:00Z",
        "2026-02-07T16:30:00Z",
        "2026-02-07T18:30:00Z",
    ]
    assert [p["val"] for p in vitals["DBP"]] == [70.0, 62.0, 54.0]


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("Temp", [38.0, 38.9]),  # 100.4 [degF], then 38.9 Cel
        ("Creatinine", [1.7986]),  # 159 umol/L
        ("Bilirubin_total", [1.1986]),  # 20.5 umol/L
        ("Glucose", [140.5248]),  # 7.8 mmol/L
        ("FiO2", [0.28]),  # 28 %
        ("Vasopressors", [1.0]),  # norepinephrine infusion in progress
        ("GCS", [14.0]),
    ],
)
def test_ward_bundle_units_are_converted(variable: str, expected: list[float]) -> None:
    vitals = bundle_to_patient(ward_bundle()).request["vitals"]
    assert [round(p["val"], 4) for p in vitals[variable]] == expected


def test_entered_in_error_is_left_out_and_listed() -> None:
    conversion = bundle_to_patient(ward_bundle())
    assert 190.0 not in [p["val"] for p in conversion.request["vitals"]["HR"]]
    listed = {e["resource"]: e["reason"] for e in conversion.report["not_used"]}
    assert listed["Observation/hr-err"].startswith("status entered-in-error")


def test_data_absent_reason_is_listed_with_the_reason() -> None:
    conversion = bundle_to_patient(ward_bundle())
    assert len(conversion.request["vitals"]["Lactate"]) == 1
    listed = {e["resource"]: e["reason"] for e in conversion.report["not_used"]}
    assert listed["Observation/lac-2"] == "value absent: Specimen haemolysed"


def test_unknown_codes_and_resource_types_are_listed_not_dropped() -> None:
    listed = {e["resource"]: e for e in bundle_to_patient(ward_bundle()).report["not_used"]}
    assert listed["Observation/crp-1"]["code"] == "1988-5"
    assert listed["Observation/wt-1"]["reason"] == "code not used by the assessment"
    assert listed["Encounter/enc-1"]["reason"] == "Encounter is not used by the assessment"


def test_interpretation_is_reported_beside_the_value_it_does_not_change() -> None:
    used = {e["resource"]: e for e in bundle_to_patient(ward_bundle()).report["used"]}
    assert used["Observation/lac-1"]["interpretation"] == ["H"]
    assert used["Observation/lac-1"]["used_value"] == 3.1


def test_patient_history_and_notes() -> None:
    request = bundle_to_patient(ward_bundle()).request
    assert request["Age"] == 67  # born 1958-04-12, observed 2026-02-07
    assert request["Gender"] == "male"
    assert request["patient_history"] == {
        "conditions": ["Type 2 diabetes"],  # the resolved appendicitis is not history now
        "medications": ["metformin", "norepinephrine"],
    }
    assert request["notes"].startswith("Patient more drowsy this evening")


def test_same_patient_as_json_and_as_fhir_is_the_same_patient() -> None:
    from_fhir = parse_patient(bundle_to_patient(ward_bundle()).request)
    times = ["2026-02-07T14:30:00Z", "2026-02-07T16:30:00Z", "2026-02-07T18:30:00Z"]
    lab = "2026-02-07T15:10:00Z"

    def series(values: list[float]) -> list[dict[str, Any]]:
        return [{"val": v, "ts": t} for v, t in zip(values, times, strict=True)]

    as_json = {
        "patient_id": "pat-7",
        "Age": 67,
        "Gender": 1,
        "vitals": {
            "HR": series([96, 108, 118]),
            "Resp": series([20, 22, 24]),
            "O2Sat": series([96, 95, 93]),
            "SBP": series([112, 101, 88]),
            "DBP": series([70, 62, 54]),
            "Temp": [{"val": 38.0, "ts": times[0]}, {"val": 38.9, "ts": times[2]}],
            "GCS": [{"val": 14, "ts": times[2]}],
            "FiO2": [{"val": 0.28, "ts": times[2]}],
            "Vasopressors": [{"val": 1, "ts": "2026-02-07T18:00:00Z"}],
        },
        "labs": {
            "Lactate": [{"val": 3.1, "ts": lab}],
            "WBC": [{"val": 16.2, "ts": lab}],
            "Platelets": [{"val": 140, "ts": lab}],
            "Creatinine": [{"val": 159 / 88.4, "ts": lab}],
            "Bilirubin_total": [{"val": 20.5 / 17.1, "ts": lab}],
            "Glucose": [{"val": 7.8 * 18.016, "ts": lab}],
        },
        "notes": (
            "Patient more drowsy this evening, skin mottled on knees. Cultures sent, "
            "antibiotics started."
        ),
        "patient_history": {
            "conditions": ["Type 2 diabetes"],
            "medications": ["metformin", "norepinephrine"],
        },
    }
    from_json = parse_patient(as_json)
    assert from_fhir.series.keys() == from_json.series.keys()
    for name, points in from_json.series.items():
        assert [(round(v, 3), h) for v, h in from_fhir.series[name]] == [
            (round(v, 3), h) for v, h in points
        ], name
    assert (from_fhir.age, from_fhir.gender, from_fhir.notes, from_fhir.history) == (
        from_json.age,
        from_json.gender,
        from_json.notes,
        from_json.history,
    )
    assert from_fhir.findings == from_json.findings


def test_blood_pressure_panel_components_become_sbp_dbp_map() -> None:
    panel = obs(
        "85354-9",
        component=[
            {
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "valueQuantity": {"value": v, "system": UCUM, "code": "mm[Hg]"},
            }
            for code, v in (("8480-6", 90), ("8462-4", 50), ("8478-0", 63))
        ],
    )
    vitals = bundle_to_patient(bundle(panel)).request["vitals"]
    assert {k: v[0]["val"] for k, v in vitals.items()} == {"SBP": 90, "DBP": 50, "MAP": 63}


def test_kpa_blood_gas_is_converted_to_mmhg() -> None:
    vitals = bundle_to_patient(bundle(obs("2703-7", 8.0, "kPa"))).request["vitals"]
    assert round(vitals["PaO2"][0]["val"], 1) == 60.0


def test_2708_6_is_sao2_in_a_laboratory_observation() -> None:
    category = [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "laboratory",
                }
            ]
        }
    ]
    lab = obs("2708-6", 97, "%", category=category)
    assert "SaO2" in bundle_to_patient(bundle(lab)).request["vitals"]
    assert "O2Sat" in bundle_to_patient(bundle(obs("2708-6", 97, "%"))).request["vitals"]


def test_unconvertible_unit_is_422_naming_resource_and_path() -> None:
    [error] = errors_of(bundle(obs("2160-0", 1.2, "mg", id="cr-9")))
    assert error["field"] == "Bundle.entry[1].resource.valueQuantity.code"
    assert error["resource"] == "Observation/cr-9"
    assert "'mg'" in error["message"]
    assert "mg/dL" in error["message"]


def test_quantity_without_unit_is_422() -> None:
    [error] = errors_of(bundle(obs("8867-4", 90)))
    assert error["field"] == "Bundle.entry[1].resource.valueQuantity.code"


def test_value_with_data_absent_reason_is_422() -> None:
    bad = obs("8867-4", 90, "/min", dataAbsentReason={"text": "asked"})
    [error] = errors_of(bundle(bad))
    assert error["field"].endswith(".dataAbsentReason")


def test_observation_of_another_patient_is_refused() -> None:
    other = obs("8867-4", 90, "/min", subject={"reference": "Patient/someone-else"})
    [error] = errors_of(bundle(other))
    assert error["field"] == "Bundle.entry[1].resource.subject.reference"


def test_date_without_time_is_422() -> None:
    [error] = errors_of(bundle(obs("8867-4", 90, "/min", time="2026-02-07")))
    assert error["field"] == "Bundle.entry[1].resource.effectiveDateTime"


def test_effective_period_end_is_the_time() -> None:
    o = obs("8867-4", 90, "/min")
    del o["effectiveDateTime"]
    o["effectivePeriod"] = {"start": "2026-02-07T18:00:00Z", "end": "2026-02-07T18:15:00Z"}
    vitals = bundle_to_patient(bundle(o)).request["vitals"]
    assert vitals["HR"][0]["ts"] == "2026-02-07T18:15:00Z"


def test_malformed_resource_is_422_with_its_fhir_path() -> None:
    bad = obs("8867-4", 90, "/min")
    bad["valueQuantity"]["value"] = "fast"
    [error] = errors_of(bundle(bad))
    assert error["field"] == "Bundle.entry[1].resource.valueQuantity.value"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"resourceType": "Patient"}, "resourceType"),
        ({"resourceType": "Bundle", "type": "document"}, "Bundle.type"),
        (
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {"resourceType": "Nope"}}],
            },
            "Bundle.entry[0].resource.resourceType",
        ),
        ([], "Bundle"),
        # entries that are not objects, or resources that are not (found by fuzzing: a 500)
        (
            {"resourceType": "Bundle", "type": "collection", "entry": [[None, None]]},
            "Bundle.entry[0]",
        ),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": 7}]},
            "Bundle.entry[0].resource",
        ),
    ],
)
def test_what_is_not_a_bundle_of_ours_is_422(raw: object, field: str) -> None:
    assert errors_of(raw)[0]["field"] == field


@pytest.mark.parametrize("btype", ["collection", "searchset", "transaction"])
def test_bundle_types_taken(btype: str) -> None:
    assert bundle_to_patient(bundle(obs("8867-4", 90, "/min"), btype=btype)).request["vitals"]


def test_cancelled_and_registered_are_left_out() -> None:
    conversion = bundle_to_patient(
        bundle(
            obs("8867-4", 90, "/min"),
            obs("9279-1", 30, "/min", status="cancelled"),
            obs("8310-5", 39, "Cel", status="registered"),
        )
    )
    assert set(conversion.request["vitals"]) == {"HR"}
    assert len(conversion.report["not_used"]) == 2


def test_comparator_is_used_at_its_bound_and_said() -> None:
    o = obs("10839-9", 10, "ng/L")
    o["valueQuantity"]["comparator"] = "<"
    conversion = bundle_to_patient(bundle(o))
    assert conversion.request["vitals"]["TroponinI"][0]["val"] == 0.01
    assert any("used at its bound" in n for n in conversion.report["notes"])


def test_string_observation_and_annotations_become_notes() -> None:
    text = obs("8867-4", 90, "/min", note=[{"text": "pulse thready"}])
    narrative = {
        "resourceType": "Observation",
        "id": "n1",
        "status": "final",
        "code": {"text": "Nursing assessment"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-02-07T18:00:00Z",
        "valueString": "new confusion since midday",
    }
    notes = bundle_to_patient(bundle(text, narrative)).request["notes"]
    assert notes == "new confusion since midday\npulse thready"


def test_document_given_only_as_a_url_is_listed() -> None:
    doc = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "content": [{"attachment": {"contentType": "text/plain", "url": "https://ehr/doc/1"}}],
    }
    conversion = bundle_to_patient(bundle(obs("8867-4", 90, "/min"), doc))
    assert "notes" not in conversion.request
    assert conversion.report["not_used"][0]["reason"].startswith("only a URL")


def test_completed_vasopressor_is_on_then_off() -> None:
    med = {
        "resourceType": "MedicationAdministration",
        "id": "m1",
        "status": "completed",
        "medicationCodeableConcept": {"text": "Noradrenaline 4 mg in 50 mL"},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2026-02-07T12:00:00Z", "end": "2026-02-07T16:00:00Z"},
    }
    vitals = bundle_to_patient(bundle(obs("8867-4", 90, "/min"), med)).request["vitals"]
    assert [p["val"] for p in vitals["Vasopressors"]] == [1.0, 0.0]


def test_year_only_birth_date_is_said() -> None:
    raw = bundle(obs("8867-4", 90, "/min"))
    raw["entry"][0]["resource"]["birthDate"] = "1950"
    conversion = bundle_to_patient(raw)
    assert conversion.request["Age"] == 76
    assert any("has no day" in n for n in conversion.report["notes"])


def test_sources_name_the_bundle_element_of_each_point() -> None:
    conversion = bundle_to_patient(ward_bundle())
    assert conversion.sources["vitals.SBP[2]"].endswith(".component[0]")
    assert conversion.sources["Age"].endswith(".birthDate")


def test_inline_note_that_is_not_base64_is_listed() -> None:
    doc = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "content": [{"attachment": {"contentType": "text/plain", "data": "***"}}],
    }
    conversion = bundle_to_patient(bundle(obs("8867-4", 90, "/min"), doc))
    assert "notes" not in conversion.request
    assert conversion.report["not_used"][0]["reason"].startswith("no text in the attachment")


def test_base64_note_is_decoded() -> None:
    doc = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(b"GCS 11").decode(),
                }
            }
        ],
    }
    assert bundle_to_patient(bundle(obs("8867-4", 90, "/min"), doc)).request["notes"] == "GCS 11"


def test_input_is_not_modified() -> None:
    raw = ward_bundle()
    before = copy.deepcopy(raw)
    bundle_to_patient(raw)
    assert raw == before
