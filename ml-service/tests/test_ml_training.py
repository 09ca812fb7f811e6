"""The training pipeline end to end on a small synthetic cohort: data loading (parquet and
.psv), the patient split, training, calibration, ONNX export and its check, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sepsis_ml.features import INPUT_VARIABLES
from sepsis_ml.model import ARTIFACT_FILES, SepsisModel
from sepsis_ml.training import evaluate, train
from sepsis_ml.training.data import in_inner_holdout, in_validation, load_dataset

REQUIRED_KEYS = {
    "rows",
    "patients",
    "hourly_auroc",
    "hourly_auprc",
    "utility",
    "alert_threshold",
    "hourly_auroc_no_los",
    "hourly_auprc_no_los",
    "utility_no_los",
}


def synthetic_cohort(n_patients: int = 360, seed: int = 5) -> pd.DataFrame:
    """Stays of 12-30 hours; a quarter turn septic with a rising heart rate and temperature and
    falling blood pressure in their last hours, labelled as the challenge labels them."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_patients):
        n = int(rng.integers(12, 31))
        septic = rng.random() < 0.25
        onset = n - 8
        ramp = np.clip(np.arange(n) - (onset - 6), 0, None) if septic else np.zeros(n)
        data = {name: np.full(n, np.nan) for name in INPUT_VARIABLES}
        data["HR"] = rng.normal(80, 8, n) + 4.0 * ramp
        data["SBP"] = rng.normal(125, 10, n) - 3.0 * ramp
        data["MAP"] = data["SBP"] * 0.7
        data["Resp"] = rng.normal(16, 2, n) + 0.8 * ramp
        data["O2Sat"] = np.clip(rng.normal(97, 1.5, n), 80, 100)
        data["Temp"] = np.where(rng.random(n) < 0.3, rng.normal(36.9, 0.3, n) + 0.15 * ramp, np.nan)
        data["WBC"] = np.where(rng.random(n) < 0.1, rng.normal(9, 2, n) + ramp, np.nan)
        frame = pd.DataFrame(data)
        frame.insert(0, "patient_id", f"p{i:06d}")
        frame["Age"] = float(rng.integers(20, 90))
        frame["Gender"] = int(rng.integers(0, 2))
        frame["ICULOS"] = np.arange(1, n + 1)
        frame["SepsisLabel"] = (np.arange(n) >= onset).astype(np.int8) if septic else 0
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def cohort_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "cohort.parquet"
    synthetic_cohort().to_parquet(path)
    return path


@pytest.fixture(scope="module")
def trained(cohort_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifacts")
    train.train(cohort_file, out, seed=11, max_rounds=60)
    return out


def test_split_is_by_patient_deterministic_and_about_a_fifth() -> None:
    ids = np.array([f"p{i:06d}" for i in range(5000)])
    val = in_validation(ids, seed=3)
    assert 0.17 < val.mean() < 0.23
    np.testing.assert_array_equal(in_validation(ids[::-1], seed=3), val[::-1])
    assert not np.array_equal(in_validation(ids, seed=4), val)
    assert not np.array_equal(in_inner_holdout(ids, seed=3), val)


def test_training_writes_a_loadable_consistent_artefact_set(trained: Path) -> None:
    for name in ARTIFACT_FILES:
        assert (trained / name).is_file()
    model = SepsisModel.load(trained, threads=1)
    meta = model.metadata
    assert meta["onnx_max_abs_diff"] <= 1e-5
    assert meta["split"]["seed"] == 11
    assert set(meta["validation"]) >= REQUIRED_KEYS
    # the synthetic signal is strong: a working pipeline ranks it well
    assert meta["validation"]["hourly_auroc"] > 0.8
    assert meta["validation"]["utility"] > 0.2


def test_retraining_with_the_same_seed_reproduces_the_model(
    cohort_file: Path, trained: Path, tmp_path: Path
) -> None:
    train.train(cohort_file, tmp_path, seed=11, max_rounds=60)
    assert (tmp_path / "model.onnx").read_bytes() == (trained / "model.onnx").read_bytes()
    first = json.loads((trained / "metadata.json").read_text())["validation"]
    again = json.loads((tmp_path / "metadata.json").read_text())["validation"]
    assert first == again


def test_evaluate_prints_json_last_and_writes_a_report(
    cohort_file: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    code = evaluate.main(
        [str(cohort_file), "--model-dir", str(trained), "--out", str(out), "--threads", "1"]
    )
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(last)
    assert set(figures) >= REQUIRED_KEYS
    assert figures["rows"] == len(pd.read_parquet(cohort_file))
    for name in (
        "roc.png",
        "precision_recall.png",
        "calibration.png",
        "threshold_tradeoff.png",
        "report.md",
    ):
        assert (out / name).stat().st_size > 0
    assert 0 <= figures["ece_no_los"] < 0.2
    assert set(figures["bedside_score_hourly_auroc"]) == {"qsofa", "sirs", "news2", "sofa"}
    assert figures["at_threshold_no_los"]["threshold"] == figures["alert_threshold"]
    report = (out / "report.md").read_text()
    assert "(model)" in report
    assert "## Confidence grades" in report


def test_a_hospitals_psv_folder_missing_a_lab_gets_a_threshold_for_its_target(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    for pid, stay in synthetic_cohort(n_patients=60, seed=9).groupby("patient_id"):
        stay.drop(columns=["patient_id", "Fibrinogen"]).to_csv(
            site / f"{pid}.psv", sep="|", index=False
        )
    code = evaluate.main(
        [str(site), "--model-dir", str(trained), "--target-sensitivity", "0.8", "--quiet"]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "Fibrinogen" in captured.err  # named as never measured, not refused
    figures = json.loads(captured.out.strip().splitlines()[-1])
    target = figures["target_sensitivity"]
    assert target["figures"]["patient_sensitivity"] >= 0.8
    assert f"alert_threshold: {target['threshold']:.6g}" in target["config_change"]
    assert "alert_threshold:" in captured.err


def test_evaluate_on_the_validation_split_reproduces_the_training_figures(
    cohort_file: Path, trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate.main(
        [str(cohort_file), "--model-dir", str(trained), "--patients-from", "split:validation"]
    )
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    stored = json.loads((trained / "metadata.json").read_text())["validation"]
    assert figures["patients"] == stored["patients"] < 360
    for key in REQUIRED_KEYS:
        assert figures[key] == stored[key]


def test_bootstrap_intervals_bracket_the_figures(
    cohort_file: Path, trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate.main([str(cohort_file), "--model-dir", str(trained), "--bootstrap", "30"])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for suffix in ("", "_no_los"):
        for key in ("hourly_auroc", "utility"):
            low, high = figures[f"{key}_ci95{suffix}"]
            assert low <= figures[f"{key}{suffix}"] <= high
            assert low < high


def test_a_folder_of_psv_files_loads_like_the_parquet(tmp_path: Path) -> None:
    df = synthetic_cohort(n_patients=5)
    for pid, stay in df.groupby("patient_id"):
        stay.drop(columns="patient_id").to_csv(tmp_path / f"{pid}.psv", sep="|", index=False)
    loaded = load_dataset(tmp_path, progress=False)
    pd.testing.assert_frame_equal(loaded[df.columns].reset_index(drop=True), df, check_dtype=False)


def test_data_without_the_needed_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    synthetic_cohort(n_patients=2).drop(columns=["HR"]).to_parquet(path)
    with pytest.raises(ValueError, match="HR"):
        load_dataset(path)
