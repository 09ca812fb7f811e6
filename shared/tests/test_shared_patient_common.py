"""The common-request path of the patient parser agrees with the general parser.

Requests of numbers and lists of numbers (no units, no time series) are parsed in one pass
(`parse_patient_hourly` returns them as an `HourlyPatient`); everything else, and every error,
goes through the general parser. These tests hold the two to the same answer: the same
NormalizedPatient, or the same InvalidInput with the same field errors, over many generated
requests (valid ones, and each one broken in one of many ways) and over real rows of set A.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
from patient_requests import broken_request, normalized, valid_request

from sepsis_shared.errors import InvalidInput
from sepsis_shared.patient import (
    FLAT_EXAMPLE,
    SERIES_EXAMPLE,
    STRUCTURED_EXAMPLE,
    HourlyPatient,
    NormalizedPatient,
    _parse_general,
    parse_patient,
    parse_patient_hourly,
    parse_patients_hourly,
)
from sepsis_shared.variables import PHYSIONET_VARIABLES

SET_A_FILE = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "physionet2019" / "setA.parquet"
)

Outcome = tuple[str, Any]


def outcome(parse: Any, raw: object) -> Outcome:
    try:
        return ("patient", parse(raw, field_prefix="patients[7]"))
    except InvalidInput as exc:
        return ("error", (exc.message, exc.details))


def assert_same_everywhere(raw: object) -> Outcome:
    """parse_patient and parse_patient_hourly agree with the general parser on `raw`."""
    expected = outcome(_parse_general, raw)
    got = outcome(parse_patient, raw)
    hourly = outcome(parse_patient_hourly, raw)
    assert got == expected
    assert hourly[0] == expected[0]
    if expected[0] == "patient":
        assert normalized(hourly[1]) == expected[1]
        for patient in (got[1], normalized(hourly[1])):
            # equal values are not enough: 1 == 1.0, but the series hold floats only
            for observations in patient.series.values():
                assert all(type(o.value) is float for o in observations)
                assert all(type(o.hours_ago) is float for o in observations)
            for value in (patient.age, patient.iculos, patient.hosp_adm_time):
                assert value is None or type(value) is float
            assert patient.gender is None or type(patient.gender) is int
    else:
        assert hourly == expected
    return hourly


def test_generated_common_requests_take_the_common_path_with_the_same_result() -> None:
    rng = random.Random(2019)
    for _ in range(3000):
        raw = valid_request(rng)
        kind, parsed = assert_same_everywhere(raw)
        assert kind == "patient", raw
        assert isinstance(parsed, HourlyPatient), raw


def test_generated_broken_requests_give_the_same_errors_or_patients() -> None:
    rng = random.Random(7)
    kinds: dict[str, int] = {"patient": 0, "error": 0}
    for _ in range(3000):
        kind, _ = assert_same_everywhere(broken_request(rng))
        kinds[kind] += 1
    # both branches are exercised, or the comparison proves little
    assert kinds["patient"] > 150
    assert kinds["error"] > 1000


@pytest.mark.parametrize("example", [FLAT_EXAMPLE, STRUCTURED_EXAMPLE, SERIES_EXAMPLE])
def test_the_documented_examples(example: dict[str, Any]) -> None:
    assert_same_everywhere(dict(example))


def test_hourly_values_are_newest_first_and_normalise_to_hours_ago() -> None:
    parsed = parse_patient_hourly({"vitals": {"HR": [110, 100.5, 90], "Temp": 38}, "Age": 70})
    assert isinstance(parsed, HourlyPatient)
    assert parsed.hourly == {"HR": (110.0, 100.5, 90.0), "Temp": (38.0,)}
    p = parsed.normalized()
    assert [tuple(o) for o in p.observations("HR")] == [(90.0, 2.0), (100.5, 1.0), (110.0, 0.0)]
    assert p.latest("Temp") == 38.0
    assert p.age == 70.0


def test_uncommon_requests_come_back_normalised() -> None:
    for raw in (
        dict(SERIES_EXAMPLE),
        {"Temp": 100.4, "units": {"Temp": "degF"}},
        {"SupplementalO2": [True, False], "HR": 80},
        {"Consciousness": ["A", "V"]},
        {"HR": 80, "patient_history": {"conditions": ["COPD"], "medications": []}},
    ):
        assert isinstance(parse_patient_hourly(raw), NormalizedPatient)


def test_an_integer_beyond_any_float_is_a_range_error_not_a_crash() -> None:
    for raw in ({"HR": 10**400}, {"HR": [80, -(10**400)]}, {"HR": 80, "Age": 10**400}):
        with pytest.raises(InvalidInput) as info:
            parse_patient(raw, field_prefix="patients[1]")
        (detail,) = info.value.details
        assert detail["field"].startswith("patients[1].")
        assert "outside the accepted range" in detail["message"]
    with pytest.raises(InvalidInput) as info:
        parse_patient({"HR": 80, "patient_id": 10**200})
    assert [d["field"] for d in info.value.details] == ["patient_id"]


# ---- real rows ------------------------------------------------------------------------------


@pytest.mark.skipif(not SET_A_FILE.is_file(), reason="set A is not available here")
def test_real_rows_of_set_a_parse_the_same_both_ways() -> None:
    pd = pytest.importorskip("pandas")
    columns = list(PHYSIONET_VARIABLES)
    frame = pd.read_parquet(SET_A_FILE, columns=["patient_id", *columns, "Age", "Gender"])
    stay = frame["patient_id"].to_numpy()
    values = frame[columns].to_numpy()
    age, gender = frame["Age"].to_numpy(), frame["Gender"].to_numpy()
    rng = random.Random(11)
    kinds: dict[str, int] = {"hourly": 0, "error": 0}
    for end in rng.sample(range(len(frame)), 400):
        # the scored hour and up to 5 hours before it, of the same stay; newest first
        rows = [r for r in range(end, max(-1, end - 6), -1) if stay[r] == stay[end]]
        raw: dict[str, Any] = {"Age": float(age[end]), "Gender": int(gender[end])}
        for j, name in enumerate(columns):
            sent = [float(v) for v in values[rows, j] if not math.isnan(v)]
            if sent:
                raw[name] = sent if len(sent) > 1 and rng.random() < 0.7 else sent[0]
        kind, parsed = assert_same_everywhere(raw)
        if kind == "error":
            kinds["error"] += 1
        else:
            assert isinstance(parsed, HourlyPatient)
            kinds["hourly"] += 1
    # mostly valid; the few recording artefacts of set A (e.g. FiO2 0) are errors both ways
    assert kinds["hourly"] > 300
    assert kinds["error"] < 100


# ---- a whole batch at once ----------------------------------------------------------------


def one_by_one(items: list[Any]) -> list[Outcome]:
    out: list[Outcome] = []
    for i, raw in enumerate(items):
        try:
            out.append(("patient", parse_patient_hourly(raw, field_prefix=f"patients[{i}]")))
        except InvalidInput as exc:
            out.append(("error", (exc.message, exc.details)))
    return out


def batched(items: list[Any]) -> list[Outcome]:
    out: list[Outcome] = []
    for parsed in parse_patients_hourly(items):
        if isinstance(parsed, InvalidInput):
            out.append(("error", (parsed.message, parsed.details)))
        else:
            out.append(("patient", parsed))
    return out


def test_a_batch_parses_each_item_as_alone() -> None:
    rng = random.Random(12)
    for size in (1, 2, 5, 40, 200):
        for mix in (0.0, 0.05, 0.5):
            items: list[Any] = [
                broken_request(rng) if rng.random() < mix else valid_request(rng)
                for _ in range(size)
            ]
            if rng.random() < 0.3:
                items.insert(rng.randrange(len(items) + 1), rng.choice([None, [], "x", 3]))
            got, expected = batched(items), one_by_one(items)
            assert [k for k, _ in got] == [k for k, _ in expected]
            for (kind, a), (_, b) in zip(got, expected, strict=True):
                if kind == "patient":
                    assert type(a) is type(b)
                    assert normalized(a) == normalized(b)
                    if isinstance(a, HourlyPatient):
                        assert all(type(x) is float for xs in a.hourly.values() for x in xs)
                else:
                    assert a == b


def test_one_bad_list_in_a_batch_fails_only_its_patient() -> None:
    items: list[Any] = [{"HR": [80, 90]}, {"HR": [85, 400]}, {"HR": [70.5, 71]}, {"HR": 60}]
    got = parse_patients_hourly(items)
    assert isinstance(got[1], InvalidInput)
    assert [d["field"] for d in got[1].details] == ["patients[1].HR[1]"]
    for i in (0, 2, 3):
        assert isinstance(got[i], HourlyPatient)
    third = got[2]
    assert isinstance(third, HourlyPatient)
    assert third.hourly == {"HR": (70.5, 71.0)}
