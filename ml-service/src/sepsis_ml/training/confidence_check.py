"""Checking the confidence grade on validation hours: are the hours graded lower the ones the
model ranks less well?

Every scored hour is graded by the service's own rule (`sepsis_shared.confidence.picture`, then
`sepsis_ml.reliability.InputRanges` for inputs outside the training range), from what its
features show: which vitals and labs the window held, each lab's age, and whether a vital sign
was measured in two different hours (its standard deviation is defined). The model's hourly
AUROC is then taken within each grade.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from sepsis_ml.features import FEATURE_NAMES, LABS, VITALS
from sepsis_ml.reliability import InputRanges
from sepsis_shared.confidence import ConfidenceLevel, lower_to, picture

_LAST = {v: FEATURE_NAMES.index(f"{v}_last") for v in VITALS}
_STD = [FEATURE_NAMES.index(f"{v}_std") for v in VITALS]
_LAB = {
    lab: (FEATURE_NAMES.index(f"{lab}_last"), FEATURE_NAMES.index(f"{lab}_age")) for lab in LABS
}
LEVELS: tuple[ConfidenceLevel, ...] = ("high", "medium", "low")


def grade_rows(features: npt.NDArray[np.float32], ranges: InputRanges) -> list[ConfidenceLevel]:
    """The confidence level the service would give each feature row."""
    x = np.asarray(features, dtype=np.float64)
    outside = ranges.outside(features)
    measured_twice = ~np.isnan(x[:, _STD])
    trend = [bool(row.any()) for row in measured_twice]
    levels: list[ConfidenceLevel] = []
    for i, row in enumerate(x.tolist()):
        ages = {v: 0.0 for v, j in _LAST.items() if not math.isnan(row[j])}
        for lab, (j, k) in _LAB.items():
            if not math.isnan(row[j]):
                ages[lab] = row[k]
        confidence = picture(ages, trend=trend[i])
        if outside[i]:
            confidence = lower_to(confidence, "low", outside[i])
        levels.append(confidence.level)
    return levels


def accuracy_by_grade(
    labels: npt.NDArray[np.int8],
    probabilities: npt.NDArray[np.float64],
    levels: list[ConfidenceLevel],
) -> dict[str, dict[str, Any]]:
    """Per grade: its share of the hours, its share of the labelled hours, and the model's
    hourly AUROC within it (None when a grade holds only one class)."""
    graded = np.asarray(levels)
    out: dict[str, dict[str, Any]] = {}
    for level in LEVELS:
        mask = graded == level
        y = labels[mask]
        both = 0 < int(y.sum()) < y.shape[0]
        out[level] = {
            "hours_share": float(mask.mean()) if mask.size else 0.0,
            "positive_rate": float(y.mean()) if y.size else None,
            "hourly_auroc": float(roc_auc_score(y, probabilities[mask])) if both else None,
        }
    return out
