"""Train the sepsis model and write its artefact set.

`python -m sepsis_ml.training.train [--data PATH] [--out DIR] [--seed N]`

1. Read set A (parquet or a folder of .psv files) and build the window features of every hour.
2. Split by patient id hash: 20 % validation (never used for anything but the final figures);
   of the rest, 20 % of patients are an inner hold-out for early stopping, calibration and the
   alert threshold, and the remainder fit the trees.
3. Requests often lack what set A always has, so the fitting rows are varied at random: ICU
   length of stay withheld (NaN) in half of them, age and sex each in a tenth, and 30 % see
   only the newest 1-7 hours of their window (short histories, single snapshots). The inner
   hold-out is scored both with and without ICU length of stay.
4. LightGBM, deterministic (fixed seed and thread count), early stopping on hold-out AUROC.
5. Isotonic calibration on the hold-out; alert threshold = the calibrated probability that
   maximises the challenge utility on the hold-out.
6. ONNX export, onnxruntime-vs-LightGBM check (max abs difference printed, must be <= 1e-5).
7. Artefacts written; the validation patients are scored through the written ONNX model with
   the same code as `scripts/evaluate-ml`, and the figures stored in metadata.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from sepsis_ml.features import FEATURE_NAMES, LAB_MAX_AGE_HOURS, WINDOW_HOURS, feature_spec
from sepsis_ml.model import (
    CALIBRATION_FILE,
    FEATURES_FILE,
    METADATA_FILE,
    MODEL_FILE,
    SepsisModel,
    packaged_artifacts_dir,
)
from sepsis_ml.reliability import CHECKED_VARIABLES, RANGE_QUANTILES, training_ranges
from sepsis_ml.training.data import (
    DEFAULT_DATA,
    INNER_HOLDOUT_FRACTION,
    INNER_SALT,
    SPLIT_SALT,
    VALIDATION_FRACTION,
    Stress,
    hourly_features,
    in_inner_holdout,
    in_validation,
    load_dataset,
    row_mask,
)
from sepsis_ml.training.evaluate import evaluate_frame
from sepsis_ml.training.export import export_onnx, float32_exact_booster, onnx_native_max_diff
from sepsis_ml.utility import best_threshold, row_utilities

MODEL_NAME: Final = f"sepsis-lgbm-window{WINDOW_HOURS}h-labs{int(LAB_MAX_AGE_HOURS)}h"
MODEL_VERSION: Final = "2.0.0"
ICULOS_WITHHELD_SHARE: Final = 0.5
MAX_ONNX_DIFF: Final = 1e-5
THREADS: Final = 2
ICULOS_COL: Final = FEATURE_NAMES.index("ICULOS")
# Age and sex are always recorded in set A, but a request may lack them; withholding them now
# and then teaches the trees a branch for "unknown" (otherwise LightGBM would read NaN as 0).
DEMOGRAPHICS_WITHHELD_SHARE: Final = 0.1
DEMOGRAPHIC_COLS: Final = (FEATURE_NAMES.index("Age"), FEATURE_NAMES.index("Gender"))
FIT_STRESS: Final = Stress(
    "fitting",
    recent_labs=0.3,
    labs=0.1,
    bp=0.2,
    fio2=0.5,
    history=0.3,
    history_hours=None,
)
"""How the fitting rows are varied: requests often carry only older labs, no labs, no blood
pressure, no FiO2, or less history than the window holds (1-7 hours at random)."""

PARAMS: Final[dict[str, Any]] = {
    "objective": "binary",
    "metric": "auc",
    "learning_rate": 0.03,
    "num_leaves": 63,
    "max_depth": -1,
    "min_data_in_leaf": 500,
    "feature_fraction": 0.5,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 5.0,
    "max_bin": 255,
    "deterministic": True,
    "force_col_wise": True,
    "num_threads": THREADS,
    "verbosity": -1,
}
BOOTSTRAP_ROUNDS: Final = 200  # patient resamples for the validation figures' 95 % intervals
MAX_ROUNDS: Final = 1500
EARLY_STOPPING: Final = 100


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201


def _withhold_at_random(
    features: npt.NDArray[np.float32], rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    out = features.copy()
    out[rng.random(out.shape[0]) < ICULOS_WITHHELD_SHARE, ICULOS_COL] = np.nan
    for col in DEMOGRAPHIC_COLS:
        out[rng.random(out.shape[0]) < DEMOGRAPHICS_WITHHELD_SHARE, col] = np.nan
    return out


def _both_ways(
    features: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """The rows as given, then again with ICULOS unknown."""
    without = features.copy()
    without[:, ICULOS_COL] = np.nan
    return np.concatenate([features, without])


def train(
    data: Path,
    out: Path,
    *,
    seed: int,
    max_rounds: int = MAX_ROUNDS,
    fit_stress: Stress = FIT_STRESS,
    bootstrap: int = BOOTSTRAP_ROUNDS,
) -> dict[str, Any]:
    """Train, calibrate, export and validate; return the metadata written."""
    started = time.perf_counter()
    _log(f"reading {data} ...")
    df = load_dataset(data, progress=sys.stderr.isatty())
    data_sha = hashlib.sha256(data.read_bytes()).hexdigest() if data.is_file() else None
    _log(f"  {len(df):,} rows, {df['patient_id'].nunique():,} patients")

    validation = row_mask(df, in_validation, seed=seed)
    holdout = ~validation & row_mask(df, in_inner_holdout, seed=seed)
    fit = ~validation & ~holdout
    train_df = df.loc[~validation].reset_index(drop=True)
    _log(
        f"split: {int(fit.sum()):,} fitting rows, {int(holdout.sum()):,} hold-out rows, "
        f"{int(validation.sum()):,} validation rows (patients never used in training)"
    )

    _log("features (one window per hour) ...")
    hourly = hourly_features(train_df)
    is_holdout = holdout[~validation]
    rng = np.random.default_rng(seed)
    varied = hourly_features(train_df, stress=fit_stress)
    x_fit = _withhold_at_random(varied.features[~is_holdout], rng)
    y_fit = hourly.labels[~is_holdout]
    x_hold = _both_ways(hourly.features[is_holdout])
    y_hold = np.concatenate([hourly.labels[is_holdout]] * 2)
    hold_ids = np.concatenate(
        [hourly.stay_ids[is_holdout], np.char.add(hourly.stay_ids[is_holdout], "#no_los")]
    )
    _log(f"  done in {time.perf_counter() - started:.0f} s; {len(FEATURE_NAMES)} features")

    params = {**PARAMS, "seed": seed}
    train_set = lgb.Dataset(
        x_fit, label=y_fit, feature_name=list(FEATURE_NAMES), free_raw_data=False
    )
    hold_set = lgb.Dataset(x_hold, label=y_hold, reference=train_set)
    _log("training LightGBM ...")
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=max_rounds,
        valid_sets=[hold_set],
        valid_names=["holdout"],
        callbacks=[
            lgb.early_stopping(EARLY_STOPPING, verbose=False),
            lgb.log_evaluation(50),
        ],
    )
    rounds = booster.best_iteration or booster.current_iteration()
    # keep only the trees up to the best iteration, with float32-exact split thresholds
    booster = float32_exact_booster(
        lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))
    )
    _log(f"  {rounds} trees; {time.perf_counter() - started:.0f} s")

    raw_hold = np.asarray(booster.predict(x_hold.astype(np.float64)), dtype=np.float64)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(raw_hold, y_hold)
    calibration = {
        "method": "isotonic",
        "fitted_on": "inner hold-out patients, with and without ICULOS",
        "x": [float(v) for v in iso.X_thresholds_],
        "y": [float(v) for v in iso.y_thresholds_],
    }
    cal_hold = np.interp(raw_hold, iso.X_thresholds_, iso.y_thresholds_)
    hold_utilities = row_utilities(y_hold, hold_ids)
    threshold, hold_utility = best_threshold(hold_utilities, cal_hold)
    _log(
        f"hold-out: AUROC {roc_auc_score(y_hold, cal_hold):.4f}, best utility "
        f"{hold_utility:.4f} at calibrated probability {threshold:.4f}"
    )

    out.mkdir(parents=True, exist_ok=True)
    export_onnx(booster, out / MODEL_FILE, name=MODEL_NAME)
    check_rows = np.concatenate([x_hold, x_fit[:100_000]])
    max_diff = onnx_native_max_diff(booster, out / MODEL_FILE, check_rows)
    _log(f"ONNX check: max |onnxruntime - LightGBM| = {max_diff:.3e} over {len(check_rows):,} rows")
    if max_diff > MAX_ONNX_DIFF:
        raise SystemExit(f"ONNX export disagrees with LightGBM by {max_diff:.3e} > {MAX_ONNX_DIFF}")

    features_json = feature_spec()
    importance = booster.feature_importance(importance_type="gain")
    top = sorted(zip(FEATURE_NAMES, importance, strict=True), key=lambda kv: -kv[1])[:20]
    metadata: dict[str, Any] = {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "alert_threshold": threshold,
        "alert_threshold_rule": "calibrated probability maximising the challenge utility on "
        "the inner hold-out patients (with and without ICULOS)",
        "window_hours": WINDOW_HOURS,
        "trees": rounds,
        "lightgbm_params": params,
        "iculos_withheld_share": ICULOS_WITHHELD_SHARE,
        "age_gender_withheld_share": DEMOGRAPHICS_WITHHELD_SHARE,
        "fitting_rows_varied": {
            key: value for key, value in vars(fit_stress).items() if key != "name"
        },
        "data": {
            "path": str(data),
            "sha256": data_sha,
            "rows": len(df),
            "patients": int(df["patient_id"].nunique()),
        },
        "split": {
            "seed": seed,
            "rule": "validation if int(sha256(f'{salt}:{seed}:{patient_id}')[:8 bytes]) "
            "< fraction * 2**64",
            "salt": SPLIT_SALT,
            "validation_fraction": VALIDATION_FRACTION,
            "inner_salt": INNER_SALT,
            "inner_holdout_fraction": INNER_HOLDOUT_FRACTION,
            "validation_patients": int(df.loc[validation, "patient_id"].nunique()),
            "holdout_patients": int(df.loc[holdout, "patient_id"].nunique()),
            "fit_patients": int(df.loc[fit, "patient_id"].nunique()),
        },
        "holdout": {"utility_at_threshold": hold_utility},
        "onnx_max_abs_diff": max_diff,
        "input_ranges": training_ranges(
            {name: train_df.loc[~is_holdout, name] for name in CHECKED_VARIABLES}
        ),
        "input_range_quantiles": list(RANGE_QUANTILES),
        "top_features_by_gain": [name for name, _ in top],
    }
    _write_json(out / FEATURES_FILE, features_json)
    _write_json(out / CALIBRATION_FILE, calibration)
    _write_json(out / METADATA_FILE, metadata)

    _log("validation patients, through the written ONNX artefacts ...")
    model = SepsisModel.load(out, threads=THREADS)
    figures = evaluate_frame(df.loc[validation].reset_index(drop=True), model, bootstrap=bootstrap)
    figures.pop("seconds", None)
    metadata["validation"] = figures
    _write_json(out / METADATA_FILE, metadata)
    _log(
        f"model size {(out / MODEL_FILE).stat().st_size / 1e6:.2f} MB; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    return metadata


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train-ml", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=packaged_artifacts_dir())
    parser.add_argument("--seed", type=int, default=2019)
    args = parser.parse_args(argv)
    metadata = train(args.data, args.out, seed=args.seed)
    print(json.dumps(metadata["validation"]))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
