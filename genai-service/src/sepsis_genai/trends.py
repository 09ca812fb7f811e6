"""Trends over the observation window: first and last value, range and hourly slope."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sepsis_shared.patient import NormalizedPatient, Observation

__all__ = ["Trend", "compute_trends", "trend_of"]


@dataclass(frozen=True, slots=True)
class Trend:
    """How one variable moved over the window (values in the variable's canonical unit)."""

    variable: str
    first: float
    """The oldest value."""
    last: float
    """The newest value (the scored hour's)."""
    min: float
    max: float
    slope_per_hour: float | None
    """Least-squares slope against time in hours; None with one point or one distinct time."""
    n: int
    hours_span: float
    """Hours between the oldest and the newest observation."""

    @property
    def change(self) -> float:
        """Last minus first."""
        return self.last - self.first


def trend_of(variable: str, observations: Sequence[Observation]) -> Trend | None:
    """The trend of a series given oldest first; None when it is empty."""
    n = len(observations)
    if n == 0:
        return None
    values = [o.value for o in observations]
    # time runs forward: an observation h hours ago sits at -h
    times = [-o.hours_ago for o in observations]
    t_lo, t_hi = min(times), max(times)
    return Trend(
        variable=variable,
        first=values[0],
        last=values[-1],
        min=min(values),
        max=max(values),
        slope_per_hour=_slope(times, values) if n >= 2 and t_hi > t_lo else None,
        n=n,
        hours_span=t_hi - t_lo,
    )


def _slope(times: Sequence[float], values: Sequence[float]) -> float:
    n = len(times)
    t_mean = sum(times) / n
    v_mean = sum(values) / n
    stt = 0.0
    stv = 0.0
    for t, v in zip(times, values, strict=True):
        dt = t - t_mean
        stt += dt * dt
        stv += dt * (v - v_mean)
    return stv / stt


def compute_trends(p: NormalizedPatient) -> dict[str, Trend]:
    """The trend of every series the patient carries with at least one observation."""
    trends: dict[str, Trend] = {}
    for name, observations in p.series.items():
        trend = trend_of(name, observations)
        if trend is not None:
            trends[name] = trend
    return trends
