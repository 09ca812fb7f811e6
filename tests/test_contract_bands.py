"""Both pathways read the 0-100 risk score the same way: the GenAI guardrail's `risk_bands`
(genai-service guardrail.yaml) and the ML pathway's priority `bands` (ml-service ml-config.yaml)
put every risk score in the same Priority of the public contract."""

from __future__ import annotations

import pytest

from sepsis_genai.guardrail_config import RiskBands, load_guardrail_config
from sepsis_genai.offline import priority_for_risk as offline_priority
from sepsis_ml.mlconfig import Bands, load_config
from sepsis_shared.assessment import Priority


@pytest.fixture(scope="module")
def ml_bands() -> Bands:
    return load_config().config.bands


@pytest.fixture(scope="module")
def guardrail_bands() -> RiskBands:
    bands = load_guardrail_config().risk_bands
    assert bands is not None, "the shipped guardrail config must declare its risk_bands"
    return bands


def guardrail_priority(bands: RiskBands, risk: float) -> Priority:
    (priority,) = [p for p in Priority if bands.band(p)[0] <= risk < bands.band(p)[1]]
    return priority


def test_each_priority_starts_at_the_same_risk_score(
    ml_bands: Bands, guardrail_bands: RiskBands
) -> None:
    for priority in Priority:
        assert ml_bands.lower_bound(priority) == guardrail_bands.band(priority)[0], priority


def test_every_risk_score_gets_the_same_priority_on_both_pathways(
    ml_bands: Bands, guardrail_bands: RiskBands
) -> None:
    seen: set[Priority] = set()
    for tenths in range(1001):  # 0.0, 0.1, ..., 100.0
        risk = tenths / 10
        priority = ml_bands.priority_for(risk)
        assert guardrail_priority(guardrail_bands, risk) is priority, risk
        seen.add(priority)
    assert seen == set(Priority), "each priority of the contract is reachable"


def test_the_offline_genai_assessment_reads_risk_the_same_way(ml_bands: Bands) -> None:
    # The offline provider maps its own summed risk to a priority; it must agree with the bands.
    for tenths in range(0, 1001, 5):
        risk = tenths // 10
        assert offline_priority(risk) is ml_bands.priority_for(risk), risk
