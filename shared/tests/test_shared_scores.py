"""Clinical scores against hand-worked cases from their published definitions."""

from __future__ import annotations

from typing import Any

import pytest

from sepsis_shared.patient import FLAT_EXAMPLE, NormalizedPatient, parse_patient
from sepsis_shared.scores import (
    NEWS2_HIGH,
    NEWS2_MEDIUM,
    QSOFA_RESP_MIN,
    QSOFA_SBP_MAX,
    SIRS_HR_ABOVE,
    ScoreResult,
    clinical_scores,
    news2,
    qsofa,
    sirs,
    sofa,
)


def patient(**vitals: Any) -> NormalizedPatient:
    return parse_patient({"vitals": vitals})


# ---- qSOFA (Seymour 2016) ------------------------------------------------------------------


def test_qsofa_constants_are_the_published_ones() -> None:
    assert (QSOFA_RESP_MIN, QSOFA_SBP_MAX) == (22, 100)


@pytest.mark.parametrize(
    ("resp", "sbp", "points"),
    [(22, 100, 2), (21, 100, 1), (22, 101, 1), (21, 101, 0), (30, 80, 2)],
)
def test_qsofa_boundaries(resp: float, sbp: float, points: int) -> None:
    result = qsofa(patient(Resp=resp, SBP=sbp, GCS=15))
    assert result.score == points
    assert result.complete
    assert result.missing == []
    assert result.positive is (points >= 2)


@pytest.mark.parametrize(
    ("mentation", "point"),
    [
        ({"GCS": 15}, 0),
        ({"GCS": 14}, 1),
        ({"Consciousness": "A"}, 0),
        ({"Consciousness": "C"}, 1),
        ({"Consciousness": "V"}, 1),
        ({"Consciousness": "U"}, 1),
        ({"GCS": 15, "Consciousness": "P"}, 1),
        ({"GCS": 13, "Consciousness": "A"}, 1),
    ],
)
def test_qsofa_altered_mentation(mentation: dict[str, Any], point: int) -> None:
    result = qsofa(patient(Resp=18, SBP=120, **mentation))
    assert result.components["altered_mentation"] == point
    assert result.score == point


def test_qsofa_missing_parts_are_not_guessed() -> None:
    result = qsofa(patient(Resp=24, HR=120))
    assert result.components == {
        "respiratory_rate": 1,
        "systolic_bp": None,
        "altered_mentation": None,
    }
    assert result.score == 1
    assert not result.complete
    assert not result.positive
    assert result.missing == ["SBP", "GCS", "Consciousness"]
    assert "1 of 3 components scored" in result.interpretation


def test_qsofa_all_three() -> None:
    result = qsofa(patient(Resp=28, SBP=85, Consciousness="V"))
    assert (result.score, result.max_score, result.positive) == (3, 3, True)


# ---- SIRS (Bone 1992) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("temp", "point"), [(38.0, 0), (38.1, 1), (36.0, 0), (35.9, 1), (37.0, 0), (40.2, 1)]
)
def test_sirs_temperature(temp: float, point: int) -> None:
    assert sirs(patient(Temp=temp)).components["temperature"] == point


@pytest.mark.parametrize(("hr", "point"), [(90, 0), (91, 1), (60, 0)])
def test_sirs_heart_rate(hr: float, point: int) -> None:
    assert SIRS_HR_ABOVE == 90
    assert sirs(patient(HR=hr)).components["heart_rate"] == point


@pytest.mark.parametrize(
    ("inputs", "point"),
    [
        ({"Resp": 20}, 0),
        ({"Resp": 21}, 1),
        ({"Resp": 18, "PaCO2": 31}, 1),
        ({"Resp": 18, "PaCO2": 32}, 0),
        ({"PaCO2": 30}, 1),
        ({"PaCO2": 40}, None),
    ],
)
def test_sirs_respiratory(inputs: dict[str, Any], point: int | None) -> None:
    result = sirs(patient(HR=80, **inputs))
    assert result.components["respiratory"] == point
    assert ("Resp" in result.missing) is (point is None)


@pytest.mark.parametrize(
    ("wbc", "point"), [(12.0, 0), (12.1, 1), (4.0, 0), (3.9, 1), (8.0, 0), (18.5, 1)]
)
def test_sirs_white_cells(wbc: float, point: int) -> None:
    assert sirs(patient(WBC=wbc)).components["white_cells"] == point


def test_sirs_worked_examples() -> None:
    # Temp 38.5 (1), HR 110 (1), RR 22 (1), WBC 15.5 (1): all four criteria
    full = sirs(patient(Temp=38.5, HR=110, Resp=22, WBC=15.5))
    assert (full.score, full.complete, full.positive) == (4, True, True)
    # a fever alone is one criterion, not SIRS
    one = sirs(patient(Temp=38.5, HR=80, Resp=16, WBC=8))
    assert (one.score, one.positive) == (1, False)
    partial = sirs(patient(HR=95))
    assert partial.missing == ["Temp", "Resp", "WBC"]
    assert partial.score == 1


# ---- NEWS2 (RCP 2017) ----------------------------------------------------------------------


def news2_component(component: str, **vitals: Any) -> int | None:
    return news2(patient(**vitals)).components[component]


@pytest.mark.parametrize(
    ("value", "points"),
    [(8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (5, 3)],
)
def test_news2_respiration_bands(value: float, points: int) -> None:
    assert news2_component("respiration_rate", Resp=value) == points


@pytest.mark.parametrize(
    ("value", "points"), [(91, 3), (85, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
)
def test_news2_spo2_scale1_bands(value: float, points: int) -> None:
    assert news2_component("spo2_scale1", SpO2=value) == points


@pytest.mark.parametrize(
    ("value", "points"),
    [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (70, 3)],
)
def test_news2_systolic_bands(value: float, points: int) -> None:
    assert news2_component("systolic_bp", SBP=value) == points


@pytest.mark.parametrize(
    ("value", "points"),
    [
        (40, 3),
        (41, 1),
        (50, 1),
        (51, 0),
        (90, 0),
        (91, 1),
        (110, 1),
        (111, 2),
        (130, 2),
        (131, 3),
    ],
)
def test_news2_pulse_bands(value: float, points: int) -> None:
    assert news2_component("pulse", HR=value) == points


@pytest.mark.parametrize(
    ("value", "points"),
    [(35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1), (39.1, 2)],
)
def test_news2_temperature_bands(value: float, points: int) -> None:
    assert news2_component("temperature", Temp=value) == points


@pytest.mark.parametrize(("level", "points"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_news2_consciousness(level: str, points: int) -> None:
    assert news2_component("consciousness", Consciousness=level) == points


def test_news2_air_or_oxygen() -> None:
    assert news2_component("air_or_oxygen", SupplementalO2=1) == 2
    assert news2_component("air_or_oxygen", SupplementalO2=0) == 0
    # FiO2 stands in when the flag is absent, and says so
    on_o2 = news2(patient(FiO2=0.4))
    assert on_o2.components["air_or_oxygen"] == 2
    assert any("FiO2" in n for n in on_o2.notes)
    assert news2_component("air_or_oxygen", FiO2=0.21) == 0
    assert news2_component("air_or_oxygen", HR=80) is None


def test_news2_gcs_stands_in_for_acvpu() -> None:
    result = news2(patient(GCS=14))
    assert result.components["consciousness"] == 3
    assert any("GCS" in n for n in result.notes)
    assert news2_component("consciousness", GCS=15) == 0


def test_news2_every_parameter_at_its_worst_band_is_20() -> None:
    result = news2(
        patient(
            Resp=25,
            SpO2=91,
            SupplementalO2=1,
            SBP=90,
            HR=131,
            Consciousness="V",
            Temp=35.0,
        )
    )
    assert result.components == {
        "respiration_rate": 3,
        "spo2_scale1": 3,
        "air_or_oxygen": 2,
        "systolic_bp": 3,
        "pulse": 3,
        "consciousness": 3,
        "temperature": 3,
    }
    assert (result.score, result.max_score, result.complete) == (20, 20, True)
    assert "emergency" in result.interpretation


def test_news2_worked_medium_case() -> None:
    # RR 9 (1), SpO2 92 (2), air (0), SBP 101 (1), HR 41 (1), alert (0), Temp 35.1 (1) = 6
    result = news2(
        patient(Resp=9, SpO2=92, SupplementalO2=0, SBP=101, HR=41, Consciousness="A", Temp=35.1)
    )
    assert result.score == 6
    assert NEWS2_MEDIUM <= result.score < NEWS2_HIGH
    assert result.positive
    assert "urgent response" in result.interpretation


def test_news2_single_red_parameter_and_normal() -> None:
    # all normal except new confusion: 3 points, low-medium because one parameter scored 3
    red = news2(
        patient(Resp=16, SpO2=97, SupplementalO2=0, SBP=120, HR=70, Consciousness="C", Temp=37)
    )
    assert red.score == 3
    assert "single parameter" in red.interpretation
    assert not red.positive
    normal = news2(
        patient(Resp=16, SpO2=97, SupplementalO2=0, SBP=120, HR=70, Consciousness="A", Temp=37)
    )
    assert normal.score == 0
    assert "routine" in normal.interpretation


def test_news2_missing_parts() -> None:
    result = news2(patient(HR=120, Temp=39.5))
    assert result.score == 4
    assert result.missing == ["Resp", "O2Sat", "SupplementalO2", "SBP", "Consciousness"]
    assert not result.complete


# ---- SOFA (Vincent 1996) -------------------------------------------------------------------


def sofa_component(component: str, **vitals: Any) -> int | None:
    return sofa(patient(**vitals)).components[component]


@pytest.mark.parametrize(
    ("pao2", "points"),
    [(200, 0), (199, 1), (150, 1), (149, 2), (100, 2), (99, 3), (50, 3), (49, 4)],
)
def test_sofa_respiration_pao2_fio2(pao2: float, points: int) -> None:
    # FiO2 0.5: P/F = 2 x PaO2, so 200 -> 400, 199 -> 398, 149 -> 298, 99 -> 198, 49 -> 98
    result = sofa(patient(PaO2=pao2, FiO2=0.5))
    assert result.components["respiration"] == points
    assert not any("SpO2" in n for n in result.notes)


@pytest.mark.parametrize(
    ("spo2", "fio2", "points"),
    # Grissom 2010 bands, inclusive upper bounds; FiO2 0.25 makes S/F = 4 x SpO2, exact in binary
    [
        (96, 0.21, 0),  # 457
        (100, 0.21, 0),  # 476: SpO2 above 97 may still show a normal ratio
        (97, 0.25, 1),  # 388
        (79, 0.25, 1),  # 316
        (78.75, 0.25, 2),  # 315
        (59, 0.25, 2),  # 236
        (58.75, 0.25, 3),  # 235
        (37.75, 0.25, 3),  # 151
        (37.5, 0.25, 4),  # 150
        (90, 1.0, 4),  # 90
    ],
)
def test_sofa_respiration_spo2_fio2_surrogate(spo2: float, fio2: float, points: int) -> None:
    result = sofa(patient(SpO2=spo2, FiO2=fio2))
    assert result.components["respiration"] == points
    assert any("SpO2/FiO2" in n for n in result.notes)


def test_sofa_spo2_above_97_cannot_show_hypoxaemia() -> None:
    result = sofa(patient(SpO2=99, FiO2=0.6))
    assert result.components["respiration"] is None
    assert "PaO2" in result.missing


def test_sofa_room_air_stands_in_for_fio2() -> None:
    # PaO2 60 on room air: 60 / 0.21 = 285.7 -> 2
    result = sofa(patient(PaO2=60, SupplementalO2=0))
    assert result.components["respiration"] == 2
    assert any("0.21" in n for n in result.notes)
    no_fio2 = sofa(patient(PaO2=60))
    assert no_fio2.components["respiration"] is None
    assert "FiO2" in no_fio2.missing


@pytest.mark.parametrize(
    ("platelets", "points"),
    [(150, 0), (149, 1), (100, 1), (99, 2), (50, 2), (49, 3), (20, 3), (19, 4)],
)
def test_sofa_coagulation(platelets: float, points: int) -> None:
    assert sofa_component("coagulation", Platelets=platelets) == points


@pytest.mark.parametrize(
    ("bilirubin", "points"),
    [(1.1, 0), (1.2, 1), (1.9, 1), (2.0, 2), (5.9, 2), (6.0, 3), (11.9, 3), (12.0, 4)],
)
def test_sofa_liver(bilirubin: float, points: int) -> None:
    assert sofa_component("liver", Bilirubin_total=bilirubin) == points


@pytest.mark.parametrize(
    ("inputs", "points"),
    [
        ({"MAP": 70}, 0),
        ({"MAP": 69}, 1),
        ({"MAP": 80, "Vasopressors": 1}, 2),
        ({"Vasopressors": 1}, 2),
        ({"MAP": 65, "Vasopressors": 0}, 1),
        ({"SBP": 90, "DBP": 60}, 0),  # MAP (90 + 2 x 60) / 3 = 70, not below 70
        ({"SBP": 89, "DBP": 60}, 1),  # 69.7
    ],
)
def test_sofa_cardiovascular(inputs: dict[str, Any], points: int) -> None:
    assert sofa_component("cardiovascular", **inputs) == points


def test_sofa_cardiovascular_missing_without_map_or_both_pressures() -> None:
    result = sofa(patient(SBP=85))
    assert result.components["cardiovascular"] is None
    assert "MAP" in result.missing


@pytest.mark.parametrize(
    ("gcs", "points"),
    [(15, 0), (14, 1), (13, 1), (12, 2), (10, 2), (9, 3), (6, 3), (5, 4), (3, 4)],
)
def test_sofa_cns(gcs: int, points: int) -> None:
    assert sofa_component("cns", GCS=gcs) == points


@pytest.mark.parametrize(
    ("creatinine", "points"),
    [(1.1, 0), (1.2, 1), (1.9, 1), (2.0, 2), (3.4, 2), (3.5, 3), (4.9, 3), (5.0, 4)],
)
def test_sofa_renal_creatinine(creatinine: float, points: int) -> None:
    assert sofa_component("renal", Creatinine=creatinine) == points


@pytest.mark.parametrize(
    ("inputs", "points"),
    [
        ({"Creatinine": 1.0, "UrineOutput": [15, 15, 15]}, 3),  # 360 mL/day
        ({"Creatinine": 1.0, "UrineOutput": [5, 10, 0]}, 4),  # 120 mL/day
        ({"Creatinine": 4.0, "UrineOutput": 50}, 3),  # 1200 mL/day, creatinine decides
        ({"UrineOutput": 8}, 4),  # 192 mL/day: 4 whatever the creatinine
        ({"UrineOutput": 40}, None),  # normal output cannot rule out a raised creatinine
    ],
)
def test_sofa_renal_urine_output(inputs: dict[str, Any], points: int | None) -> None:
    result = sofa(patient(**inputs))
    assert result.components["renal"] == points
    assert ("Creatinine" in result.missing) is (points is None)


def test_sofa_all_six_organs_worked_example() -> None:
    # P/F 90/0.5 = 180 (3), platelets 80 (2), bilirubin 2.5 (2), MAP 65 (1), GCS 13 (1),
    # creatinine 2.2 (2): 11
    result = sofa(
        patient(
            PaO2=90,
            FiO2=0.5,
            Platelets=80,
            Bilirubin_total=2.5,
            MAP=65,
            GCS=13,
            Creatinine=2.2,
        )
    )
    assert result.components == {
        "respiration": 3,
        "coagulation": 2,
        "liver": 2,
        "cardiovascular": 1,
        "cns": 1,
        "renal": 2,
    }
    assert (result.score, result.max_score, result.complete, result.missing) == (11, 24, True, [])
    assert result.positive


def test_sofa_uses_the_latest_value() -> None:
    result = sofa(patient(Platelets=[45, 160, 210]))  # newest first: 45 now
    assert result.components["coagulation"] == 3


def test_sofa_nothing_but_heart_rate() -> None:
    result = sofa(patient(HR=100))
    assert all(v is None for v in result.components.values())
    assert result.score == 0
    assert not result.complete
    assert result.missing == [
        "FiO2",
        "PaO2",
        "Platelets",
        "Bilirubin_total",
        "MAP",
        "GCS",
        "Creatinine",
    ]


# ---- all four ------------------------------------------------------------------------------


def test_clinical_scores_of_the_documented_flat_example() -> None:
    p = parse_patient(FLAT_EXAMPLE)
    scores = clinical_scores(p)
    assert isinstance(scores.qsofa, ScoreResult)
    assert (scores.qsofa.score, scores.qsofa.complete) == (2, False)
    assert (scores.sirs.score, scores.sirs.complete) == (4, True)
    # RR 22 (2) + SpO2 94 (1) + SBP 95 (2) + HR 110 (1) + Temp 38.5 (1) = 7; O2 and ACVPU unknown
    assert scores.news2.score == 7
    assert scores.news2.missing == ["SupplementalO2", "Consciousness"]
    # MAP (95 + 120) / 3 = 71.7 (0), creatinine 1.8 (1)
    assert scores.sofa.components["cardiovascular"] == 0
    assert scores.sofa.components["renal"] == 1
    assert scores.sofa.score == 1
    dumped = scores.model_dump()
    assert set(dumped) == {"qsofa", "sirs", "news2", "sofa"}
