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
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from sepsis_ml.model import SepsisModel
from sepsis_ml.training.data import (
    STRESSES,
    hourly_features,
    in_validation,
    load_dataset,
    row_mask,
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


# (suffix, ICULOS withheld, hours of history kept): the first two are the headline figures;
# the last two mimic requests that carry 6 hours of history or a single snapshot.
SCENARIOS: Final = (
    ("", False, None),
    ("_no_los", True, None),
    ("_6h_no_los", True, 6),
    ("_snapshot_no_los", True, 1),
)


def evaluate_frame(
    df: pd.DataFrame, model: SepsisModel, *, out: Path | None = None, bootstrap: int = 0
) -> dict[str, Any]:
    """Score every hour of `df` with `model` under each scenario; optionally write a report."""
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
    for suffix, no_los, history in SCENARIOS:
        hourly = hourly_features(df, withhold_iculos=no_los, history_hours=history)
        p = predict_in_chunks(model, hourly.features)
        probabilities[suffix] = p
        figures: dict[str, Any] = score_figures(labels, p, utilities, threshold)
        sens, false_stays = septic_patients_alarmed(labels, stay_ids, p >= threshold)
        figures |= {"septic_patients_alarmed": sens, "non_septic_patients_alarmed": false_stays}
        if bootstrap and suffix in ("", "_no_los"):
            figures |= bootstrap_intervals(
                labels, stay_ids, p, utilities, threshold, rounds=bootstrap
            )
        result |= {f"{key}{suffix}": value for key, value in figures.items()}
        _log(
            f"  {suffix.lstrip('_') or 'with_los'}: AUROC {figures['hourly_auroc']:.4f}, "
            f"utility {figures['utility']:.4f} ({time.perf_counter() - start:.1f} s)"
        )
    for stress in STRESSES:
        p = predict_in_chunks(
            model, hourly_features(df, withhold_iculos=True, stress=stress).features
        )
        figures = score_figures(labels, p, utilities, threshold)
        sens, false_stays = septic_patients_alarmed(labels, stay_ids, p >= threshold)
        figures |= {"septic_patients_alarmed": sens, "non_septic_patients_alarmed": false_stays}
        result |= {f"{key}_{stress.name}": value for key, value in figures.items()}
        _log(
            f"  {stress.name} (no ICULOS): AUROC {figures['hourly_auroc']:.4f}, "
            f"utility {figures['utility']:.4f} ({time.perf_counter() - start:.1f} s)"
        )
    if out is not None:
        from sepsis_ml.training.report import write_report  # matplotlib only when asked

        write_report(out, result, labels, probabilities[""], probabilities["_no_los"])
        _log(f"report written to {out}")
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    model = SepsisModel.load(args.model_dir, threads=args.threads)
    _log(f"model {model.name} {model.version}, alert threshold {model.alert_threshold:.4f}")
    _log(f"reading {args.data} ...")
    df = select_patients(load_dataset(args.data), model, args.patients_from)
    _log(f"  {len(df):,} rows, {df['patient_id'].nunique():,} patients ({args.patients_from})")
    _log("scoring every hour (with ICULOS, without, 6 h of history, single snapshot) ...")
    result = evaluate_frame(df, model, out=args.out, bootstrap=args.bootstrap)
    print(json.dumps(result))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
