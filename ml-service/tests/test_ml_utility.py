"""The challenge's normalised utility, against cases worked out by hand from Reyna et al. 2020.

The septic stay used throughout has 20 hourly rows, labelled 1 from row 10, so its onset is
t_sepsis = 10 + 6 = 16 and row t sits at d = t - 16 (from -16 to +3). By the definition:
- silent rows cost 0 up to d = -6, then (-2/9)(d + 6): -2/9, -4/9, ..., -2 for d = -5..3,
  in total -10 (the utility of raising no alarm);
- alarms earn (d + 12)/6 for d in [-12, -6] (0 at -12, 1 at -6), (3 - d)/9 for d in (-6, 3],
  and -0.05 (a false alarm) for d < -12 where the ramp would fall below it;
- the best alarms (every row with d in [-12, 3]) earn 21/6 + 36/9 = 7.5.
"""

from __future__ import annotations

import numpy as np
import pytest

from sepsis_ml.utility import (
    UtilityParams,
    best_threshold,
    normalised_utility,
    row_utilities,
    utility_curve,
)

SEPTIC_LABELS = [0] * 10 + [1] * 10
T = np.arange(20)


def total(labels: list[int], alarms: np.ndarray, ids: list[str] | None = None) -> float:
    rows = row_utilities(labels, ids or ["s"] * len(labels))
    return float(np.where(alarms, rows.alarm, rows.silent).sum())


def test_non_septic_patient_with_one_false_alarm_costs_u_fp() -> None:
    alarms = np.zeros(12, dtype=bool)
    alarms[5] = True
    assert total([0] * 12, alarms) == pytest.approx(-0.05)
    assert total([0] * 12, np.zeros(12, dtype=bool)) == 0.0


def test_septic_patient_never_alarmed_scores_minus_ten() -> None:
    assert total(SEPTIC_LABELS, np.zeros(20, dtype=bool)) == pytest.approx(-10.0)


def test_single_alarm_at_the_optimal_hour_earns_one() -> None:
    alarms = T == 10  # d = -6
    assert total(SEPTIC_LABELS, alarms) == pytest.approx(1.0 - 10.0)


def test_alarms_from_the_optimal_hour_on() -> None:
    alarms = T >= 10  # 1 at d = -6, then 8/9 + 7/9 + ... + 0
    assert total(SEPTIC_LABELS, alarms) == pytest.approx(5.0)
    assert normalised_utility(SEPTIC_LABELS, alarms, ["s"] * 20) == pytest.approx(15.0 / 17.5)


def test_alarms_too_late_earn_little_and_the_misses_cost() -> None:
    alarms = T >= 17  # d = 1, 2, 3: 2/9 + 1/9 + 0; silent d = -5..0: -(2/9)(1 + ... + 6)
    assert total(SEPTIC_LABELS, alarms) == pytest.approx(3 / 9 - 42 / 9)


def test_alarms_too_early_are_false_alarms() -> None:
    alarms = T <= 3  # d = -16..-13: each max(ramp, -0.05) = -0.05; then silent, -10
    assert total(SEPTIC_LABELS, alarms) == pytest.approx(-0.2 - 10.0)


def test_the_early_ramp() -> None:
    # d = -11 earns 1/6, d = -8 earns 4/6
    assert total(SEPTIC_LABELS, T == 5) == pytest.approx(1 / 6 - 10.0)
    assert total(SEPTIC_LABELS, T == 8) == pytest.approx(4 / 6 - 10.0)


def test_best_and_inaction_totals_and_normalisation() -> None:
    rows = row_utilities(SEPTIC_LABELS, ["s"] * 20)
    assert rows.best_total == pytest.approx(7.5)
    assert rows.best.sum() == pytest.approx(7.5)
    assert rows.inaction_total == pytest.approx(-10.0)
    assert rows.normalised(T >= 4) == pytest.approx(1.0)
    assert rows.normalised(np.zeros(20, dtype=bool)) == pytest.approx(0.0)


def test_hours_after_the_late_limit_count_nothing() -> None:
    labels = [0] * 10 + [1] * 12  # rows 20, 21 are d = 4, 5
    rows = row_utilities(labels, ["s"] * 22)
    assert rows.alarm[20:].tolist() == [0.0, 0.0]
    assert rows.silent[20:].tolist() == [0.0, 0.0]


def test_two_patients_are_summed_before_normalising() -> None:
    labels = SEPTIC_LABELS + [0] * 12
    ids = ["s"] * 20 + ["n"] * 12
    alarms = np.concatenate([T >= 10, np.arange(12) == 5])
    # (5 - 0.05 - (-10)) / (7.5 - (-10))
    assert normalised_utility(labels, alarms, ids) == pytest.approx(14.95 / 17.5)


def test_stays_are_told_apart_by_id_changes() -> None:
    # the onset is per stay: the same labels twice in a row are two septic stays
    labels = SEPTIC_LABELS * 2
    rows = row_utilities(labels, ["a"] * 20 + ["b"] * 20)
    assert rows.inaction_total == pytest.approx(-20.0)
    assert rows.best_total == pytest.approx(15.0)


def test_label_on_from_the_first_row() -> None:
    # onset at t = 6: rows 0..9 are d = -6..3, all inside the best window
    rows = row_utilities([1] * 10, ["s"] * 10)
    assert rows.best_total == pytest.approx(5.0)
    assert rows.inaction_total == pytest.approx(-10.0)


def _reference_total(labels: np.ndarray, alarms: np.ndarray) -> float:
    """A row-by-row transcription of the published definition, for one stay."""
    p = UtilityParams()
    septic = bool(labels.any())
    t_sepsis = int(np.argmax(labels)) + 6 if septic else None
    u = 0.0
    for t, alarm in enumerate(alarms):
        if not septic:
            u += p.u_fp if alarm else p.u_tn
            continue
        assert t_sepsis is not None
        d = t - t_sepsis
        if d > p.dt_late:
            continue
        if alarm:
            if d <= p.dt_optimal:
                u += max((d - p.dt_early) / (p.dt_optimal - p.dt_early), p.u_fp)
            else:
                u += (p.dt_late - d) / (p.dt_late - p.dt_optimal)
        elif d > p.dt_optimal:
            u += p.min_u_fn * (d - p.dt_optimal) / (p.dt_late - p.dt_optimal)
    return u


def test_vectorised_form_matches_the_row_by_row_definition() -> None:
    rng = np.random.default_rng(7)
    labels_all, alarms_all, ids = [], [], []
    expected = 0.0
    for stay in range(60):
        n = int(rng.integers(8, 40))
        labels = np.zeros(n, dtype=int)
        if rng.random() < 0.4:
            labels[int(rng.integers(0, n)) :] = 1
        alarms = rng.random(n) < 0.3
        expected += _reference_total(labels, alarms)
        labels_all.append(labels)
        alarms_all.append(alarms)
        ids += [f"p{stay}"] * n
    labels_cat = np.concatenate(labels_all)
    alarms_cat = np.concatenate(alarms_all)
    rows = row_utilities(labels_cat, ids)
    got = float(np.where(alarms_cat, rows.alarm, rows.silent).sum())
    assert got == pytest.approx(expected)


def test_utility_curve_agrees_with_thresholding() -> None:
    rng = np.random.default_rng(3)
    labels = np.concatenate([SEPTIC_LABELS, [0] * 15, [0] * 5 + [1] * 8])
    ids = ["a"] * 20 + ["b"] * 15 + ["c"] * 13
    scores = np.round(rng.random(labels.shape[0]), 1)  # ties on purpose
    rows = row_utilities(labels, ids)
    thresholds, utilities = utility_curve(rows, scores)
    for th, u in zip(thresholds, utilities, strict=True):
        assert u == pytest.approx(rows.normalised(scores >= th))
    th, u = best_threshold(rows, scores)
    assert u == pytest.approx(max(rows.normalised(scores >= t) for t in np.unique(scores)))
    assert rows.normalised(scores >= th) == pytest.approx(u)
