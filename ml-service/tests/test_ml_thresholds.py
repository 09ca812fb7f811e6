"""Site figures of an alert threshold, worked out by hand on small stays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sepsis_ml.training.thresholds import (
    Stays,
    config_change,
    expected_calibration_error,
    threshold_grid,
    threshold_table,
)

# Three stays of 12 hours. "a" is septic with its label from hour 8 (onset at hour 14),
# "b" is septic with its label from hour 2 (onset at hour 8), "c" is not septic.
LABELS = np.array([0] * 8 + [1] * 4 + [0] * 2 + [1] * 10 + [0] * 12)
IDS = np.array(["a"] * 12 + ["b"] * 12 + ["c"] * 12)
P = np.zeros(36)
P[[3, 4, 10]] = 0.5  # "a": alarmed at hours 3-4 and 10 (two alerts)
P[12 + 9] = 0.3  # "b": alarmed at hour 9 only, one hour after onset
P[24 + 5] = 0.6  # "c": one false alert
P[24 + 6] = 0.2


def test_the_figures_at_a_threshold() -> None:
    row = Stays(LABELS, P, IDS).row(0.25)
    assert row.patient_sensitivity == 1.0
    assert row.alerts_per_patient_day == pytest.approx(4 / (36 / 24))
    assert row.non_septic_patients_alerted == 1.0
    assert row.patient_ppv == pytest.approx(2 / 3)
    assert row.alert_ppv == pytest.approx(3 / 4)
    # "a": onset 14 - first alarm 3 = 11 h before; "b": 8 - 9 = 1 h after onset
    assert row.median_lead_time_h == pytest.approx((11 + -1) / 2)
    assert row.hours_alarmed == pytest.approx(5 / 36)


def test_a_higher_threshold_misses_a_patient_and_spares_one() -> None:
    row = Stays(LABELS, P, IDS).row(0.4)
    assert row.patient_sensitivity == 0.5  # "b" peaks at 0.3
    assert row.non_septic_patients_alerted == 1.0
    assert row.median_lead_time_h == 11.0
    row = Stays(LABELS, P, IDS).row(0.7)
    assert (row.patient_sensitivity, row.non_septic_patients_alerted) == (0.0, 0.0)
    assert math.isnan(row.patient_ppv)
    assert math.isnan(row.median_lead_time_h)


def test_an_alert_is_a_run_of_alarmed_hours_within_one_stay() -> None:
    # an alarmed last hour of one stay and first hour of the next are two alerts
    p = np.zeros(36)
    p[[11, 12]] = 0.9
    assert Stays(LABELS, p, IDS).row(0.5).alerts_per_patient_day == pytest.approx(2 / 1.5)


def test_the_threshold_for_a_target_sensitivity_is_the_highest_that_reaches_it() -> None:
    stays = Stays(LABELS, P, IDS)
    assert stays.threshold_for_sensitivity(0.5) == 0.5
    assert stays.threshold_for_sensitivity(1.0) == 0.3
    assert stays.row(0.3).patient_sensitivity == 1.0
    assert stays.row(np.nextafter(0.3, 1.0)).patient_sensitivity == 0.5
    assert stays.threshold_for_sensitivity(1.5) is None
    assert Stays(np.zeros(3), np.zeros(3), ["x"] * 3).threshold_for_sensitivity(0.8) is None


def test_expected_calibration_error() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(np.int8)
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.15
    # two bins by hand: probabilities 0.1 (labels 0, 0) and 0.9 (labels 1, 0)
    assert expected_calibration_error([0, 0, 1, 0], [0.1, 0.1, 0.9, 0.9], bins=2) == (
        pytest.approx((2 * 0.1 + 2 * 0.4) / 4)
    )


def test_grid_table_and_config_change() -> None:
    grid = threshold_grid(P, 0.0288)
    assert grid == sorted(set(grid))
    assert 0.0288 in grid
    table = threshold_table(Stays(LABELS, P, IDS), grid)
    sensitivity = [row["patient_sensitivity"] for row in table]
    assert sensitivity == sorted(sensitivity, reverse=True)
    change = config_change(0.0346926, "2026.12-1")
    assert "alert_threshold: 0.0346926" in change
    assert 'version: "2026.12-1-site"' in change
