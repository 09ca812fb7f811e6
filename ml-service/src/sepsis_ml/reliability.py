"""Whether an assessment's inputs lie inside what the model was trained on.

Gradient-boosted trees do not extrapolate: beyond the values they were fitted on they answer
as for the most extreme value they saw. At training time the range of each input the model
reads is recorded from the fitting rows, between the `RANGE_QUANTILES` of its measured values
(`training_ranges`, stored in metadata.json as `input_ranges`); at run time a window whose
vital-sign extremes, lab results or age fall outside is marked (`InputRanges.outside`), and
the assessment's confidence is lowered to low with the inputs named. The same function marks
the validation hours in evaluation, where the marked hours were checked against the others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from sepsis_ml.features import FEATURE_NAMES, LABS, VITALS

RANGE_QUANTILES: Final = (0.001, 0.999)
"""An input is outside the training range below the 0.1st or above the 99.9th percentile of
its measured values in the fitting rows."""

CHECKED_VARIABLES: Final = (*VITALS, *LABS, "Age")
LOW_END_ONLY: Final = frozenset({"Age"})
"""Checked only below their range: the challenge data caps age at 89, so the model has seen
every older patient, as 89 (and an age below 18 is a child, which it has never seen)."""

# Each checked variable -> the feature columns holding its values in a window
_COLUMNS: Final[Mapping[str, tuple[int, ...]]] = {
    **{v: (FEATURE_NAMES.index(f"{v}_min"), FEATURE_NAMES.index(f"{v}_max")) for v in VITALS},
    **{lab: (FEATURE_NAMES.index(f"{lab}_last"),) for lab in LABS},
    "Age": (FEATURE_NAMES.index("Age"),),
}


def training_ranges(values: Mapping[str, npt.ArrayLike]) -> dict[str, list[float]]:
    """The range of each checked variable over its measured values (NaN = not measured);
    variables never measured are left out (nothing can be said of them)."""
    out: dict[str, list[float]] = {}
    for name in CHECKED_VARIABLES:
        column = np.asarray(values[name], dtype=np.float64)
        measured = column[~np.isnan(column)]
        if measured.size:
            lo, hi = np.quantile(measured, RANGE_QUANTILES)
            out[name] = [float(lo), float(hi)]
    return out


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.0f}"


class InputRanges:
    """The training ranges of a model (`input_ranges` of its metadata)."""

    def __init__(self, ranges: Mapping[str, tuple[float, float] | list[float]]) -> None:
        self._checks = tuple(
            (name, _COLUMNS[name], float(lo), math.inf if name in LOW_END_ONLY else float(hi))
            for name, (lo, hi) in ranges.items()
            if name in _COLUMNS
        )

    def outside(self, features: npt.NDArray[np.float32]) -> list[list[str]]:
        """Per feature row, the inputs outside the training range, in words (empty: none)."""
        x = np.asarray(features, dtype=np.float64)
        out: list[list[str]] = [[] for _ in range(x.shape[0])]
        for name, columns, lo, hi in self._checks:
            values = x[:, list(columns)]
            missing = np.isnan(values)
            low = np.where(missing, np.inf, values).min(axis=1)
            high = np.where(missing, -np.inf, values).max(axis=1)
            for i in np.flatnonzero((low < lo) | (high > hi)).tolist():
                if high[i] > hi:
                    out[i].append(
                        f"{name} {_num(high[i])} above the training range (to {_num(hi)})"
                    )
                if low[i] < lo:
                    out[i].append(
                        f"{name} {_num(low[i])} below the training range (from {_num(lo)})"
                    )
        return out
