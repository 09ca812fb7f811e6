"""The hybrid blend: every threshold of the shipped config is enforced, at and around it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from sepsis_ml.blend import (
    RULE_BAND,
    RULE_INFECTION,
    RULE_MODEL,
    RULE_SEPTIC_SHOCK,
    BlendResult,
    ShockFacts,
    blend,
    clinical_component,
    drivers,
    model_component,
    score_values,
    septic_shock,
    shock_facts,
)
from sepsis_ml.mlconfig import BlendPlan, MLConfig, ScoreName, load_config
from sepsis_shared.assessment import Priority
from sepsis_shared.patient import parse_patient
from sepsis_shared.scores import clinical_scores

THRESHOLD = 0.05
NO_SHOCK = ShockFacts(map_mmhg=None, map_estimated=False, lactate=None, vasopressors=False)


@pytest.fixture(scope="module")
def config() -> MLConfig:
    return load_config().config


def _with(config: MLConfig, **sections: dict[str, Any]) -> MLConfig:
    """The config with some fields of some sections replaced (validated again)."""
    data = config.model_dump()
    for section, fields in sections.items():
        if isinstance(data[section], dict):
            data[section].update(fields)
        else:
            data[section] = fields
    return MLConfig.model_validate(data)


def _scores(**values: int) -> dict[ScoreName, int]:
    out = dict.fromkeys(ScoreName, 0)
    out.update({ScoreName(k): v for k, v in values.items()})
    return out


def _run(
    config: MLConfig,
    *,
    p: float = 0.0,
    scores: dict[ScoreName, int] | None = None,
    shock: ShockFacts = NO_SHOCK,
    infection: float | None = None,
    threshold: float = THRESHOLD,
) -> BlendResult:
    return blend(
        probability=p,
        scores=scores if scores is not None else _scores(),
        shock=shock,
        infection=infection,
        plan=BlendPlan.of(config),
        alert_threshold=threshold,
    )


def _probability_for_component(target: float, *, threshold: float, maps_to: float) -> float:
    """Inverse of the piecewise-linear model component."""
    if target <= maps_to:
        return threshold * target / maps_to
    return threshold + (1.0 - threshold) * (target - maps_to) / (1.0 - maps_to)


def test_shipped_config_is_versioned_and_cites_its_sources(config: MLConfig) -> None:
    assert config.version
    assert config.score_floors
    assert all(floor.source for floor in config.score_floors)
    assert config.septic_shock.enabled
    assert config.septic_shock.priority is Priority.CRITICAL


# ---- risk score -----------------------------------------------------------------------------


def test_model_component_passes_through_the_configured_threshold_point(config: MLConfig) -> None:
    maps_to = config.blend.threshold_maps_to
    assert model_component(THRESHOLD, threshold=THRESHOLD, maps_to=maps_to) == pytest.approx(
        maps_to
    )
    assert model_component(0.0, threshold=THRESHOLD, maps_to=maps_to) == 0.0
    assert model_component(1.0, threshold=THRESHOLD, maps_to=maps_to) == pytest.approx(1.0)
    halfway = model_component(THRESHOLD / 2, threshold=THRESHOLD, maps_to=maps_to)
    assert halfway == pytest.approx(maps_to / 2)
    grid = [i / 200 for i in range(201)]
    values = [model_component(p, threshold=THRESHOLD, maps_to=maps_to) for p in grid]
    assert values == sorted(values)


@pytest.mark.parametrize("name", list(ScoreName))
def test_each_clinical_share_and_saturation_is_enforced(config: MLConfig, name: ScoreName) -> None:
    plan = BlendPlan.of(config)
    share = config.blend.clinical_weights.get(name, 0.0)
    saturation = config.blend.clinical_saturation[name]
    at = clinical_component(_scores(**{name.value: saturation}), plan)
    below = clinical_component(_scores(**{name.value: saturation - 1}), plan)
    above = clinical_component(_scores(**{name.value: saturation + 1}), plan)
    assert at == pytest.approx(share)
    assert below == pytest.approx(share * (saturation - 1) / saturation)
    assert above == pytest.approx(share), "a score past its saturation adds nothing more"


def test_weighted_blend_uses_the_configured_weights(config: MLConfig) -> None:
    b = config.blend
    assert b.method == "weighted"
    scores = _scores(qsofa=1, news2=3, sirs=1, sofa=1)
    p = 0.03
    result = _run(config, p=p, scores=scores)
    m = model_component(p, threshold=THRESHOLD, maps_to=b.threshold_maps_to)
    c = clinical_component(scores, BlendPlan.of(config))
    expected = round(100 * (b.model_weight * m + b.clinical_weight * c), 1)
    assert result.blended_score == pytest.approx(expected)
    assert result.model_component == pytest.approx(m)
    assert result.clinical_component == pytest.approx(c)
    # Shifting the weight to the model changes the score as the formula says.
    model_only = _with(config, blend={"model_weight": 1.0, "clinical_weight": 0.0})
    assert _run(model_only, p=p, scores=scores).blended_score == pytest.approx(round(100 * m, 1))


def test_max_blend_takes_the_larger_component(config: MLConfig) -> None:
    maxed = _with(config, blend={"method": "max"})
    scores = _scores(qsofa=3, news2=10, sirs=4, sofa=8)
    result = _run(maxed, p=0.01, scores=scores)
    assert result.clinical_component == pytest.approx(1.0)
    assert result.blended_score == pytest.approx(100.0)
    low = _run(maxed, p=0.5, scores=_scores())
    assert low.blended_score == pytest.approx(round(100 * low.model_component, 1))


# ---- bands ----------------------------------------------------------------------------------

_BANDS = [
    ("critical", Priority.CRITICAL, Priority.URGENT),
    ("urgent", Priority.URGENT, Priority.ELEVATED),
    ("elevated", Priority.ELEVATED, Priority.STANDARD),
]


@pytest.mark.parametrize(("band", "level", "below"), _BANDS)
def test_each_band_bound_is_enforced(
    config: MLConfig, band: str, level: Priority, below: Priority
) -> None:
    bound: float = getattr(config.bands, band)
    assert config.bands.priority_for(bound) is level
    assert config.bands.priority_for(bound - 0.1) is below
    # Through the blend: the model alone (floors off) placed exactly on and just under the bound.
    model_only = _with(
        config,
        blend={"model_weight": 1.0, "clinical_weight": 0.0},
        model_floor={"enabled": False, "priority": "Urgent"},
    )
    maps_to = config.blend.threshold_maps_to
    for target, expected in ((bound, level), (bound - 0.2, below)):
        p = _probability_for_component(target / 100, threshold=THRESHOLD, maps_to=maps_to)
        result = _run(model_only, p=p + 1e-12)
        assert result.priority is expected, (band, target, result)
        assert result.priority_rule == RULE_BAND
        assert result.risk_score == result.blended_score


def test_bands_below_elevated_are_standard(config: MLConfig) -> None:
    result = _run(config, p=0.0)
    assert result.priority is Priority.STANDARD
    assert result.priority_rule == RULE_BAND
    assert result.risk_score == 0.0


# ---- floors ---------------------------------------------------------------------------------


def _shock(
    *, map_mmhg: float | None = None, lactate: float | None = None, vaso: bool = False
) -> ShockFacts:
    return ShockFacts(map_mmhg=map_mmhg, map_estimated=False, lactate=lactate, vasopressors=vaso)


def test_septic_shock_is_critical_whatever_the_model_says(config: MLConfig) -> None:
    rule = config.septic_shock
    facts = _shock(map_mmhg=rule.map_below_mmhg - 1, lactate=rule.lactate_above_mmol_l + 1)
    result = _run(config, p=0.0, shock=facts)
    assert result.priority is Priority.CRITICAL
    assert result.priority_rule == RULE_SEPTIC_SHOCK
    assert result.septic_shock
    assert result.risk_score >= config.bands.critical, "the score follows the priority"
    assert result.blended_score < config.bands.urgent, "the blend alone would not have alerted"


def test_septic_shock_map_bound_is_strict(config: MLConfig) -> None:
    rule = config.septic_shock
    lactate = rule.lactate_above_mmol_l + 0.5
    assert septic_shock(_shock(map_mmhg=rule.map_below_mmhg - 0.1, lactate=lactate), rule)
    assert not septic_shock(_shock(map_mmhg=rule.map_below_mmhg, lactate=lactate), rule)
    assert not septic_shock(_shock(map_mmhg=None, lactate=lactate), rule)


def test_septic_shock_lactate_bound_is_strict(config: MLConfig) -> None:
    rule = config.septic_shock
    low_map = rule.map_below_mmhg - 5
    assert septic_shock(_shock(map_mmhg=low_map, lactate=rule.lactate_above_mmol_l + 0.1), rule)
    assert not septic_shock(_shock(map_mmhg=low_map, lactate=rule.lactate_above_mmol_l), rule)
    assert not septic_shock(_shock(map_mmhg=low_map, lactate=None), rule)


def test_vasopressors_meet_the_circulation_criterion_when_configured(config: MLConfig) -> None:
    rule = config.septic_shock
    assert rule.vasopressors_count
    facts = _shock(map_mmhg=80, lactate=rule.lactate_above_mmol_l + 1, vaso=True)
    assert septic_shock(facts, rule)
    assert not septic_shock(facts, rule.model_copy(update={"vasopressors_count": False}))
    assert not septic_shock(_shock(map_mmhg=80, lactate=rule.lactate_above_mmol_l, vaso=True), rule)


def test_disabled_septic_shock_rule_never_fires(config: MLConfig) -> None:
    off = config.septic_shock.model_copy(update={"enabled": False})
    assert not septic_shock(_shock(map_mmhg=40, lactate=9.0, vaso=True), off)


def test_map_is_estimated_from_sbp_and_dbp_only_when_configured(config: MLConfig) -> None:
    rule = config.septic_shock
    assert rule.estimate_map_from_sbp_dbp
    patient = parse_patient({"SBP": 85, "DBP": 50, "Lactate": 3.0})
    facts = shock_facts(patient, rule)
    assert facts.map_estimated
    assert facts.map_mmhg == pytest.approx((85 + 2 * 50) / 3)
    assert septic_shock(facts, rule)
    no_estimate = rule.model_copy(update={"estimate_map_from_sbp_dbp": False})
    assert shock_facts(patient, no_estimate).map_mmhg is None
    assert not septic_shock(shock_facts(patient, no_estimate), no_estimate)
    measured = shock_facts(parse_patient({"MAP": 70, "SBP": 85, "DBP": 50}), rule)
    assert measured.map_mmhg == 70
    assert not measured.map_estimated


def test_vasopressors_are_read_from_the_patient(config: MLConfig) -> None:
    facts = shock_facts(
        parse_patient({"Vasopressors": 1, "MAP": 72, "Lactate": 2.6}), config.septic_shock
    )
    assert facts.vasopressors
    assert septic_shock(facts, config.septic_shock)


def test_every_score_floor_is_enforced_at_its_threshold(config: MLConfig) -> None:
    for floor in config.score_floors:
        at = _run(config, scores=_scores(**{floor.score.value: floor.at_least}))
        assert floor.rule in at.rules_fired, floor.rule
        assert at.priority.rank >= floor.priority.rank, floor.rule
        below = _run(config, scores=_scores(**{floor.score.value: floor.at_least - 1}))
        assert floor.rule not in below.rules_fired, floor.rule
        higher = [
            f for f in config.score_floors if f.score is floor.score and f.at_least > floor.at_least
        ]
        if not higher:
            # The strongest floor of its score decides the priority when the blend is low.
            assert at.priority is floor.priority, floor.rule
            assert at.priority_rule == floor.rule
            assert at.risk_score >= config.bands.lower_bound(floor.priority)


def test_score_floor_thresholds_named_in_the_brief(config: MLConfig) -> None:
    rules = {(f.score, f.at_least): f.priority for f in config.score_floors}
    assert rules[(ScoreName.qsofa, 2)] is Priority.URGENT
    assert rules[(ScoreName.news2, 7)] is Priority.URGENT
    assert rules[(ScoreName.sirs, 2)] is Priority.ELEVATED
    assert _run(config, scores=_scores(sirs=2)).priority is Priority.ELEVATED
    assert _run(config, scores=_scores(qsofa=2)).priority is Priority.URGENT
    assert _run(config, scores=_scores(news2=7)).priority_rule == "news2>=7"


def test_model_floor_at_the_alert_threshold(config: MLConfig) -> None:
    assert config.model_floor.enabled
    at = _run(config, p=THRESHOLD)
    assert at.model_alert
    assert RULE_MODEL in at.rules_fired
    assert at.priority is config.model_floor.priority
    assert at.priority_rule == RULE_MODEL
    below = _run(config, p=math.nextafter(THRESHOLD, 0.0))
    assert not below.model_alert
    assert RULE_MODEL not in below.rules_fired
    assert below.priority.rank < config.model_floor.priority.rank
    off = _with(config, model_floor={"enabled": False, "priority": "Urgent"})
    assert RULE_MODEL not in _run(off, p=THRESHOLD).rules_fired


def test_the_alert_threshold_given_is_the_one_used(config: MLConfig) -> None:
    assert _run(config, p=0.1, threshold=0.2).priority_rule != RULE_MODEL
    assert _run(config, p=0.1, threshold=0.1).priority_rule == RULE_MODEL


def test_a_floor_never_lowers_the_band(config: MLConfig) -> None:
    scores = _scores(qsofa=3, news2=10, sirs=4, sofa=8)
    result = _run(config, p=0.99, scores=scores)
    assert result.blended_score >= config.bands.critical
    assert result.priority is Priority.CRITICAL
    assert result.priority_rule == RULE_BAND
    assert "qsofa>=2" in result.rules_fired


def test_shock_is_reported_before_other_floors_reaching_critical(config: MLConfig) -> None:
    rule = config.septic_shock
    facts = _shock(map_mmhg=50, lactate=rule.lactate_above_mmol_l + 2)
    result = _run(config, p=0.9, scores=_scores(qsofa=3, news2=12), shock=facts)
    assert result.priority is Priority.CRITICAL
    assert result.priority_rule == RULE_SEPTIC_SHOCK
    assert result.rules_fired[0] == RULE_SEPTIC_SHOCK


def test_infection_with_organ_dysfunction_is_enforced_at_its_bounds(config: MLConfig) -> None:
    rule = config.infection_with_organ_dysfunction
    assert rule.enabled
    assert rule.priority is Priority.URGENT
    at = _scores(sofa=rule.sofa_at_least)
    below = _scores(sofa=rule.sofa_at_least - 1)
    held = _run(config, scores=at, infection=float(rule.infection_at_least))
    assert held.priority is Priority.URGENT
    assert held.priority_rule == RULE_INFECTION
    assert held.infection_with_organ_dysfunction
    assert held.risk_score >= config.bands.urgent
    for result in (
        _run(config, scores=below, infection=2.0),
        _run(config, scores=at, infection=float(rule.infection_at_least - 1)),
        _run(config, scores=at, infection=None),
    ):
        assert RULE_INFECTION not in result.rules_fired
    confirmed_only = _with(config, infection_with_organ_dysfunction={"infection_at_least": 2})
    assert RULE_INFECTION not in _run(confirmed_only, scores=at, infection=1.0).rules_fired
    assert RULE_INFECTION in _run(confirmed_only, scores=at, infection=2.0).rules_fired
    off = _with(config, infection_with_organ_dysfunction={"enabled": False})
    assert RULE_INFECTION not in _run(off, scores=at, infection=2.0).rules_fired


# ---- drivers --------------------------------------------------------------------------------


def _drivers(config: MLConfig, raw: dict[str, Any], p: float = 0.01) -> list[str]:
    patient = parse_patient(raw)
    scores = clinical_scores(patient)
    shock = shock_facts(patient, config.septic_shock)
    result = _run(
        config,
        p=p,
        scores=score_values(scores),
        shock=shock,
        infection=patient.latest("Infection"),
    )
    return drivers(
        patient=patient,
        scores=scores,
        result=result,
        probability=p,
        alert_threshold=THRESHOLD,
        shock=shock,
        plan=BlendPlan.of(config),
    )


def test_drivers_name_shock_lactate_scores_and_trends(config: MLConfig) -> None:
    out = _drivers(
        config,
        {"vitals": {"MAP": 58, "Lactate": 3.2, "SBP": [88, 102, 118], "Resp": 24, "HR": 118}},
    )
    assert 3 <= len(out) <= 5
    assert out[0] == "Septic shock criteria: MAP 58 mmHg (< 65) with lactate 3.2 mmol/L (> 2)"
    assert "qSOFA 2/3: RR 24, SBP 88" in out
    assert "SBP fell 30 mmHg over 2 h" in out


def test_drivers_for_a_quiet_patient_still_say_something(config: MLConfig) -> None:
    out = _drivers(config, {"HR": 72, "Resp": 14, "SBP": 124, "Temp": 36.8}, p=0.002)
    assert 3 <= len(out) <= 5
    assert any(text.startswith("Model probability 0.2%, below the alert threshold") for text in out)


def test_drivers_quote_lactate_and_a_model_alert(config: MLConfig) -> None:
    out = _drivers(config, {"Lactate": 4.4, "HR": 95}, p=0.3)
    assert out[0] == "Model probability 30%, at or above the alert threshold 5.0%"
    assert "Lactate 4.4 mmol/L (>= 4)" in out


def test_drivers_say_what_the_notes_gave_and_the_sepsis_3_criteria(config: MLConfig) -> None:
    out = _drivers(
        config,
        {
            "vitals": {"HR": 112, "Resp": 24, "SBP": 104, "Platelets": 90, "Creatinine": 2.1},
            "notes": "GCS 11, on 4 L nasal cannula, blood cultures sent and antibiotics started",
        },
    )
    assert out[0].startswith("Sepsis-3 criteria: suspected infection with SOFA ")
    notes = next(text for text in out if text.startswith("From the notes: "))
    assert "GCS 11" in notes
    assert "on supplemental oxygen" in notes
    assert "suspected infection" in notes
