"""Patient input: both forms, aliases, series ordering, hours_ago, units and field errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI, Request
from httpx import ASGITransport, AsyncClient

from sepsis_shared.errors import InvalidInput, PayloadTooLarge, install_error_handlers
from sepsis_shared.patient import (
    FLAT_EXAMPLE,
    SERIES_EXAMPLE,
    STRUCTURED_EXAMPLE,
    NormalizedPatient,
    Observation,
    batch_items,
    parse_patient,
    patient_batch_request_openapi,
    patient_request_openapi,
)
from sepsis_shared.variables import ALIASES, PHYSIONET_VARIABLES, VARIABLES, canonical_name


def field_errors(raw: object, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(InvalidInput) as info:
        parse_patient(raw, **kwargs)
    assert info.value.status == 422
    return {d["field"]: d["message"] for d in info.value.details}


# ---- the two forms ---------------------------------------------------------------------------


def test_flat_form_of_the_original_system() -> None:
    p = parse_patient(FLAT_EXAMPLE)
    assert p.latest("HR") == 110.0
    assert p.latest("Lactate") == 2.5
    assert p.observations("Temp") == (Observation(38.5, 0.0),)
    assert (p.age, p.gender, p.iculos, p.patient_id) == (65.0, 1, None, None)
    assert "Age" not in p.series
    assert "Gender" not in p.series
    assert p.latest("Platelets") is None
    assert p.values("Platelets") == ()
    assert not p.has("Platelets")


def test_structured_form_with_notes_and_history() -> None:
    p = parse_patient(
        {
            **STRUCTURED_EXAMPLE,
            "patient_history": {"conditions": ["COPD", " "], "medications": ["metformin"]},
            "Age": 70,
            "sex": "male",
        }
    )
    assert p.patient_id == "TEST001"
    assert p.notes is not None
    assert p.notes.startswith("Patient appears lethargic")
    assert p.latest("SBP") == 88.0
    assert p.history.conditions == ["COPD"]
    assert p.history.medications == ["metformin"]
    assert (p.age, p.gender) == (70.0, 1)


def test_demographics_inside_vitals_and_labs_map() -> None:
    p = parse_patient(
        {
            "vitals": {"HR": 80, "Age": 50, "Gender": "F", "ICULOS": 12, "HospAdmTime": -3.5},
            "labs": {"WBC": 9.0},
        }
    )
    assert (p.age, p.gender, p.iculos, p.hosp_adm_time) == (50.0, 0, 12.0, -3.5)
    assert p.latest("WBC") == 9.0


@pytest.mark.parametrize(
    "example", [FLAT_EXAMPLE, STRUCTURED_EXAMPLE, SERIES_EXAMPLE], ids=["flat", "structured", "ts"]
)
def test_documented_examples_parse(example: dict[str, Any]) -> None:
    assert isinstance(parse_patient(example), NormalizedPatient)


# ---- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("SpO2", "O2Sat"),
        ("spo2", "O2Sat"),
        ("SPO2", "O2Sat"),
        ("RR", "Resp"),
        ("RespRate", "Resp"),
        ("respiratory_rate", "Resp"),
        ("Temperature", "Temp"),
        ("HeartRate", "HR"),
        ("pulse", "HR"),
        ("Plt", "Platelets"),
        ("Bilirubin", "Bilirubin_total"),
        ("hr", "HR"),
        ("fio2", "FiO2"),
        ("AVPU", "Consciousness"),
    ],
)
def test_aliases_are_case_insensitive(alias: str, canonical: str) -> None:
    value = "A" if canonical == "Consciousness" else (0.5 if canonical == "FiO2" else 30)
    p = parse_patient({"vitals": {alias: value}})
    assert list(p.series) == [canonical]
    assert canonical_name(alias) == canonical


def test_every_physionet_variable_is_known_and_aliases_are_unambiguous() -> None:
    assert len(PHYSIONET_VARIABLES) == 34
    for name in VARIABLES:
        assert ALIASES[name.lower()] == name


def test_sex_alias_and_gender_words() -> None:
    assert parse_patient({"HR": 80, "Sex": "Female"}).gender == 0
    assert parse_patient({"HR": 80, "gender": "m"}).gender == 1
    assert parse_patient({"HR": 80, "Gender": 0}).gender == 0


@pytest.mark.parametrize("bad", ["x", 2, True, [1], 0.5])
def test_bad_gender_names_the_field(bad: object) -> None:
    assert "vitals.Gender" in field_errors({"vitals": {"HR": 80, "Gender": bad}})


def test_unknown_variable_and_the_same_variable_twice() -> None:
    errors = field_errors({"vitals": {"HR": 80, "heart_rate": 81, "Foo": 1}, "SepsisLabel": 0})
    assert errors["vitals.heart_rate"] == "HR given twice (also as vitals.HR)"
    assert errors["vitals.Foo"] == "unknown variable 'Foo'"
    assert "SepsisLabel" in errors


def test_challenge_admin_columns_are_accepted_and_ignored() -> None:
    p = parse_patient({"HR": 80, "Unit1": 1, "Unit2": 0})
    assert list(p.series) == ["HR"]


# ---- lists and time series -------------------------------------------------------------------


def test_list_is_newest_first_and_stored_oldest_first() -> None:
    p = parse_patient({"vitals": {"HR": [120, 110, 100], "SpO2": 91}})
    assert p.values("HR") == (100.0, 110.0, 120.0)
    assert [o.hours_ago for o in p.observations("HR")] == [2.0, 1.0, 0.0]
    assert p.latest("HR") == 120.0
    assert p.observations("O2Sat") == (Observation(91.0, 0.0),)
    assert p.reference_time is None


def test_series_sorted_by_ts_with_hours_before_the_newest_ts_of_the_patient() -> None:
    p = parse_patient(
        {
            "vitals": {
                "HR": [
                    {"val": 100, "ts": "2026-02-07T17:30"},
                    {"val": 118, "ts": "2026-02-07T19:30"},
                    {"val": 105, "ts": "2026-02-07T16:00"},
                ],
                "Lactate": [{"val": 3.1, "ts": "2026-02-07T20:00:00Z"}],
            }
        }
    )
    assert p.values("HR") == (105.0, 100.0, 118.0)
    assert [o.hours_ago for o in p.observations("HR")] == [4.0, 2.5, 0.5]
    assert p.observations("Lactate") == (Observation(3.1, 0.0),)
    assert p.latest("HR") == 118.0
    assert p.reference_time == datetime(2026, 2, 7, 20, 0, tzinfo=UTC)


def test_series_offsets_and_duplicate_times_keep_the_last_given() -> None:
    p = parse_patient(
        {
            "vitals": {
                "SBP": [
                    {"val": 90, "ts": "2026-02-07T18:30+01:00"},  # 17:30 UTC
                    {"val": 95, "ts": "2026-02-07T18:30"},  # naive = UTC
                    {"val": 85, "ts": "2026-02-07T17:30:00Z"},  # same instant as the first
                ]
            }
        }
    )
    assert p.observations("SBP") == (Observation(85.0, 1.0), Observation(95.0, 0.0))


def test_lists_and_series_mixed_across_variables() -> None:
    p = parse_patient(
        {
            "vitals": {
                "HR": [{"val": 118, "ts": "2026-02-07T18:30"}],
                "Temp": [38.9, 38.1],
                "Resp": 24,
            }
        }
    )
    assert p.observations("HR") == (Observation(118.0, 0.0),)
    assert p.observations("Temp") == (Observation(38.1, 1.0), Observation(38.9, 0.0))
    assert p.latest("Resp") == 24.0


def test_top_level_null_means_not_measured() -> None:
    p = parse_patient({"HR": 90, "Lactate": None, "Age": None, "notes": None})
    assert list(p.series) == ["HR"]
    assert p.age is None


def test_bedside_inputs() -> None:
    p = parse_patient(
        {
            "vitals": {
                "HR": 90,
                "Consciousness": ["v", "Alert"],
                "GCS": 13,
                "SupplementalO2": True,
                "Vasopressors": 0,
            }
        }
    )
    assert p.values("Consciousness") == (0.0, 2.0)
    assert p.latest("SupplementalO2") == 1.0
    assert p.latest("Vasopressors") == 0.0
    assert p.latest("GCS") == 13.0


# ---- units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "unit", "sent", "stored"),
    [
        ("Temp", "degF", 101.3, 38.5),
        ("Temp", "°F", 98.6, 37.0),
        ("Temp", "C", 37.2, 37.2),
        ("Lactate", "mg/dL", 27.024, 3.0),
        ("Creatinine", "umol/L", 176.8, 2.0),
        ("Creatinine", "µmol/L", 88.4, 1.0),
        ("Bilirubin_total", "umol/L", 34.2, 2.0),
        ("Bilirubin_direct", "μmol/l", 17.1, 1.0),
        ("Glucose", "mmol/L", 5.0, 90.08),
        ("FiO2", "%", 40, 0.4),
        ("Hgb", "g/L", 120, 12.0),
        ("HR", "beats/min", 88, 88.0),
        ("HR", "bpm", 88, 88.0),
        ("Potassium", "mEq/L", 4.1, 4.1),
    ],
)
def test_unit_conversion(name: str, unit: str, sent: float, stored: float) -> None:
    p = parse_patient({"vitals": {"HR": 80, name: sent}, "units": {name: unit}})
    value = p.latest(name)
    assert value is not None
    assert math.isclose(value, stored, rel_tol=1e-9, abs_tol=1e-9)


def test_units_apply_to_lists_series_and_alias_keys() -> None:
    p = parse_patient(
        {
            "vitals": {
                "temperature": [{"val": 102.2, "ts": "2026-02-07T18:30"}],
                "lactic_acid": [18.016, 9.008],
            },
            "units": {"Temperature": "fahrenheit", "Lactate": "mg/dl"},
        }
    )
    assert p.values("Temp") == pytest.approx((39.0,))
    assert p.values("Lactate") == pytest.approx((1.0, 2.0))


def test_unknown_unit_is_named_once() -> None:
    errors = field_errors({"vitals": {"Temp": 310}, "units": {"Temp": "K", "Foo": "mg/dL"}})
    assert set(errors) == {"units.Temp", "units.Foo"}
    assert errors["units.Temp"].startswith("unknown unit 'K' for Temp")


def test_fio2_percentage_without_unit_is_read_as_a_percentage_and_said() -> None:
    p = parse_patient({"vitals": {"HR": 90, "FiO2": 40}})
    assert p.latest("FiO2") == pytest.approx(0.4)
    (issue,) = p.data_quality
    assert (issue.field, issue.variable, issue.value, issue.action) == (
        "vitals.FiO2",
        "FiO2",
        40.0,
        "read_as",
    )
    assert issue.used_value == pytest.approx(0.4)
    assert "40 %" in issue.reason


@pytest.mark.parametrize("sent", [0.2, 0.18, 20, 18])
def test_fio2_just_below_room_air_is_read_as_room_air(sent: float) -> None:
    p = parse_patient({"vitals": {"HR": 90, "FiO2": sent}})
    assert p.latest("FiO2") == 0.21
    (issue,) = p.data_quality
    assert issue.action == "read_as"
    assert "room air" in issue.reason


@pytest.mark.parametrize("sent", [0.1, 5, 150])
def test_fio2_with_no_obvious_reading_is_left_out(sent: float) -> None:
    p = parse_patient({"vitals": {"HR": 90, "FiO2": sent}})
    assert not p.has("FiO2")
    (issue,) = p.data_quality
    assert issue.action == "left_out"


def test_an_explicit_unit_is_never_second_guessed() -> None:
    # 40 sent as a fraction is no fraction: with its unit given it is left out, not read as %
    p = parse_patient({"vitals": {"HR": 90, "FiO2": 40}, "units": {"FiO2": "fraction"}})
    assert not p.has("FiO2")
    assert [i.action for i in p.data_quality] == ["left_out"]


def test_a_temperature_in_fahrenheit_without_unit_is_read_as_such() -> None:
    p = parse_patient({"HR": 90, "Temp": 101.3})
    assert p.latest("Temp") == pytest.approx(38.5)
    (issue,) = p.data_quality
    assert issue.action == "read_as"
    assert "°F" in issue.reason


def test_an_arterial_line_flush_point_is_left_out_and_listed() -> None:
    base = "2026-02-07T1{}:00Z"
    series = [{"val": v, "ts": base.format(h)} for h, v in ((6, 118), (7, 343), (8, 112), (9, 104))]
    p = parse_patient(
        {
            "vitals": {
                "SBP": series,
                "DBP": [{"val": 328, "ts": base.format(7)}, {"val": 60, "ts": base.format(9)}],
                "MAP": [339, 75, 80],
            }
        },
        now=datetime(2026, 2, 7, 20, tzinfo=UTC),
    )
    assert p.values("SBP") == (118.0, 112.0, 104.0)
    assert p.values("DBP") == (60.0,)
    assert p.observations("MAP") == (Observation(80.0, 2.0), Observation(75.0, 1.0))
    issues = {i.field: i for i in p.data_quality}
    assert set(issues) == {"vitals.SBP[1].val", "vitals.DBP[0].val", "vitals.MAP[0]"}
    sbp = issues["vitals.SBP[1].val"]
    assert (sbp.value, sbp.time, sbp.hours_ago, sbp.action) == (
        343.0,
        base.format(7),
        2.0,
        "left_out",
    )
    assert "0 to 300 mmHg" in sbp.reason
    assert issues["vitals.MAP[0]"].hours_ago == 0.0


def test_a_patient_whose_only_value_is_impossible_is_a_422_naming_it() -> None:
    errors = field_errors({"vitals": {"HR": 400}})
    assert list(errors) == ["vitals.HR"]
    assert "0 to 300" in errors["vitals.HR"]


def test_a_point_dated_in_the_future_is_left_out() -> None:
    now = datetime(2026, 2, 7, 18, 35, tzinfo=UTC)
    p = parse_patient(
        {
            "vitals": {
                "HR": [
                    {"val": 118, "ts": "2026-02-07T18:30Z"},
                    {"val": 90, "ts": "2099-01-01T00:00Z"},
                    {"val": 112, "ts": "2026-02-07T18:38Z"},  # within the clock tolerance
                ]
            }
        },
        now=now,
    )
    assert p.values("HR") == (118.0, 112.0)
    (issue,) = p.data_quality
    assert (issue.field, issue.value, issue.time) == ("vitals.HR[1]", 90.0, "2099-01-01T00:00Z")
    assert "after the request arrived" in issue.reason


def test_two_values_at_the_same_time_use_the_last_and_list_the_other() -> None:
    p = parse_patient(
        {
            "vitals": {
                "HR": [
                    {"val": 100, "ts": "2026-02-07T18:30Z"},
                    {"val": 110, "ts": "2026-02-07T18:30Z"},
                    {"val": 110, "ts": "2026-02-07T17:30Z"},
                    {"val": 110, "ts": "2026-02-07T17:30Z"},  # the same value twice: nothing lost
                ]
            }
        }
    )
    assert p.values("HR") == (110.0, 110.0)
    (issue,) = p.data_quality
    assert (issue.field, issue.value, issue.hours_ago) == ("vitals.HR[0]", 100.0, 0.0)


# ---- field errors ------------------------------------------------------------------------


def test_every_field_error_is_collected_with_its_path() -> None:
    errors = field_errors(
        {
            "vitals": {
                "HR": [
                    {"val": 118, "ts": "2026-02-07T18:30"},
                    {"val": 112, "ts": "yesterday"},
                    {"val": "high", "ts": "2026-02-07T16:30"},
                    {"ts": "2026-02-07T15:30"},
                ],
                "SBP": "95",
                "Resp": [22, None, True],
                "O2Sat": [],
                "Temp": 99.1,  # read as °F: no error
                "MAP": 400,  # left out: no error
                "WBC": float("nan"),
                "Platelets": float("inf"),
                "GCS": 14.5,
                "Consciousness": "Z",
                "DBP": {"val": 60},
            },
            "Gender": "unknown",
        }
    )
    assert set(errors) == {
        "vitals.HR[1].ts",
        "vitals.HR[2].val",
        "vitals.HR[3].val",
        "vitals.SBP",
        "vitals.Resp[1]",
        "vitals.Resp[2]",
        "vitals.O2Sat",
        "vitals.WBC",
        "vitals.Platelets",
        "vitals.GCS",
        "vitals.Consciousness",
        "vitals.DBP",
        "Gender",
    }
    assert errors["vitals.SBP"] == "expected a number for SBP, got a string"
    assert errors["vitals.Resp[1]"] == "expected a number for Resp, got null"
    assert errors["vitals.Resp[2]"] == "expected a number for Resp, got true"
    assert "empty list" in errors["vitals.O2Sat"]
    assert errors["vitals.HR[3].val"] == "missing"


@pytest.mark.parametrize(
    ("name", "low_bad", "low_ok", "high_ok", "high_bad"),
    [
        ("HR", -1, 0, 300, 301),
        ("SBP", -1, 0, 300, 301),
        ("Temp", 24.9, 25, 45, 45.1),
        ("O2Sat", -1, 0, 100, 100.5),
        ("FiO2", 0.17, 0.21, 1.0, 1.01),
        ("pH", 6.4, 6.5, 8.0, 8.1),
        ("GCS", 2, 3, 15, 16),
        ("Age", -1, 0, 120, 121),
    ],
)
def test_range_limits_are_inclusive_and_a_value_past_them_is_left_out(
    name: str, low_bad: float, low_ok: float, high_ok: float, high_bad: float
) -> None:
    for ok in (low_ok, high_ok):
        p = parse_patient({"vitals": {"Resp": 18} | {name: ok}})
        assert p.latest(name) == ok or p.age == ok
        assert p.data_quality == ()
    for bad in (low_bad, high_bad):
        p = parse_patient({"vitals": {"Resp": 18} | {name: bad}})
        assert not p.has(name)
        assert p.age is None
        assert [(i.field, i.value, i.action) for i in p.data_quality] == [
            (f"vitals.{name}", bad, "left_out")
        ]


def test_field_prefix_for_batches() -> None:
    errors = field_errors({"vitals": {"HR": [80, "x"]}}, field_prefix="patients[3]")
    assert list(errors) == ["patients[3].vitals.HR[1]"]


def test_flat_form_paths_are_the_client_keys() -> None:
    errors = field_errors({"spo2": [95, "x"], "heartrate": "fast"})
    assert set(errors) == {"spo2[1]", "heartrate"}
    p = parse_patient({"spo2": [95, 101, 97]})
    assert [i.field for i in p.data_quality] == ["spo2[1]"]
    assert p.observations("O2Sat") == (Observation(97.0, 2.0), Observation(95.0, 0.0))


@pytest.mark.parametrize("body", [[], "x", None, 3])
def test_body_must_be_an_object(body: object) -> None:
    assert list(field_errors(body)) == ["body"]


def test_a_patient_without_any_measurement_is_rejected() -> None:
    assert "vitals" in field_errors({"patient_id": "p1", "Age": 60})
    assert "vitals" in field_errors({"vitals": {}})


def test_metadata_errors() -> None:
    errors = field_errors(
        {
            "patient_id": ["x"],
            "vitals": {"HR": 80},
            "notes": 5,
            "patient_history": {"conditions": ["ok", 3], "allergies": []},
            "units": "degF",
        }
    )
    assert set(errors) == {
        "patient_id",
        "notes",
        "patient_history.conditions[1]",
        "patient_history.allergies",
        "units",
    }
    assert parse_patient({"patient_id": 42, "HR": 80}).patient_id == "42"


# ---- batches and OpenAPI ---------------------------------------------------------------------


def test_batch_items() -> None:
    assert batch_items({"patients": [FLAT_EXAMPLE]}, max_items=2) == [FLAT_EXAMPLE]
    with pytest.raises(PayloadTooLarge):
        batch_items({"patients": [FLAT_EXAMPLE] * 3}, max_items=2)
    bad_bodies: list[object] = [
        {},
        {"patients": []},
        {"patients": {}},
        [FLAT_EXAMPLE],
        {"patients": [FLAT_EXAMPLE], "x": 1},
    ]
    for bad in bad_bodies:
        with pytest.raises(InvalidInput):
            batch_items(bad, max_items=2)


async def test_openapi_documents_both_forms_and_a_route_returns_422_paths() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/classify", openapi_extra=patient_request_openapi())
    async def classify(request: Request) -> dict[str, Any]:
        p = parse_patient(await request.json())
        return {"hr": p.latest("HR")}

    @app.post("/classify-batch", openapi_extra=patient_batch_request_openapi(1000))
    async def batch(request: Request) -> dict[str, Any]:
        return {"n": len(batch_items(await request.json(), max_items=1000))}

    doc = app.openapi()
    body = doc["paths"]["/classify"]["post"]["requestBody"]["content"]["application/json"]
    assert [s["title"] for s in body["schema"]["oneOf"]] == ["Flat patient", "Structured patient"]
    assert body["examples"]["flat"]["value"] == FLAT_EXAMPLE
    assert body["examples"]["structured"]["value"]["patient_id"] == "TEST001"
    flat_props = body["schema"]["oneOf"][0]["properties"]
    assert "°C" in flat_props["Temp"]["description"]
    batch_schema = doc["paths"]["/classify-batch"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    assert batch_schema["properties"]["patients"]["maxItems"] == 1000

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        ok = await client.post("/classify", json=dict(FLAT_EXAMPLE))
        assert ok.json() == {"hr": 110.0}
        bad = await client.post(
            "/classify", json={"vitals": {"HR": [{"val": 118, "ts": "2026-02-07T18:30"}, {}]}}
        )
    assert bad.status_code == 422
    err = bad.json()["error"]
    assert err["code"] == "invalid_input"
    assert {d["field"] for d in err["details"]} == {"vitals.HR[1].val", "vitals.HR[1].ts"}


def test_times_without_a_zone_beside_times_with_one_are_read_as_utc_and_said() -> None:
    patient = parse_patient(
        {
            "vitals": {
                "HR": [
                    {"val": 90, "ts": "2026-12-01T10:00:00+02:00"},
                    {"val": 95, "ts": "2026-12-01T09:30:00"},
                    {"val": 99, "ts": "2026-12-01T09:45:00"},
                ],
                "SBP": [{"val": 120, "ts": "2026-12-01T09:50:00Z"}],
            }
        },
        now=datetime(2026, 12, 1, 12, tzinfo=UTC),
    )
    [issue] = patient.data_quality
    assert (issue.field, issue.variable, issue.action) == ("vitals.HR[1]", "HR", "read_as")
    assert "2 times of HR sent without a time zone, read as UTC" in issue.reason
    # read as UTC: 09:45Z is the newest HR, 10:00+02:00 (08:00Z) the oldest
    assert [o.value for o in patient.observations("HR")] == [90, 95, 99]


def test_times_all_without_a_zone_are_utc_without_a_word() -> None:
    patient = parse_patient(
        {"vitals": {"HR": [{"val": 90, "ts": "2026-12-01T09:00:00"}]}},
        now=datetime(2026, 12, 1, 12, tzinfo=UTC),
    )
    assert patient.data_quality == ()
