"""The validation check of the confidence grade grades feature rows as the service grades
requests, and takes the model's AUROC within each grade."""

from __future__ import annotations

import numpy as np

from sepsis_ml.features import features_for_windows, window_from_patient
from sepsis_ml.model import SepsisModel
from sepsis_ml.training.confidence_check import accuracy_by_grade, grade_rows
from sepsis_shared.confidence import picture_of_patient
from sepsis_shared.patient import parse_patient

REQUESTS = [
    {"vitals": {"HR": [96, 92], "Resp": 20, "SBP": 118, "O2Sat": 97, "Temp": 37.2}, "WBC": 9.0},
    {"vitals": {"HR": [96, 92], "Resp": 20, "SBP": 118, "O2Sat": 97, "Temp": 37.2}},
    {"HR": 96, "Resp": 20, "MAP": 80, "O2Sat": 97, "Lactate": 1.1},
    {"HR": 96, "Temp": 37.0},
    {"HR": [250, 240], "Resp": 20, "SBP": 118, "O2Sat": 97, "Temp": 37.2, "WBC": 9.0},
]


def test_feature_rows_get_the_grade_the_service_gives_the_request() -> None:
    model = SepsisModel.load(threads=1)
    patients = [parse_patient(r) for r in REQUESTS]
    features = features_for_windows([window_from_patient(p) for p in patients])
    graded = grade_rows(features, model.input_ranges)
    served = []
    for p, outside in zip(patients, model.input_ranges.outside(features), strict=True):
        level = picture_of_patient(p).level
        served.append("low" if outside else level)
    assert graded == served == ["high", "medium", "medium", "low", "low"]


def test_accuracy_by_grade() -> None:
    labels = np.array([0, 1, 0, 1, 0, 0], dtype=np.int8)
    p = np.array([0.1, 0.9, 0.2, 0.1, 0.5, 0.4])
    out = accuracy_by_grade(labels, p, ["high", "high", "low", "low", "medium", "medium"])
    assert out["high"]["hourly_auroc"] == 1.0
    assert out["low"]["hourly_auroc"] == 0.0
    assert out["medium"]["hourly_auroc"] is None  # one class only
    assert out["medium"]["hours_share"] == 2 / 6


def test_old_age_is_inside_the_training_range_and_childhood_is_not() -> None:
    model = SepsisModel.load(threads=1)
    rows = [
        parse_patient({"HR": 90, "Age": age, "Resp": 18, "SBP": 120, "O2Sat": 97, "Temp": 37})
        for age in (95, 40, 9)
    ]
    outside = model.input_ranges.outside(
        features_for_windows([window_from_patient(p) for p in rows])
    )
    assert outside[0] == outside[1] == []
    assert len(outside[2]) == 1
    assert outside[2][0].startswith("Age 9 below the training range")
