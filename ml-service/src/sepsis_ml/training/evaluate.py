"""Evaluate the committed (or any) artefact set on challenge-format data.

`python -m sepsis_ml.training.evaluate DATA [--out DIR] [--patients-from split:validation|all]`
scores every hour of every stay with the ONNX model through the service's feature code and
window, with and without the ICU length of stay, and prints progress on stderr and, as the
last line on stdout, a JSON object of the figures. With --out it writes report.md, metrics.json
and ROC, precision-recall and calibration plots.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score
from tqdm import tqdm

from sepsis_ml.mlconfig import load_config
from sepsis_ml.model import SepsisModel
from sepsis_ml.training.bedside import bedside_aurocs
from sepsis_ml.training.confidence_check import accuracy_by_grade, grade_rows
from sepsis_ml.training.data import (
    STRESSES,
    Stress,
    hourly_features,
    in_validation,
    load_dataset,
    row_mask,
)
from sepsis_ml.training.thresholds import (
    Stays,
    config_change,
    expected_calibration_error,
    summary,
    threshold_grid,
    threshold_table,
)
from sepsis_ml.utility import RowUtilities, best_threshold, row_utilities

PREDICT_CHUNK: Final = 100_000
SPLIT_CHOICES: Final = ("split:validation", "all")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201


def predict_in_chunks(
    model: SepsisModel, features: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """Calibrated probabilities for many rows, a bounded chunk at a time."""
    out = np.empty(features.shape[0], dtype=np.float64)
    for lo in range(0, features.shape[0], PREDICT_CHUNK):
        out[lo : lo + PREDICT_CHUNK] = model.predict(features[lo : lo + PREDICT_CHUNK])
    return out


def score_figures(
    labels: npt.NDArray[np.int8],
    probabilities: npt.NDArray[np.float64],
    utilities: RowUtilities,
    threshold: float,
) -> dict[str, float]:
    """Hourly AUROC/AUPRC, utility at `threshold`, calibration summaries, and the best
    utility any threshold would have reached (in hindsight, for reference only)."""
    alarms = probabilities >= threshold
    both_classes = 0 < int(labels.sum()) < labels.shape[0]
    _, best_u = best_threshold(utilities, probabilities)
    nan = float("nan")
    return {
        "hourly_auroc": float(roc_auc_score(labels, probabilities)) if both_classes else nan,
        "hourly_auprc": float(average_precision_score(labels, probabilities))
        if both_classes
        else nan,
        "utility": utilities.normalised(alarms),
        "alarm_rate": float(alarms.mean()),
        "brier": float(np.mean((probabilities - labels) ** 2)),
        "mean_probability": float(probabilities.mean()),
        "utility_at_best_threshold": best_u,
    }


def septic_patients_alarmed(
    labels: npt.NDArray[np.int8], stay_ids: npt.NDArray[np.str_], alarms: npt.NDArray[np.bool_]
) -> tuple[float, float]:
    """Share of septic stays with any alarm, share of non-septic stays with any alarm."""
    frame = pd.DataFrame({"stay": stay_ids, "y": labels, "a": alarms})
    per_stay = frame.groupby("stay", sort=False).agg(y=("y", "max"), a=("a", "max"))
    septic = per_stay["y"] == 1
    sensitivity = float(per_stay.loc[septic, "a"].mean()) if septic.any() else float("nan")
    false_stays = float(per_stay.loc[~septic, "a"].mean()) if (~septic).any() else float("nan")
    return sensitivity, false_stays


def bootstrap_intervals(
    labels: npt.NDArray[np.int8],
    stay_ids: npt.NDArray[np.str_],
    probabilities: npt.NDArray[np.float64],
    utilities: RowUtilities,
    threshold: float,
    *,
    rounds: int,
    seed: int = 0,
) -> dict[str, list[float]]:
    """95 % intervals of hourly AUROC and utility, resampling patients with replacement
    (hours of one patient are not independent, so rows are never resampled one by one)."""
    _, stay_index = np.unique(stay_ids, return_inverse=True)
    n_stays = int(stay_index.max()) + 1
    observed = np.where(probabilities >= threshold, utilities.alarm, utilities.silent)
    per_stay_obs = np.bincount(stay_index, weights=observed, minlength=n_stays)
    per_stay_best = np.bincount(stay_index, weights=utilities.best, minlength=n_stays)
    per_stay_none = np.bincount(stay_index, weights=utilities.silent, minlength=n_stays)
    order = np.argsort(stay_index, kind="stable")
    first = np.searchsorted(stay_index[order], np.arange(n_stays))
    length = np.bincount(stay_index, minlength=n_stays)
    rng = np.random.default_rng(seed)
    aurocs, utils = [], []
    for _ in range(rounds):
        draw = rng.integers(0, n_stays, size=n_stays)
        counts = np.bincount(draw, minlength=n_stays)
        none = float(per_stay_none @ counts)
        utils.append((float(per_stay_obs @ counts) - none) / (float(per_stay_best @ counts) - none))
        starts = np.repeat(first[draw], length[draw])
        offsets = np.arange(starts.shape[0]) - np.repeat(
            np.cumsum(length[draw]) - length[draw], length[draw]
        )
        rows = order[starts + offsets]
        y = labels[rows]
        if 0 < int(y.sum()) < y.shape[0]:
            aurocs.append(float(roc_auc_score(y, probabilities[rows])))

    def interval(values: list[float]) -> list[float]:
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]

    return {"hourly_auroc_ci95": interval(aurocs), "utility_ci95": interval(utils)}


@dataclass(frozen=True)
class Scenario:
    """One way of scoring the hours: with or without ICU length of stay, and what real
    requests lack (`Stress`), for the figures' key suffix."""

    suffix: str
    title: str
    iculos: bool
    stress: Stress | None = None


SCENARIOS: Final = (
    Scenario("", "with ICULOS", True),
    Scenario("_no_los", "ICULOS withheld", False),
    Scenario(
        "_6h_no_los", "6 h of vitals, no ICULOS", False, Stress("6h", history=1.0, history_hours=6)
    ),
    *(Scenario(f"_{s.name}", f"{s.name.replace('_', ' ')}, no ICULOS", False, s) for s in STRESSES),
)
"""The first two are the headline figures; the stresses mimic requests as hospitals send them."""
HEADLINE: Final = "_no_los"
"""The scenario whose probabilities site figures and threshold choice are worked out on: most
callers never send the ICU length of stay."""
CONFIDENCE_SCENARIOS: Final = ("_no_los", "_all_stresses")


def evaluate_frame(
    df: pd.DataFrame,
    model: SepsisModel,
    *,
    out: Path | None = None,
    bootstrap: int = 0,
    target_sensitivity: float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score every hour of `df` with `model` under each scenario, with the site figures
    (`sepsis_ml.training.thresholds`) and the confidence check; optionally write a report."""
    start = time.perf_counter()
    labels = df["SepsisLabel"].to_numpy(dtype=np.int8)
    stay_ids = df["patient_id"].to_numpy(dtype=str)
    utilities = row_utilities(labels, stay_ids)
    threshold = model.alert_threshold
    result: dict[str, Any] = {
        "model": f"{model.name} {model.version}",
        "rows": len(df),
        "patients": int(df["patient_id"].nunique()),
        "septic_patients": int(df.groupby("patient_id")["SepsisLabel"].max().sum()),
        "positive_rows": int(labels.sum()),
        "alert_threshold": threshold,
    }
    probabilities: dict[str, npt.NDArray[np.float64]] = {}
    for scenario in tqdm(SCENARIOS, desc="scenarios", disable=not progress, file=sys.stderr):
        hourly = hourly_features(df, withhold_iculos=not scenario.iculos, stress=scenario.stress)
        p = predict_in_chunks(model, hourly.features)
        probabilities[scenario.suffix] = p
        figures: dict[str, Any] = score_figures(labels, p, utilities, threshold)
        sens, false_stays = septic_patients_alarmed(labels, stay_ids, p >= threshold)
        figures |= {"septic_patients_alarmed": sens, "non_septic_patients_alarmed": false_stays}
        if bootstrap and scenario.suffix in ("", HEADLINE):
            figures |= bootstrap_intervals(
                labels, stay_ids, p, utilities, threshold, rounds=bootstrap
            )
        if scenario.suffix == HEADLINE and 0 < int(labels.sum()) < labels.shape[0]:
            result["bedside_score_hourly_auroc"] = bedside_aurocs(labels, hourly.features)
        if scenario.suffix in CONFIDENCE_SCENARIOS:
            levels = grade_rows(hourly.features, model.input_ranges)
            figures["by_confidence"] = accuracy_by_grade(labels, p, levels)
        result |= {f"{key}{scenario.suffix}": value for key, value in figures.items()}
        _log(
            f"  {scenario.title}: AUROC {figures['hourly_auroc']:.4f}, "
            f"utility {figures['utility']:.4f} ({time.perf_counter() - start:.1f} s)"
        )
    result |= site_figures(
        labels, stay_ids, probabilities, threshold, target_sensitivity=target_sensitivity
    )
    if out is not None:
        from sepsis_ml.training.report import write_report  # matplotlib only when asked

        write_report(out, result, labels, probabilities, {s.suffix: s.title for s in SCENARIOS})
        _log(f"report written to {out}")
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def site_figures(
    labels: npt.NDArray[np.int8],
    stay_ids: npt.NDArray[np.str_],
    probabilities: dict[str, npt.NDArray[np.float64]],
    threshold: float,
    *,
    target_sensitivity: float | None,
) -> dict[str, Any]:
    """Calibration error, the figures at the model's threshold (with and without ICULOS),
    the threshold table and, when asked, the threshold reaching a target sensitivity."""
    out: dict[str, Any] = {}
    for suffix in ("", HEADLINE):
        p = probabilities[suffix]
        stays = Stays(labels, p, stay_ids)
        out[f"ece{suffix}"] = expected_calibration_error(labels, p)
        out[f"at_threshold{suffix}"] = stays.row(threshold).as_dict()
    headline = Stays(labels, probabilities[HEADLINE], stay_ids)
    out["threshold_table"] = threshold_table(
        headline, threshold_grid(probabilities[HEADLINE], threshold)
    )
    if target_sensitivity is not None:
        found = headline.threshold_for_sensitivity(target_sensitivity)
        out["target_sensitivity"] = {
            "target": target_sensitivity,
            "threshold": found,
            "figures": None if found is None else headline.row(found).as_dict(),
            "config_change": None
            if found is None
            else config_change(found, load_config().config.version),
        }
    return out


def select_patients(df: pd.DataFrame, model: SepsisModel, patients_from: str) -> pd.DataFrame:
    """All rows, or the rows of the validation patients under the model's stored split rule."""
    if patients_from == "all":
        return df
    split = model.metadata.get("split")
    if not isinstance(split, dict) or "seed" not in split:
        raise SystemExit("the model's metadata.json carries no split rule")
    mask = row_mask(df, in_validation, seed=int(split["seed"]))
    return df.loc[mask].reset_index(drop=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evaluate-ml", description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="parquet file or folder of .psv files")
    parser.add_argument("--out", type=Path, default=None, help="write a report here")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: packaged model")
    parser.add_argument(
        "--patients-from",
        choices=SPLIT_CHOICES,
        default="all",
        help="split:validation = only the validation patients of the model's stored split",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="add 95 %% intervals of AUROC and utility from N patient resamples",
    )
    parser.add_argument(
        "--target-sensitivity",
        type=float,
        default=None,
        metavar="S",
        help="print the highest threshold that alerts on this share of septic patients "
        "(e.g. 0.85), its alert burden, and the ML config change that applies it",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    model = SepsisModel.load(args.model_dir, threads=args.threads)
    _log(f"model {model.name} {model.version}, alert threshold {model.alert_threshold:.4f}")
    progress = not args.quiet and sys.stderr.isatty()
    _log(f"reading {args.data} ...")
    data = load_dataset(args.data, progress=progress, missing_variables=_log_missing)
    df = select_patients(data, model, args.patients_from)
    _log(f"  {len(df):,} rows, {df['patient_id'].nunique():,} patients ({args.patients_from})")
    _log("scoring every hour (with ICULOS, without, and as requests lack inputs) ...")
    result = evaluate_frame(
        df,
        model,
        out=args.out,
        bootstrap=args.bootstrap,
        target_sensitivity=args.target_sensitivity,
        progress=progress,
    )
    _log("at the model's threshold, ICULOS withheld: " + summary(result["at_threshold_no_los"]))
    target = result.get("target_sensitivity")
    if target is not None:
        if target["threshold"] is None:
            _log(f"no threshold alerts on {100 * target['target']:.1f} % of septic patients")
        else:
            _log(
                f"to alert on {100 * target['target']:.1f} % of septic patients: "
                + summary(target["figures"])
            )
            _log(
                "apply it in ml-config.yaml (then POST /reload-config):\n" + target["config_change"]
            )
    print(json.dumps(result))  # noqa: T201
    return 0


def _log_missing(names: list[str]) -> None:
    _log(f"  not in the data, scored as never measured: {', '.join(names)}")


if __name__ == "__main__":
    raise SystemExit(main())
