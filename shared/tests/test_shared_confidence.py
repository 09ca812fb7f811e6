"""The confidence grade: which families of inputs an answer rests on, and how old its labs were."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sepsis_shared.confidence import lower_to, picture, picture_of_patient
from sepsis_shared.patient import parse_patient

FULL = {"HR": 0.0, "Resp": 0.0, "SBP": 0.0, "O2Sat": 0.0, "Temp": 1.0, "Lactate": 3.0}


def test_everything_recent_is_high() -> None:
    c = picture(FULL, trend=True)
    assert c.level == "high"
    assert c.reasons == []
    assert c.families == {
        "vital_signs": True,
        "blood_pressure": True,
        "labs": True,
        "oxygen": False,
        "mentation": False,
        "trend": True,
    }
    assert c.lab_age_hours == {"Lactate": 3.0}


@pytest.mark.parametrize(
    ("drop", "age", "trend", "words"),
    [
        (("SBP",), None, True, "no blood pressure"),
        (("Lactate",), None, True, "no key lab result"),
        ((), None, False, "no trend could be seen"),
    ],
)
def test_one_gap_is_medium_and_said(
    drop: tuple[str, ...], age: float | None, trend: bool, words: str
) -> None:
    ages = {k: v for k, v in FULL.items() if k not in drop}
    if age is not None:
        ages["Lactate"] = age
    c = picture(ages, trend=trend)
    assert c.level == "medium"
    assert len(c.reasons) == 1
    assert words in c.reasons[0]
    assert c.summary.startswith("Medium confidence: ")


def test_old_labs_are_reported_but_do_not_lower_the_grade() -> None:
    # measured on validation: hours with only old labs were ranked better, not worse
    c = picture(FULL | {"Lactate": 20.0}, trend=True)
    assert c.level == "high"
    assert c.lab_age_hours == {"Lactate": 20.0}


def test_map_stands_for_blood_pressure() -> None:
    ages = {k: v for k, v in FULL.items() if k != "SBP"} | {"MAP": 0.0}
    assert picture(ages, trend=True).level == "high"


def test_few_vitals_or_neither_bp_nor_labs_is_low() -> None:
    c = picture({"HR": 0.0, "Temp": 0.0, "Lactate": 1.0}, trend=True)
    assert c.level == "low"
    assert "only 2 of the 5" in c.reasons[0]
    assert c.missing_vitals == ["respiratory rate", "blood pressure", "SpO2"]
    c = picture({"HR": 0.0, "Resp": 0.0, "O2Sat": 0.0, "Temp": 0.0}, trend=True)
    assert c.level == "low"
    assert c.reasons == ["neither blood pressure nor a key lab result was sent"]


def test_lower_to_only_lowers_and_keeps_every_reason() -> None:
    medium = picture({k: v for k, v in FULL.items() if k != "SBP"}, trend=True)
    low = lower_to(medium, "low", ["HR 240 above the training range"])
    assert low.level == "low"
    assert low.reasons == [*medium.reasons, "HR 240 above the training range"]
    assert "and 1 more" in low.summary
    assert lower_to(low, "medium", ["x"]).level == "low"
    assert lower_to(medium, "low", []) is medium


def test_a_request_is_graded_from_what_was_taken_in() -> None:
    now = datetime(2026, 2, 7, 18, 40, tzinfo=UTC)
    p = parse_patient(
        {
            "vitals": {
                "HR": [
                    {"val": 118, "ts": "2026-02-07T18:30Z"},
                    {"val": 110, "ts": "2026-02-07T16:30Z"},
                ],
                "RR": 24,
                "SBP": 95,
                "SpO2": 93,
                "Temp": 38.4,
            },
            "labs": {"Lactate": [{"val": 2.4, "ts": "2026-02-07T06:30Z"}]},
        },
        now=now,
    )
    c = picture_of_patient(p)
    assert c.lab_age_hours == {"Lactate": 12.0}
    assert c.level == "high"
    assert c.families["trend"]
