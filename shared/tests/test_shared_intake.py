"""Taking a patient in: values too old to count are left out and listed; bedside findings come
from fields or from the notes, and the field wins where they disagree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sepsis_shared.intake import InputLimits
from sepsis_shared.patient import Observation, parse_patient

NOW = datetime(2026, 2, 8, 0, 0, tzinfo=UTC)


def _at(hour: int, minute: int = 0) -> str:
    return f"2026-02-07T{hour:02d}:{minute:02d}Z"


def parse(raw: dict[str, Any], **limits: float) -> Any:
    return parse_patient(raw, limits=InputLimits(**limits), now=NOW)


def test_a_lab_counts_for_its_age_limit_and_an_older_one_is_listed() -> None:
    p = parse(
        {
            "vitals": {"HR": [{"val": 110, "ts": _at(22)}]},
            "labs": {
                "Lactate": [{"val": 3.1, "ts": _at(4)}],  # 18 h old: counts
                "Creatinine": [{"val": 2.4, "ts": "2026-02-06T20:00Z"}],  # 26 h old: too old
            },
        }
    )
    assert p.observations("Lactate") == (Observation(3.1, 18.0),)
    assert not p.has("Creatinine")
    (issue,) = p.data_quality
    assert (issue.field, issue.variable, issue.value, issue.hours_ago, issue.action) == (
        "labs.Creatinine",
        "Creatinine",
        2.4,
        26.0,
        "left_out",
    )
    assert "26 h old" in issue.reason
    assert "24 h" in issue.reason


def test_the_age_limits_are_configurable_and_enforced_at_the_bound() -> None:
    raw = {
        "vitals": {
            "HR": [{"val": 110, "ts": _at(22)}],
            "SBP": [{"val": 95, "ts": _at(14)}],  # 8 h before the scored hour
            "Temp": [{"val": 38.4, "ts": _at(13, 59)}],  # just over 8 h
        },
        "labs": {"WBC": [{"val": 15.0, "ts": _at(10)}]},  # 12 h
    }
    p = parse(raw)
    assert p.has("SBP")
    assert not p.has("Temp")
    assert p.has("WBC")
    strict = parse(raw, vital_max_age_hours=4, lab_max_age_hours=12)
    assert not strict.has("SBP")
    assert strict.has("WBC")
    assert not parse(raw, lab_max_age_hours=11.5).has("WBC")
    with pytest.raises(ValueError, match="less than or equal to 24"):
        InputLimits(lab_max_age_hours=48)


def test_older_points_of_a_recent_variable_stay_as_its_history() -> None:
    hourly = list(range(100, 130))  # 30 hourly values, newest first
    p = parse({"HR": hourly})
    assert len(p.observations("HR")) == 30
    assert p.data_quality == ()


def test_findings_from_the_notes_fill_what_the_fields_did_not_send() -> None:
    p = parse(
        {
            "vitals": {"HR": 118, "SBP": 88},
            "notes": "GCS 11, on 4 L nasal cannula, norepinephrine started",
        }
    )
    assert p.latest("GCS") == 11.0
    assert p.latest("SupplementalO2") == 1.0
    assert p.latest("Vasopressors") == 1.0
    sources = {f.variable: (f.source, f.text) for f in p.findings}
    assert sources == {
        "GCS": ("note", "GCS 11"),
        "SupplementalO2": ("note", "on supplemental oxygen"),
        "Vasopressors": ("note", "on vasopressors or inotropes"),
    }
    assert all(f.evidence for f in p.findings)


def test_a_field_wins_over_the_notes_and_the_disagreement_is_listed() -> None:
    p = parse({"vitals": {"HR": 90, "GCS": 14}, "notes": "GCS 9 this evening"})
    assert p.latest("GCS") == 14.0
    (finding,) = p.findings
    assert (finding.source, finding.evidence) == ("field", None)
    (issue,) = p.data_quality
    assert (issue.field, issue.variable, issue.value, issue.action) == (
        "notes",
        "GCS",
        9.0,
        "left_out",
    )
    assert "vitals.GCS" in issue.reason
    # agreeing notes are not an issue
    assert parse({"vitals": {"HR": 90, "GCS": 9}, "notes": "GCS 9"}).data_quality == ()


def test_negated_and_hypothetical_notes_give_nothing() -> None:
    p = parse({"HR": 90, "notes": "No confusion. May need pressors if MAP < 65."})
    assert p.findings == ()
    assert not p.has("Vasopressors")


def test_a_batch_prefix_reaches_the_notes_issue() -> None:
    p = parse_patient(
        {"vitals": {"HR": 90, "GCS": 14}, "notes": "GCS 9"},
        field_prefix="patients[2]",
        now=NOW,
    )
    assert [i.field for i in p.data_quality] == ["patients[2].notes"]
