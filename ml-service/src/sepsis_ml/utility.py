"""The PhysioNet/CinC 2019 challenge's normalised utility of hourly sepsis alarms.

Definition: Reyna MA et al., "Early Prediction of Sepsis From Clinical Data: The
PhysioNet/Computing in Cardiology Challenge 2019", Crit Care Med 2020;48(2):210-217.

Per stay, the hour index t counts rows from 0. A septic stay (any SepsisLabel 1) has its onset
at t_sepsis = (first hour labelled 1) + 6, because the challenge label already switches on six
hours before onset. With d = t - t_sepsis, an alarm at hour t earns

- septic stay, d <= dt_optimal: a ramp from 0 at dt_early up to max_u_tp at dt_optimal, never
  below u_fp (an alarm far too early is a false alarm);
- septic stay, dt_optimal < d <= dt_late: a ramp from max_u_tp down to 0 at dt_late;
- non-septic stay: u_fp;

and no alarm earns 0 up to dt_optimal, then a ramp down to min_u_fn at dt_late (a missed
septic stay), or u_tn on a non-septic stay. Hours after t_sepsis + dt_late count nothing.
The total over all stays is normalised so that raising no alarm at all scores 0 and the best
possible alarms (every hour from t_sepsis + dt_early to t_sepsis + dt_late of every septic
stay, none elsewhere) score 1.

Everything is vectorised over the hourly rows of stacked stays (rows of one stay contiguous
and in time order), so a whole data set is scored in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class UtilityParams:
    """The challenge's constants (hours relative to onset, and utilities)."""

    dt_early: float = -12.0
    dt_optimal: float = -6.0
    dt_late: float = 3.0
    max_u_tp: float = 1.0
    min_u_fn: float = -2.0
    u_fp: float = -0.05
    u_tn: float = 0.0
    label_lead_hours: float = 6.0  # t_sepsis = first labelled hour + this


CHALLENGE = UtilityParams()


@dataclass(frozen=True)
class RowUtilities:
    """Utility of alarming / staying silent / the best choice at each row, and the totals."""

    alarm: FloatArray
    silent: FloatArray
    best: FloatArray
    best_total: float
    inaction_total: float

    def normalised(self, alarms: npt.ArrayLike) -> float:
        """Normalised utility of a boolean alarm per row (0 = no alarms, 1 = best)."""
        a = np.asarray(alarms, dtype=bool)
        observed = float(np.where(a, self.alarm, self.silent).sum())
        return (observed - self.inaction_total) / (self.best_total - self.inaction_total)


def row_utilities(
    labels: npt.ArrayLike, stay_ids: npt.ArrayLike, params: UtilityParams = CHALLENGE
) -> RowUtilities:
    """Per-row utilities for the stacked stays (rows of one stay contiguous, time-ordered)."""
    y = np.asarray(labels).astype(bool)
    ids = np.asarray(stay_ids)
    n = y.shape[0]
    if ids.shape[0] != n:
        raise ValueError("labels and stay_ids must have the same length")
    if n == 0:
        raise ValueError("no rows to score")
    new_stay = np.ones(n, dtype=bool)
    new_stay[1:] = ids[1:] != ids[:-1]
    stay_index = np.cumsum(new_stay) - 1
    first_row = np.flatnonzero(new_stay)
    t = np.arange(n) - first_row[stay_index]

    n_stays = first_row.shape[0]
    septic = np.zeros(n_stays, dtype=bool)
    np.logical_or.at(septic, stay_index, y)
    first_pos = np.full(n_stays, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_pos, stay_index[y], t[y])
    row_septic = septic[stay_index]
    t_sepsis = np.where(row_septic, first_pos[stay_index] + params.label_lead_hours, np.inf)
    d = np.where(row_septic, t - t_sepsis, 0.0)

    p = params
    m1 = p.max_u_tp / (p.dt_optimal - p.dt_early)
    b1 = -m1 * p.dt_early
    m2 = -p.max_u_tp / (p.dt_late - p.dt_optimal)
    b2 = -m2 * p.dt_late
    m3 = p.min_u_fn / (p.dt_late - p.dt_optimal)
    b3 = -m3 * p.dt_optimal

    counted = d <= p.dt_late
    early = d <= p.dt_optimal
    septic_alarm = np.where(early, np.maximum(m1 * d + b1, p.u_fp), m2 * d + b2)
    septic_silent = np.where(early, 0.0, m3 * d + b3)
    alarm = np.where(row_septic, np.where(counted, septic_alarm, 0.0), p.u_fp)
    silent = np.where(row_septic, np.where(counted, septic_silent, 0.0), p.u_tn)

    best_alarms = row_septic & (d >= p.dt_early) & (d <= p.dt_late)
    best = np.where(best_alarms, alarm, silent)
    best_total = float(best.sum())
    inaction_total = float(silent.sum())
    return RowUtilities(
        alarm=alarm.astype(np.float64),
        silent=silent.astype(np.float64),
        best=best.astype(np.float64),
        best_total=best_total,
        inaction_total=inaction_total,
    )


def normalised_utility(
    labels: npt.ArrayLike,
    alarms: npt.ArrayLike,
    stay_ids: npt.ArrayLike,
    params: UtilityParams = CHALLENGE,
) -> float:
    """The challenge's normalised utility of boolean hourly alarms."""
    return row_utilities(labels, stay_ids, params).normalised(alarms)


def utility_curve(rows: RowUtilities, scores: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Normalised utility of `alarm = score >= threshold` for every distinct score.

    Returns (thresholds descending, utilities), computed in one sort.
    """
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    sorted_scores = s[order]
    gain = np.cumsum((rows.alarm - rows.silent)[order])
    # the last row of each run of equal scores: alarming at that threshold alarms all of them
    last_of_run = np.ones(s.shape[0], dtype=bool)
    last_of_run[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    thresholds = sorted_scores[last_of_run]
    utilities = gain[last_of_run] / (rows.best_total - rows.inaction_total)
    return thresholds, utilities


def best_threshold(rows: RowUtilities, scores: npt.ArrayLike) -> tuple[float, float]:
    """The score threshold with the highest normalised utility, and that utility."""
    thresholds, utilities = utility_curve(rows, scores)
    i = int(np.argmax(utilities))
    return float(thresholds[i]), float(utilities[i])
