"""The model runtime: loading the packaged artefacts, calibrated predictions, refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from sepsis_ml.features import (
    FEATURE_NAMES,
    LABS,
    VITALS,
    WINDOW_HOURS,
    PatientWindow,
    features_for_windows,
)
from sepsis_ml.model import (
    ARTIFACT_FILES,
    Calibration,
    ModelLoadError,
    SepsisModel,
    packaged_artifacts_dir,
)

VCOL = {name: i for i, name in enumerate(VITALS)}
LCOL = {name: i for i, name in enumerate(LABS)}


@pytest.fixture(scope="module")
def model() -> SepsisModel:
    return SepsisModel.load(threads=1)


def _window(values: dict[str, list[float]], *, iculos: float = float("nan")) -> PatientWindow:
    vitals = np.full((WINDOW_HOURS, len(VITALS)), np.nan)
    labs = np.full(len(LABS), np.nan)
    ages = np.full(len(LABS), np.nan)
    for name, series in values.items():  # oldest first, ending at the scored hour
        if name in VCOL:
            vitals[WINDOW_HOURS - len(series) :, VCOL[name]] = series
        else:
            labs[LCOL[name]], ages[LCOL[name]] = series[-1], 0.0
    return PatientWindow(vitals, labs, ages, age=65.0, gender=1.0, iculos=iculos)


STABLE: dict[str, list[float]] = {
    "HR": [72, 74, 71, 73, 70, 72],
    "SBP": [128, 126, 130, 127, 129, 128],
    "MAP": [90, 88, 91, 89, 90, 90],
    "Resp": [14, 15, 14, 16, 15, 14],
    "Temp": [36.8, 36.9],
    "O2Sat": [98, 98, 97, 98, 99, 98],
    "WBC": [7.5],
    "Lactate": [1.0],
}
SHOCKED: dict[str, list[float]] = {
    "HR": [98, 104, 111, 118, 124, 131],
    "SBP": [112, 104, 97, 92, 86, 82],
    "MAP": [78, 72, 68, 64, 60, 57],
    "Resp": [20, 22, 24, 26, 28, 30],
    "Temp": [38.4, 39.3],
    "O2Sat": [96, 95, 94, 93, 92, 91],
    "WBC": [19.5],
    "Lactate": [4.2],
    "Platelets": [85.0],
    "Creatinine": [2.4],
}


def test_packaged_model_loads_with_its_metadata(model: SepsisModel) -> None:
    assert model.feature_names == FEATURE_NAMES
    assert model.name
    assert model.version
    assert 0.0 < model.alert_threshold < 1.0
    assert model.metadata["window_hours"] == WINDOW_HOURS
    assert model.metadata["onnx_max_abs_diff"] <= 1e-5


def test_predictions_are_calibrated_probabilities(model: SepsisModel) -> None:
    x = features_for_windows([_window(STABLE), _window(SHOCKED), _window({})])
    raw = model.predict_uncalibrated(x)
    p = model.predict(x)
    assert p.shape == (3,)
    assert p.dtype == np.float64
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p, model.calibration.apply(raw))


def test_deteriorating_patient_scores_higher_than_a_stable_one(model: SepsisModel) -> None:
    for iculos in (float("nan"), 30.0):
        x = features_for_windows([_window(STABLE, iculos=iculos), _window(SHOCKED, iculos=iculos)])
        stable, shocked = model.predict(x)
        assert shocked > stable
        assert shocked >= model.alert_threshold > stable


def test_batch_shape_checks(model: SepsisModel) -> None:
    assert model.predict(np.empty((0, len(FEATURE_NAMES)), dtype=np.float32)).shape == (0,)
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((2, len(FEATURE_NAMES) - 1), dtype=np.float32))


def test_concurrent_predictions_agree_with_sequential(model: SepsisModel) -> None:
    rng = np.random.default_rng(1)
    x = features_for_windows(
        [
            _window({"HR": list(rng.normal(95, 15, 6)), "SBP": list(rng.normal(110, 20, 6))})
            for _ in range(64)
        ]
    )
    expected = model.predict(x)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: model.predict(x), range(16)))
    for got in results:
        np.testing.assert_array_equal(got, expected)


def test_a_batch_call_gives_each_row_what_it_gets_alone() -> None:
    # the service scores a batch in one call: every row's probability must be the one the
    # same patient gets alone, to the last bit
    rng = np.random.default_rng(2)
    windows = []
    for _ in range(200):
        values = {
            name: list(rng.normal(mean, sd, int(rng.integers(1, WINDOW_HOURS + 1))))
            for name, mean, sd in (
                ("HR", 100, 20),
                ("SBP", 105, 20),
                ("MAP", 75, 12),
                ("Resp", 22, 5),
                ("Temp", 37.8, 0.8),
                ("O2Sat", 95, 2),
            )
        }
        values["Lactate"] = [float(rng.uniform(0.5, 6))]
        windows.append(_window(values, iculos=float(rng.integers(1, 100))))
    x = features_for_windows(windows)
    model = SepsisModel.load(threads=1)
    alone = np.concatenate([model.predict(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_array_equal(model.predict(x), alone)


@pytest.fixture
def artefact_copy(tmp_path: Path) -> Path:
    target = tmp_path / "artifacts"
    target.mkdir()
    for name in ARTIFACT_FILES:
        shutil.copy(packaged_artifacts_dir() / name, target / name)
    return target


@pytest.mark.parametrize("missing", ARTIFACT_FILES)
def test_a_missing_file_is_named(artefact_copy: Path, missing: str) -> None:
    (artefact_copy / missing).unlink()
    with pytest.raises(ModelLoadError, match=missing.replace(".", r"\.")):
        SepsisModel.load(artefact_copy)


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        SepsisModel.load(tmp_path / "nowhere")


def test_a_feature_list_mismatch_is_refused(artefact_copy: Path) -> None:
    path = artefact_copy / "features.json"
    data = json.loads(path.read_text())
    data["feature_names"] = [*data["feature_names"][:-1], "SomethingElse"]
    path.write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=r"features\.json"):
        SepsisModel.load(artefact_copy)


def test_a_changed_lab_age_limit_is_refused(artefact_copy: Path) -> None:
    # same feature names, different meaning: the model was trained on labs of another reach
    path = artefact_copy / "features.json"
    data = json.loads(path.read_text())
    data["lab_max_age_hours"] = 48
    path.write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="lab_max_age_hours"):
        SepsisModel.load(artefact_copy)


def test_a_corrupt_model_file_is_refused(artefact_copy: Path) -> None:
    (artefact_copy / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ModelLoadError, match=r"model\.onnx"):
        SepsisModel.load(artefact_copy)


@pytest.mark.parametrize(
    "calibration",
    [
        {"method": "isotonic", "x": [0.0, 0.5], "y": [0.3, 0.1]},
        {"method": "isotonic", "x": [0.0], "y": []},
        {"method": "platt", "a": -1.0, "b": 0.0},
        {"method": "magic"},
        [1, 2],
    ],
)
def test_an_invalid_calibration_is_refused(artefact_copy: Path, calibration: object) -> None:
    (artefact_copy / "calibration.json").write_text(json.dumps(calibration))
    with pytest.raises(ModelLoadError, match=r"calibration\.json"):
        SepsisModel.load(artefact_copy)


def test_an_invalid_threshold_is_refused(artefact_copy: Path) -> None:
    path = artefact_copy / "metadata.json"
    data = json.loads(path.read_text())
    data["alert_threshold"] = 1.5
    path.write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="alert_threshold"):
        SepsisModel.load(artefact_copy)


def test_calibration_methods() -> None:
    iso = Calibration.from_json({"method": "isotonic", "x": [0.1, 0.5], "y": [0.02, 0.4]})
    np.testing.assert_allclose(iso.apply(np.array([0.0, 0.3, 0.9])), [0.02, 0.21, 0.4])
    platt = Calibration.from_json({"method": "platt", "a": 1.0, "b": 0.0})
    np.testing.assert_allclose(platt.apply(np.array([0.2, 0.7])), [0.2, 0.7])


# ---- no telemetry ------------------------------------------------------------------------------

_SCORE_ONE = """
import sys
{first}
from sepsis_ml.features import FEATURE_NAMES
from sepsis_ml.model import SepsisModel
import numpy as np
model = SepsisModel.load(threads=1)
print(model.predict(np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32))[0])
"""


_QUIETING = frozenset(
    {
        "ORT_DISABLE_TELEMETRY",
        "ORT_RUNNING_UNIT_TESTS",
        # the build systems whose variables onnxruntime 1.32 takes as a CI run
        "CI",
        "APPVEYOR",
        "BITBUCKET_BUILD_NUMBER",
        "BUILDKITE",
        "CIRCLECI",
        "CODEBUILD_BUILD_ID",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "JENKINS_URL",
        "TEAMCITY_VERSION",
        "TF_BUILD",
    }
)
"""Variables under which onnxruntime sends nothing anyway (the control run needs it to)."""


def _score_one_in_fresh_home(tmp_path: Path, name: str, first: str) -> list[Path]:
    """Load and run the model in a new process whose home is empty; the files it leaves."""
    home = tmp_path / name
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        # onnxruntime stays quiet in a CI run, and honours an opt-out already set
        if key not in _QUIETING and not key.startswith("XDG_")
    }
    env["HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", _SCORE_ONE.format(first=first)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert 0.0 <= float(done.stdout.strip().splitlines()[-1]) <= 1.0
    return [p for p in home.rglob("*") if p.is_file()]


def test_onnxruntime_telemetry_is_off_in_the_service(tmp_path: Path) -> None:
    # onnxruntime imported first, as a plain script would: it writes its device identifier
    # (the start of its telemetry); that is what this test looks for
    left = _score_one_in_fresh_home(tmp_path, "plain", "import onnxruntime")
    assert any("onnxruntime" in str(p) for p in left), (
        f"onnxruntime left no telemetry files ({left}): this check cannot tell any more"
    )
    # through this package, as the service, training and evaluation load it: nothing at all
    assert _score_one_in_fresh_home(tmp_path, "service", "import sepsis_ml") == []
