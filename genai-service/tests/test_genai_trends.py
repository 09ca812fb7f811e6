"""Trends: first/last/min/max, least-squares slope per hour, span, per series."""

from __future__ import annotations

import random

import numpy as np
import pytest

from sepsis_genai.trends import Trend, compute_trends, trend_of
from sepsis_shared.patient import NormalizedPatient, Observation, parse_patient


def test_list_newest_first_gives_oldest_first_trend() -> None:
    p = parse_patient({"vitals": {"SBP": [88, 96, 104, 118]}})
    t = compute_trends(p)["SBP"]
    assert (t.first, t.last, t.min, t.max, t.n) == (118, 88, 88, 118, 4)
    assert t.hours_span == 3
    assert t.change == -30
    # least squares on (-3, 118), (-2, 104), (-1, 96), (0, 88)
    assert t.slope_per_hour == pytest.approx(np.polyfit([-3, -2, -1, 0], [118, 104, 96, 88], 1)[0])
    assert t.slope_per_hour == pytest.approx(-9.8)


def test_time_series_in_any_order_is_sorted_by_time() -> None:
    p = parse_patient(
        {
            "vitals": {
                "Lactate": [
                    {"val": 3.1, "ts": "2026-02-07T18:30"},
                    {"val": 1.2, "ts": "2026-02-07T12:30"},
                    {"val": 2.0, "ts": "2026-02-07T15:00"},
                ],
                "HR": [{"val": 100, "ts": "2026-02-07T18:30"}],
            }
        }
    )
    t = compute_trends(p)["Lactate"]
    assert (t.first, t.last, t.n) == (1.2, 3.1, 3)
    assert t.hours_span == pytest.approx(6.0)
    times = [-6.0, -3.5, 0.0]
    assert t.slope_per_hour == pytest.approx(np.polyfit(times, [1.2, 2.0, 3.1], 1)[0])
    assert t.slope_per_hour is not None
    assert t.slope_per_hour > 0


def test_single_point_has_no_slope() -> None:
    p = parse_patient({"HR": 110, "Temp": 38.5})
    trends = compute_trends(p)
    assert set(trends) == {"HR", "Temp"}
    assert trends["HR"] == Trend("HR", 110, 110, 110, 110, None, 1, 0.0)


def test_points_at_one_time_have_no_slope() -> None:
    obs = (Observation(100.0, 2.0), Observation(120.0, 2.0))
    t = trend_of("HR", obs)
    assert t is not None
    assert t.slope_per_hour is None
    assert (t.n, t.hours_span, t.min, t.max) == (2, 0.0, 100.0, 120.0)


def test_only_sent_series_and_empty_series_are_skipped() -> None:
    p = NormalizedPatient(
        series={"HR": (Observation(90.0, 1.0), Observation(95.0, 0.0)), "SBP": ()}
    )
    trends = compute_trends(p)
    assert list(trends) == ["HR"]
    assert trends["HR"].slope_per_hour == pytest.approx(5.0)
    assert compute_trends(NormalizedPatient()) == {}


def test_slope_matches_least_squares_on_random_series() -> None:
    rng = random.Random(2019)
    for _ in range(50):
        n = rng.randint(2, 40)
        hours = sorted({round(rng.uniform(0, 48), 2) for _ in range(n)}, reverse=True)
        if len(hours) < 2:
            continue
        values = [rng.uniform(40, 180) for _ in hours]
        obs = tuple(Observation(v, h) for v, h in zip(values, hours, strict=True))
        t = trend_of("HR", obs)
        assert t is not None
        expected = np.polyfit([-h for h in hours], values, 1)[0]
        assert t.slope_per_hour == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert t.hours_span == pytest.approx(max(hours) - min(hours))
        assert (t.min, t.max) == (min(values), max(values))
