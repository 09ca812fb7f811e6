"""The hybrid blend and the choice of drivers for a whole batch at once.

The numpy twin of `sepsis_ml.blend`: the same risk score, priority, rule, floors fired and
driver sentences for every patient, computed column-wise with the same constants, operations
and order of operations (so the same floating-point results). Only what must be per patient
stays per patient: rounding the risk score (Python's `round`, which numpy does not match),
and formatting the few sentences chosen, by the functions `blend` itself uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from sepsis_ml.batch_inputs import COLUMN
from sepsis_ml.batch_scores import CachedScore
from sepsis_ml.blend import (
    DRIVER_SCORE_ORDER,
    LACTATE_HIGH,
    LACTATE_VERY_HIGH,
    MAX_DRIVERS,
    MIN_DRIVERS,
    RULE_BAND,
    RULE_MODEL,
    RULE_SEPTIC_SHOCK,
    TRENDS,
    WEIGHT_FLOOR,
    WEIGHT_FLOOR_PER_RANK,
    WEIGHT_LACTATE,
    WEIGHT_MODEL_ALERT,
    WEIGHT_MODEL_BELOW,
    WEIGHT_MODEL_PER_COMPONENT,
    WEIGHT_SCORE,
    WEIGHT_SCORE_PER_SHARE,
    WEIGHT_SCORE_ZERO,
    WEIGHT_SCORE_ZERO_STEP,
    WEIGHT_SHOCK,
    WEIGHT_TREND,
    WEIGHT_TREND_MAX_BOUNDS,
    WEIGHT_TREND_PER_BOUND,
    WEIGHT_WORTH_SAYING,
    ShockFacts,
    lactate_bound,
    lactate_sentence,
    model_sentence,
    shock_sentence,
    trend_sentence,
)
from sepsis_ml.mlconfig import BlendPlan, ScoreName
from sepsis_shared.assessment import Priority
from sepsis_shared.scores import NEWS2_MAX, QSOFA_MAX, SIRS_MAX, SOFA_MAX

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PRIORITY_BY_RANK: Final = tuple(sorted(Priority, key=lambda p: p.rank))
_MAX_SCORES: Final[Mapping[str, int]] = {
    ScoreName.qsofa: QSOFA_MAX,
    ScoreName.sirs: SIRS_MAX,
    ScoreName.news2: NEWS2_MAX,
    ScoreName.sofa: SOFA_MAX,
}
# Driver candidates, one column each, in the order `blend.drivers` offers them (it breaks ties):
# shock or lactate, the model, the four scores, the trends.
_SHOCK_OR_LACTATE: Final = 0
_MODEL: Final = 1
_FIRST_SCORE: Final = 2
_FIRST_TREND: Final = _FIRST_SCORE + len(DRIVER_SCORE_ORDER)
_ABSENT: Final = -np.inf


@dataclass(frozen=True, slots=True)
class BatchBlend:
    """What the hybrid decided for each patient of a batch (row i = patient i)."""

    risk_score: list[float]
    rank: list[int]
    """Priority rank (PRIORITY_BY_RANK)."""
    rule: list[str]
    fired: BoolArray
    """(n, len(rule_names)): which rules held."""
    rule_names: tuple[str, ...]
    septic_shock: BoolArray
    model_alert: BoolArray
    model_component: FloatArray
    map_mmhg: FloatArray
    map_estimated: BoolArray
    lactate: FloatArray
    vasopressors: BoolArray

    def rules_fired(self, i: int) -> list[str]:
        """The names of the rules that held for patient i, in the config's order."""
        return [self.rule_names[j] for j in np.flatnonzero(self.fired[i])]


def batch_blend(
    *,
    probability: FloatArray,
    totals: Mapping[str, IntArray],
    latest: FloatArray,
    plan: BlendPlan,
    alert_threshold: float,
) -> BatchBlend:
    """`blend.blend` (with `shock_facts` and `septic_shock`) for every row at once."""
    n = len(probability)
    # model_component
    t, a = alert_threshold, plan.threshold_maps_to
    p = np.minimum(1.0, np.maximum(0.0, probability))
    if t <= 0.0:
        m = a + (1.0 - a) * p
    elif t >= 1.0:
        m = np.where(p <= t, a * p / t, 1.0)
    else:
        m = np.where(p <= t, a * p / t, a + (1.0 - a) * (p - t) / (1.0 - t))
    # clinical_component: shares added in the plan's order
    total = np.zeros(n)
    for name, share, saturation in plan.shares:
        value = totals[name]
        total = total + np.where(value >= saturation, share, share * value / saturation)
    c = np.minimum(1.0, total)
    raw = plan.model_weight * m + plan.clinical_weight * c if plan.weighted else np.maximum(m, c)
    scaled = (100.0 * np.minimum(1.0, np.maximum(0.0, raw))).tolist()
    blended = np.array([round(x, 1) for x in scaled])

    # shock_facts and septic_shock
    rule = plan.shock
    map_mmhg = latest[:, COLUMN["MAP"]]
    map_estimated = np.zeros(n, dtype=bool)
    if rule.estimate_map_from_sbp_dbp:
        sbp, dbp = latest[:, COLUMN["SBP"]], latest[:, COLUMN["DBP"]]
        map_estimated = np.isnan(map_mmhg) & ~np.isnan(sbp) & ~np.isnan(dbp)
        map_mmhg = np.where(map_estimated, (sbp + 2.0 * dbp) / 3.0, map_mmhg)
    lactate = latest[:, COLUMN["Lactate"]]
    vasopressors = latest[:, COLUMN["Vasopressors"]] >= 0.5
    circulation = map_mmhg < rule.map_below_mmhg
    if rule.vasopressors_count:
        circulation = circulation | vasopressors
    in_shock = (lactate > rule.lactate_above_mmol_l) & circulation
    if not rule.enabled:
        in_shock = np.zeros(n, dtype=bool)

    # the floors, in reporting order
    names: list[str] = []
    holds: list[BoolArray] = []
    ranks: list[int] = []
    names.append(RULE_SEPTIC_SHOCK)
    holds.append(in_shock)
    ranks.append(rule.priority.rank)
    for floor in plan.floors:
        names.append(floor.rule)
        holds.append(totals[floor.score] >= floor.at_least)
        ranks.append(floor.rank)
    model_alert = probability >= alert_threshold
    if plan.model_floor is not None:
        names.append(RULE_MODEL)
        holds.append(model_alert)
        ranks.append(plan.model_floor.rank)

    lower = np.array([plan.bands.lower_bound(p) for p in PRIORITY_BY_RANK])
    # Bands.priority_for: the highest band whose lower bound the score reaches
    best = np.zeros(n, dtype=np.int64)
    for r in range(1, len(PRIORITY_BY_RANK)):
        best[blended >= lower[r]] = r
    chosen = np.full(n, -1, dtype=np.int64)  # -1: the band
    for j, (held, r) in enumerate(zip(holds, ranks, strict=True)):
        # a higher level wins; at the same level the first floor named beats the band
        wins = held & ((r > best) | ((r == best) & (chosen == -1)))
        best = np.where(wins, r, best)
        chosen = np.where(wins, j, chosen)
    risk = np.maximum(blended, lower[best])
    rule_of = [*names, RULE_BAND]
    return BatchBlend(
        risk_score=risk.tolist(),
        rank=best.tolist(),
        rule=[rule_of[j] for j in chosen.tolist()],
        fired=np.stack(holds, axis=1),
        rule_names=tuple(names),
        septic_shock=in_shock,
        model_alert=model_alert,
        model_component=m,
        map_mmhg=map_mmhg,
        map_estimated=map_estimated,
        lactate=lactate,
        vasopressors=vasopressors,
    )


@dataclass(frozen=True, slots=True)
class DriverChoice:
    """Which driver candidates each patient gets, most important first."""

    columns: list[list[int]]
    trend_change: FloatArray
    trend_span: FloatArray


def choose_drivers(
    *,
    result: BatchBlend,
    totals: Mapping[str, IntArray],
    trend_change: FloatArray,
    trend_span: FloatArray,
    plan: BlendPlan,
) -> DriverChoice:
    """The weights `blend.drivers` gives each candidate, and the ones it says, for all rows."""
    n = len(result.rank)
    weights = np.full((n, _FIRST_TREND + len(TRENDS)), _ABSENT)
    lactate = result.lactate
    bound = np.where(lactate >= LACTATE_VERY_HIGH, LACTATE_VERY_HIGH, LACTATE_HIGH)
    weights[:, _SHOCK_OR_LACTATE] = np.where(
        result.septic_shock,
        WEIGHT_SHOCK,
        np.where(lactate >= LACTATE_HIGH, WEIGHT_LACTATE + bound, _ABSENT),
    )
    weights[:, _MODEL] = np.where(
        result.model_alert,
        WEIGHT_MODEL_ALERT,
        WEIGHT_MODEL_BELOW + WEIGHT_MODEL_PER_COMPONENT * result.model_component,
    )
    for order, name in enumerate(DRIVER_SCORE_ORDER):
        value = totals[name]
        fired_rank = np.full(n, -1, dtype=np.int64)
        lowest: int | None = None
        for floor in plan.floors:
            if floor.score == name:
                lowest = floor.at_least if lowest is None else min(lowest, floor.at_least)
                fired_rank = np.where(
                    value >= floor.at_least, np.maximum(fired_rank, floor.rank), fired_rank
                )
        ratio = value / (lowest if lowest is not None else _MAX_SCORES[name])
        weights[:, _FIRST_SCORE + order] = np.where(
            fired_rank >= 0,
            WEIGHT_FLOOR + WEIGHT_FLOOR_PER_RANK * fired_rank - order,
            np.where(
                value > 0,
                WEIGHT_SCORE + WEIGHT_SCORE_PER_SHARE * np.minimum(1.0, ratio) - order,
                WEIGHT_SCORE_ZERO - WEIGHT_SCORE_ZERO_STEP * order,
            ),
        )
    for k, (_, threshold, _) in enumerate(TRENDS):
        change, span = trend_change[:, k], trend_span[:, k]
        # only a change in the worrying direction, at least as large as the bound
        worth = (span > 0) & (change * threshold > 0) & (np.abs(change) >= abs(threshold))
        weights[:, _FIRST_TREND + k] = np.where(
            worth,
            WEIGHT_TREND
            + WEIGHT_TREND_PER_BOUND
            * np.minimum(WEIGHT_TREND_MAX_BOUNDS, np.abs(change) / abs(threshold)),
            _ABSENT,
        )
    # sorted by descending weight, ties in candidate order (a stable sort, as drivers does)
    ranked = np.argsort(-weights, axis=1, kind="stable")[:, :MAX_DRIVERS]
    said = np.clip((weights >= WEIGHT_WORTH_SAYING).sum(axis=1), MIN_DRIVERS, MAX_DRIVERS)
    return DriverChoice(
        columns=[row[:k] for row, k in zip(ranked.tolist(), said.tolist(), strict=True)],
        trend_change=trend_change,
        trend_span=trend_span,
    )


def driver_sentences(  # positional: it is called once per patient
    i: int,
    choice: DriverChoice,
    result: BatchBlend,
    scores: Sequence[CachedScore],
    quoted_row: Sequence[float],
    probability: float,
    alert_threshold: float,
    model_alert: bool,
    plan: BlendPlan,
) -> list[str]:
    """Patient i's driver sentences. `scores`: its four score results in DRIVER_SCORE_ORDER;
    `quoted_row`: its latest value of each of QUOTED_VARIABLES (NaN: not sent);
    `model_alert`: row i of `result.model_alert`."""
    out: list[str] = []
    for column in choice.columns[i]:
        if column == _SHOCK_OR_LACTATE:
            lactate = float(result.lactate[i])
            if result.septic_shock[i]:
                map_mmhg = float(result.map_mmhg[i])
                facts = ShockFacts(
                    map_mmhg=None if map_mmhg != map_mmhg else map_mmhg,  # NaN: not known
                    map_estimated=bool(result.map_estimated[i]),
                    lactate=lactate,
                    vasopressors=bool(result.vasopressors[i]),
                )
                out.append(shock_sentence(facts, plan.shock))
            else:
                out.append(lactate_sentence(lactate, lactate_bound(lactate)))
        elif column == _MODEL:
            out.append(model_sentence(probability, alert_threshold, model_alert))
        elif column < _FIRST_TREND:
            out.append(scores[column - _FIRST_SCORE].sentence.render_row(quoted_row))
        else:
            k = column - _FIRST_TREND
            name, _, unit = TRENDS[k]
            out.append(
                trend_sentence(
                    name, float(choice.trend_change[i, k]), unit, float(choice.trend_span[i, k])
                )
            )
    return out
