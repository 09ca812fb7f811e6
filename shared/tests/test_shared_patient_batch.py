"""A batch body read straight from its bytes gives what decoding it and parsing each patient
gives: the same patients, the same errors, the same body-level failures.

`parse_patients_body` reads a body of common patients with `read_common_batch` and leaves the
rest to `parse_patients_hourly`; these tests hold it to the reference (`batch_items` of the
strictly decoded body, then `parse_patients_hourly`) over generated batches of valid,
broken and unusual patients, and check that the direct path is the one taken for the usual
bodies (else the comparison proves nothing about it).
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import msgspec
import pydantic_core
import pytest
from patient_requests import broken_request, normalized, valid_request

from sepsis_shared.errors import FieldError, InvalidInput, PayloadTooLarge, ServiceError
from sepsis_shared.patient import (
    FLAT_EXAMPLE,
    SERIES_EXAMPLE,
    STRUCTURED_EXAMPLE,
    HourlyPatient,
    batch_items,
    parse_patients_body,
    parse_patients_hourly,
)
from sepsis_shared.patient_batch import _USUAL_DECODER, read_common_batch

MAX_ITEMS = 50


def strict_decode(body: bytes) -> object:
    try:
        return pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidInput.for_fields([FieldError(field="body", message=str(exc))]) from exc


def answer(parse: Any, body: bytes) -> tuple[str, Any]:
    """What a parse gives for `body`: each item's patient or error, or the body's error."""
    try:
        parsed = parse(body)
    except ServiceError as exc:
        return ("body", (type(exc).__name__, exc.message, exc.details))
    items: list[Any] = []
    for p in parsed:
        if isinstance(p, InvalidInput):
            items.append(("error", (p.message, p.details)))
        else:
            items.append(("patient", type(p).__name__, normalized(p)))
            if isinstance(p, HourlyPatient):
                assert all(type(x) is float for xs in p.hourly.values() for x in xs)
                assert all(type(xs) is tuple for xs in p.hourly.values())
    return ("items", items)


def reference(body: bytes) -> list[Any]:
    return parse_patients_hourly(batch_items(strict_decode(body), max_items=MAX_ITEMS))


def direct(body: bytes) -> list[Any]:
    return parse_patients_body(body, max_items=MAX_ITEMS, decode=strict_decode)


def assert_same(body: bytes) -> tuple[str, Any]:
    expected = answer(reference, body)
    assert answer(direct, body) == expected, body[:400]
    return expected


def body_of(items: list[Any]) -> bytes:
    return json.dumps({"patients": items}).encode()


def test_generated_valid_batches_take_the_direct_path_with_the_same_patients() -> None:
    rng = random.Random(31)
    taken = 0
    for _ in range(300):
        items = [valid_request(rng) for _ in range(rng.randint(1, 8))]
        kind, _ = assert_same(body_of(items))
        assert kind == "items"
        fast = read_common_batch(body_of(items), max_items=MAX_ITEMS)
        if fast is not None:
            # what the direct path accepts is exactly what the common parser gives
            for raw, p in zip(items, fast, strict=True):
                if p is not None:
                    (expected,) = reference(body_of([raw]))
                    assert isinstance(expected, HourlyPatient)
                    assert p == expected
                    taken += 1
    # aliases and unusual spellings leave a body to the general path; most patients still go
    # the direct way
    assert taken > 300


def test_generated_broken_batches_give_the_same_errors() -> None:
    rng = random.Random(32)
    kinds = {"items": 0, "body": 0}
    for _ in range(600):
        items: list[Any] = [
            broken_request(rng) if rng.random() < 0.4 else valid_request(rng)
            for _ in range(rng.randint(1, 6))
        ]
        if rng.random() < 0.1:
            items.insert(rng.randrange(len(items) + 1), rng.choice([None, [], "x", 3, {}]))
        # NaN and infinities go out as the JSON extensions a strict decoder refuses
        kind, _ = assert_same(body_of(items))
        kinds[kind] += 1
    assert kinds["items"] > 300
    assert kinds["body"] > 20


def canonical_patient(rng: random.Random, i: int) -> dict[str, Any]:
    """A patient of the usual structured kind: canonical names, lists and lab floats."""
    vitals: dict[str, Any] = {
        "HR": [round(rng.uniform(50, 140), 1) for _ in range(6)],
        "Temp": [round(rng.uniform(35, 40), 1) for _ in range(6)],
        "SBP": [rng.randint(80, 160) for _ in range(6)],
        "Resp": [rng.randint(10, 35) for _ in range(4)],
        "Lactate": round(rng.uniform(0.5, 6), 2),
    }
    return {"patient_id": f"P{i}", "vitals": vitals, "Age": rng.randint(18, 95), "Gender": "f"}


def test_a_usual_batch_is_read_directly_and_one_bad_value_fails_only_its_patient() -> None:
    rng = random.Random(5)
    items = [canonical_patient(rng, i) for i in range(20)]
    fast = read_common_batch(body_of(items), max_items=MAX_ITEMS)
    assert fast is not None
    assert all(isinstance(p, HourlyPatient) for p in fast)
    items[3]["vitals"]["HR"][2] = 400  # out of range
    items[7]["vitals"]["GCS"] = [15, 14.5]  # GCS is whole points
    items[9]["vitals"]["SBP"] = []
    items[11]["Age"] = 200
    body = body_of(items)
    fast = read_common_batch(body, max_items=MAX_ITEMS)
    assert fast is not None
    assert [i for i, p in enumerate(fast) if p is None] == [3, 7, 9, 11]
    kind, got = assert_same(body)
    assert kind == "items"
    failed = {i: entry[1][1] for i, entry in enumerate(got) if entry[0] == "error"}
    assert sorted(failed) == [3, 7, 9, 11]
    assert [d["field"] for d in failed[3]] == ["patients[3].vitals.HR[2]"]
    assert [d["field"] for d in failed[11]] == ["patients[11].Age"]


@pytest.mark.parametrize(
    "patient",
    [
        dict(FLAT_EXAMPLE),
        dict(STRUCTURED_EXAMPLE),
        dict(SERIES_EXAMPLE),  # time series: the general path
        {"HR": 80, "vitals": {"HR": [81, 82]}},  # given twice
        {"HR": None, "vitals": {"HR": [81, 82]}},  # twice, once as "not measured"
        {"vitals": {"HR": [80]}, "labs": {"heart_rate": 90}},  # twice, by an alias
        {"vitals": {"HR": [80, 81], "Age": 70, "Gender": 1}},
        {"vitals": {"HR": None}},  # nothing measured
        {"vitals": {"HR": [80]}, "Unit1": 1, "unit2": 0},  # ignored challenge columns
        {"vitals": {"SupplementalO2": True, "Consciousness": "v", "HR": 90}},
        {"vitals": {"SupplementalO2": [1, 0], "HR": 10**400}},
        {"vitals": {"HR": [80, 10**30]}},
        {"vitals": {"HR": [80, 1e400]}},
        {"vitals": {"HR": 80}, "patient_id": 10**200},
        {"vitals": {"HR": 80}, "patient_id": 12.5},
        {"vitals": {"HR": 80}, "patient_id": ""},
        {"vitals": {"HR": 80}, "notes": "n" * 20_001},
        {"vitals": {"HR": 80}, "Gender": 2},
        {"vitals": {"HR": 80}, "Gender": True},
        {"vitals": {"HR": 80}, "Gender": " MALE "},
        {"vitals": [80]},
        {"vitals": {"HR": [0.5] * 2001}},
        {"vitals": {"GCS": [15, 14.5]}},
        {"hr": [80, 81], "TEMP": 38.2},
        {"vitals": {"HR": 80}, "patient_history": {"conditions": ["COPD"]}},
        {"vitals": {"Temp": 100.4}, "units": {"Temp": "degF"}},
    ],
)
def test_each_kind_of_patient_alone_and_among_usual_ones(patient: dict[str, Any]) -> None:
    rng = random.Random(9)
    assert_same(body_of([patient]))
    items = [canonical_patient(rng, i) for i in range(5)]
    items.insert(2, patient)
    assert_same(body_of(items))


@pytest.mark.parametrize(
    ("patient", "usual"),
    [
        ({"vitals": {"HR": [80]}, "labs": {"HR": 90}}, True),  # twice
        ({"vitals": {"HR": None, "Temp": 38}, "labs": {"HR": [90]}}, True),  # twice, once null
        ({"vitals": {"HR": None}, "labs": {}}, True),  # nothing measured
        ({"vitals": {}, "labs": {"Lactate": 2, "WBC": [12.5, 11]}}, True),
        ({"labs": {"Lactate": 2}, "Age": 70, "Gender": 1.0}, True),
        ({"vitals": {"HR": 80}, "ICULOS": 0}, True),
        ({"vitals": {"HR": 80}, "ICULOS": 12, "HospAdmTime": -5.5}, True),
        ({"vitals": {"HR": 80}, "patient_id": 42, "notes": "febrile"}, True),
        ({"vitals": {"HR": 80}, "patient_id": "p" * 129}, True),
        ({"vitals": {"HR": 80}, "patient_id": -(10**127)}, True),
        ({"vitals": {"HR": 80}, "Gender": "x"}, True),
        ({"vitals": {"GCS": [15, 14], "HR": 80}}, True),
        ({"vitals": None, "labs": None}, True),
        ({"vitals": {"HR": 80}, "Age": 10**400}, True),  # read, then refused: beyond any float
        # not of the usual form: the body is read the wider way
        ({"vitals": {"HR": 80, "Age": 70}}, False),  # a demographic inside vitals
        ({"vitals": {"HR": 80, "heart_rate": 81}}, False),  # an alias
        ({"vitals": {"GCS": 14.5, "HR": 80}}, False),  # GCS is whole points
        ({"vitals": {"HR": [80, 400]}}, False),  # out of range
        ({"vitals": {"HR": []}}, False),  # an empty list
        ({"vitals": {"HR": [0.5] * 2001}}, False),  # too long
        ({"vitals": {"SupplementalO2": True, "HR": 80}}, False),  # a flag as true/false
    ],
)
def test_each_usual_form_patient_among_usual_ones(patient: dict[str, Any], usual: bool) -> None:
    rng = random.Random(10)
    items = [canonical_patient(rng, i) for i in range(4)]
    items.insert(1, patient)
    body = body_of(items)
    try:
        read_as_usual = bool(_USUAL_DECODER.decode(body).patients)
    except msgspec.DecodeError:
        read_as_usual = False
    assert read_as_usual is usual
    assert_same(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{}",
        b'{"patients": []}',
        b'{"patients": {}}',
        b'{"patients": [{"HR": 80}], "extra": 1}',
        b'{"patients": [{"HR": NaN}]}',
        b'{"patients": [{"HR": 80}]} trailing',
        b'\xef\xbb\xbf{"patients": [{"HR": 80}]}',
        b'{"patients": [{"HR": 80, "HR": 90}]}',
        b'{"patients": [{"HR": 80}], "patients": [{"HR": 300}]}',
        b'{"patients": [{"patient_id": "\\ud800", "HR": 80}]}',
        b'{"patients": [{"patient_id": "\xff", "HR": 80}]}',
        b'{"patients": [{"HR": -0}, {"HR": 8e1}, {"HR": 80.00000000000001}]}',
        b'{"patients": [{"vitals": {"HR": [80, 1' + b"0" * 400 + b"]}}]}",
        b'{"patients": [{"vitals": {"HR": [80, 1e308, -1e308]}}]}',
    ],
)
def test_odd_bodies(body: bytes) -> None:
    assert_same(body)


def test_too_many_patients_is_the_same_payload_error() -> None:
    body = body_of([{"HR": 80}] * (MAX_ITEMS + 1))
    assert read_common_batch(body, max_items=MAX_ITEMS) is None
    with pytest.raises(PayloadTooLarge) as info:
        direct(body)
    assert info.value.details == {"max_items": MAX_ITEMS, "items": MAX_ITEMS + 1}


def test_values_are_floats_newest_first() -> None:
    body = body_of([{"vitals": {"HR": [110, 100.5, 90], "Lactate": 2}, "Age": 70}])
    fast = read_common_batch(body, max_items=MAX_ITEMS)
    assert fast is not None
    (p,) = fast
    assert p is not None
    assert p.hourly == {"HR": (110.0, 100.5, 90.0), "Lactate": (2.0,)}
    assert p.age == 70.0
    assert type(p.age) is float
    assert not math.isnan(p.hourly["HR"][0])
