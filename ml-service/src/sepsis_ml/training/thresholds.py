"""What an alert threshold means at a site: sensitivity, alert burden, PPV, lead time, ECE.

Before go-live a hospital scores its own history and chooses the threshold from its own alert
burden; these are the figures it chooses by. All take the hourly rows of stacked stays: `labels`
(the challenge's SepsisLabel: 1 from 6 hours before Sepsis-3 onset onward), the calibrated
`probabilities`, and `stay_ids` (the rows of one stay contiguous and in time order). An hour is
alarmed when its probability is at or above the threshold.

Definitions, per threshold:

- **patient sensitivity**: of the septic patients (any hour labelled 1), the share with at least
  one alarmed hour anywhere in their record;
- **alerts per patient-day**: an alert is an alarmed hour whose previous hour in the same stay
  was not alarmed (a run of alarmed hours is one alert, as a clinician would be paged once); the
  number of alerts divided by the hours scored / 24;
- **non-septic patients alerted**: of the patients never labelled 1, the share with any alert;
- **patient PPV**: of the patients with any alert, the share that are septic;
- **alert PPV**: of all alerts, the share raised in a septic patient's stay;
- **median lead time**: for each septic patient with an alarm, the onset hour minus the hour of
  their first alarm, in hours (onset = the first labelled hour + 6, since the label is moved 6
  hours earlier than onset): positive means before onset; an alarm first raised after onset
  counts with a negative lead time; the median over those patients;
- **hours alarmed**: the share of all scored hours that are alarmed.

`expected_calibration_error` sorts the hours by probability into `ECE_BINS` bins of equal count
and averages |mean probability - observed label rate| over the bins, weighted by their size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

LABEL_LEAD_HOURS: Final = 6
"""The challenge label switches on this many hours before the Sepsis-3 onset."""
ECE_BINS: Final = 10
ROUND_THRESHOLDS: Final = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)
QUANTILE_THRESHOLDS: Final = (0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)
"""Thresholds at these quantiles of the hourly probabilities: alarming in 50 % ... 1 % of
hours."""


@dataclass(frozen=True)
class ThresholdRow:
    """The figures of one threshold (see the module docstring)."""

    threshold: float
    patient_sensitivity: float
    alerts_per_patient_day: float
    non_septic_patients_alerted: float
    patient_ppv: float
    alert_ppv: float
    median_lead_time_h: float
    hours_alarmed: float

    def as_dict(self) -> dict[str, float]:
        """JSON-ready (NaN for a figure with nothing to count)."""
        return asdict(self)


class Stays:
    """The per-stay bookkeeping the figures need, worked out once for many thresholds."""

    def __init__(
        self, labels: npt.ArrayLike, probabilities: npt.ArrayLike, stay_ids: npt.ArrayLike
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int8)
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        ids = np.asarray(stay_ids)
        n = ids.shape[0]
        first = np.ones(n, dtype=bool)
        first[1:] = ids[1:] != ids[:-1]
        self.first_row = first
        self.stay = np.cumsum(first) - 1
        self.n_stays = int(self.stay[-1]) + 1 if n else 0
        starts = np.flatnonzero(first)
        self.hour = np.arange(n) - starts[self.stay]  # hour index within its stay
        septic = np.zeros(self.n_stays, dtype=bool)
        np.logical_or.at(septic, self.stay, self.labels == 1)
        self.septic = septic
        onset = np.full(self.n_stays, np.inf)
        labelled = self.labels == 1
        np.minimum.at(onset, self.stay[labelled], self.hour[labelled].astype(np.float64))
        self.onset = onset + LABEL_LEAD_HOURS
        self.max_probability = np.full(self.n_stays, -np.inf)
        np.maximum.at(self.max_probability, self.stay, self.probabilities)

    def row(self, threshold: float) -> ThresholdRow:
        """The figures at one threshold."""
        alarm = self.probabilities >= threshold
        previous = np.zeros_like(alarm)
        previous[1:] = alarm[:-1]
        onset_alert = alarm & (self.first_row | ~previous)
        alerts = np.bincount(self.stay, weights=onset_alert, minlength=self.n_stays)
        alerted = alerts > 0
        septic = self.septic
        first_alarm = np.full(self.n_stays, np.inf)
        np.minimum.at(first_alarm, self.stay[alarm], self.hour[alarm].astype(np.float64))
        detected = septic & alerted
        lead = self.onset[detected] - first_alarm[detected]
        n_alerts = float(alerts.sum())
        return ThresholdRow(
            threshold=float(threshold),
            patient_sensitivity=_share(alerted[septic]),
            alerts_per_patient_day=n_alerts / (alarm.shape[0] / 24.0) if alarm.size else math.nan,
            non_septic_patients_alerted=_share(alerted[~septic]),
            patient_ppv=_share(septic[alerted]),
            alert_ppv=float(alerts[septic].sum()) / n_alerts if n_alerts else math.nan,
            median_lead_time_h=float(np.median(lead)) if lead.size else math.nan,
            hours_alarmed=_share(alarm),
        )

    def threshold_for_sensitivity(self, target: float) -> float | None:
        """The highest threshold whose patient sensitivity reaches `target` (a septic patient
        is detected at any threshold up to their highest hourly probability); None when no
        threshold does (no septic patient, or a target above 1)."""
        tops = np.sort(self.max_probability[self.septic])[::-1]
        if not tops.size or not 0.0 < target <= 1.0:
            return None
        needed = math.ceil(target * tops.size - 1e-9)
        return float(tops[needed - 1])


def _share(mask: npt.NDArray[np.bool_]) -> float:
    return float(mask.mean()) if mask.size else math.nan


def threshold_grid(probabilities: npt.ArrayLike, *extra: float) -> list[float]:
    """Round thresholds, thresholds at quantiles of the probabilities, and `extra` (the
    model's own threshold), ascending and distinct."""
    p = np.asarray(probabilities, dtype=np.float64)
    values = set(ROUND_THRESHOLDS) | {float(x) for x in extra}
    if p.size:
        values |= {float(q) for q in np.quantile(p, QUANTILE_THRESHOLDS)}
    return sorted(values)


def threshold_table(stays: Stays, thresholds: list[float]) -> list[dict[str, float]]:
    """The figures at each threshold, as JSON-ready rows."""
    return [stays.row(t).as_dict() for t in thresholds]


def expected_calibration_error(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, bins: int = ECE_BINS
) -> float:
    """ECE over `bins` bins of equal count (see the module docstring)."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if not p.size:
        return math.nan
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if chunk.size:
            total += chunk.size * abs(float(p[chunk].mean()) - float(y[chunk].mean()))
    return total / p.size


def config_change(threshold: float, current_version: str) -> str:
    """The ML config lines that apply `threshold` (ml-config.yaml)."""
    return (
        f'version: "{current_version}-site"   # bump on every change\n'
        f"alert_threshold: {threshold:.6g}"
    )


def summary(row: dict[str, Any]) -> str:
    """One threshold's figures in words."""
    return (
        f"threshold {row['threshold']:.4g}: {100 * row['patient_sensitivity']:.1f} % of septic "
        f"patients alerted, median {row['median_lead_time_h']:.1f} h before onset; "
        f"{row['alerts_per_patient_day']:.2f} alerts per patient-day; "
        f"{100 * row['non_septic_patients_alerted']:.1f} % of non-septic patients alerted; "
        f"patient PPV {100 * row['patient_ppv']:.1f} %"
    )
