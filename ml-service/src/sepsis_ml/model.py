"""The sepsis model at run time: the ONNX gradient-boosted trees plus their calibration.

An artefact directory holds `model.onnx` (LightGBM exported without ZipMap),
`features.json` (feature names and window length the model was trained with),
`calibration.json` (isotonic breakpoints or Platt coefficients, applied here in numpy) and
`metadata.json` (name, version, alert threshold, training figures). `SepsisModel.load()`
reads the packaged set in `sepsis_ml/artifacts/` unless given a directory, and refuses a set
whose features differ from `sepsis_ml.features.FEATURE_NAMES`.
"""

from __future__ import annotations

import importlib.resources
import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from sepsis_ml.features import FEATURE_NAMES, WINDOW_HOURS, feature_spec
from sepsis_ml.reliability import InputRanges

MODEL_FILE: Final = "model.onnx"
FEATURES_FILE: Final = "features.json"
CALIBRATION_FILE: Final = "calibration.json"
METADATA_FILE: Final = "metadata.json"
ARTIFACT_FILES: Final = (MODEL_FILE, FEATURES_FILE, CALIBRATION_FILE, METADATA_FILE)

FloatArray = npt.NDArray[np.float64]


class ModelLoadError(RuntimeError):
    """The artefact directory is missing, incomplete, invalid or built for other features."""


def packaged_artifacts_dir() -> Path:
    """Directory of the artefacts shipped inside the `sepsis_ml` package."""
    return Path(str(importlib.resources.files("sepsis_ml").joinpath("artifacts")))


@dataclass(frozen=True)
class Calibration:
    """Maps the trees' raw probability to a calibrated one (monotone non-decreasing)."""

    method: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    @classmethod
    def from_json(cls, data: Any) -> Calibration:
        """Validate the parsed content of calibration.json."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        method = data.get("method")
        if method == "isotonic":
            x, y = data.get("x"), data.get("y")
            if not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y) or not x:
                raise ValueError("isotonic calibration needs equal, non-empty x and y lists")
            xs = tuple(float(v) for v in x)
            ys = tuple(float(v) for v in y)
            if not all(math.isfinite(v) for v in xs + ys):
                raise ValueError("isotonic breakpoints must be finite")
            if any(b < a for a, b in itertools.pairwise(xs)) or any(
                b < a for a, b in itertools.pairwise(ys)
            ):
                raise ValueError("isotonic breakpoints must be non-decreasing")
            if ys[0] < 0.0 or ys[-1] > 1.0:
                raise ValueError("isotonic outputs must lie in [0, 1]")
            return cls(method="isotonic", x=xs, y=ys)
        if method == "platt":
            a, b = data.get("a"), data.get("b")
            if not isinstance(a, int | float) or not isinstance(b, int | float):
                raise ValueError("platt calibration needs numeric a and b")
            if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
                raise ValueError("platt coefficients must be finite with a > 0")
            return cls(method="platt", a=float(a), b=float(b))
        if method == "identity":
            return cls(method="identity")
        raise ValueError(f"unknown calibration method {method!r}")

    def apply(self, p: FloatArray) -> FloatArray:
        """Calibrated probabilities for raw probabilities `p`."""
        if self.method == "isotonic":
            calibrated: FloatArray = np.interp(p, np.asarray(self.x), np.asarray(self.y))
            return calibrated
        if self.method == "platt":
            clipped = np.clip(p, 1e-15, 1.0 - 1e-15)
            logit = np.log(clipped) - np.log1p(-clipped)
            return 1.0 / (1.0 + np.exp(-(self.a * logit + self.b)))
        return p.copy()


def _read_json(directory: Path, name: str) -> Any:
    path = directory / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{name} is missing from the model directory {directory}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{name} in {directory} is not readable JSON: {exc}") from exc


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """How the service runs the model: `threads` intra-op threads (default: the cores), no
    inter-op parallelism, and no spinning. An idle intra-op thread would otherwise spin for a
    while after every call: on a single-row request it burns about ten times the CPU of the
    inference itself, CPU the event loop and the other processes of the host need; a
    1,000-row batch runs as fast without it."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class SepsisModel:
    """Calibrated sepsis probability for feature rows; safe to call from several threads."""

    def __init__(
        self,
        *,
        session: ort.InferenceSession,
        calibration: Calibration,
        metadata: dict[str, Any],
        feature_names: tuple[str, ...],
        directory: Path,
    ) -> None:
        self._session = session
        self._input_name: str = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]
        self._output_name: str = "probabilities" if "probabilities" in outputs else outputs[-1]
        self.calibration = calibration
        self.metadata = metadata
        self.feature_names = feature_names
        self.directory = directory
        self.name: str = str(metadata["name"])
        self.version: str = str(metadata["version"])
        self.alert_threshold: float = float(metadata["alert_threshold"])
        self.input_ranges = InputRanges(metadata.get("input_ranges") or {})

    @classmethod
    def load(
        cls,
        directory: Path | None = None,
        *,
        threads: int | None = None,
    ) -> SepsisModel:
        """Load an artefact directory (default: the packaged one); raise ModelLoadError.

        `threads`: intra-op threads of a call (default: the cores). The service runs each
        call on the pool thread that makes it (`threads=1`): rows split across threads would
        not all be summed in the same order as alone, and a batch's whole model call is a few
        milliseconds of its budget.
        """
        directory = packaged_artifacts_dir() if directory is None else Path(directory)
        if not directory.is_dir():
            raise ModelLoadError(f"model directory {directory} does not exist")

        features = _read_json(directory, FEATURES_FILE)
        names = features.get("feature_names") if isinstance(features, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ModelLoadError(f"{FEATURES_FILE} has no list of feature_names")
        if tuple(names) != FEATURE_NAMES:
            raise ModelLoadError(
                f"{FEATURES_FILE} lists {len(names)} features that differ from the "
                f"{len(FEATURE_NAMES)} this code computes; retrain or use matching code"
            )
        if features.get("window_hours") != WINDOW_HOURS:
            raise ModelLoadError(
                f"{FEATURES_FILE} window_hours {features.get('window_hours')!r} differs from "
                f"WINDOW_HOURS {WINDOW_HOURS}"
            )
        # the same names can hide changed meanings: inputs or clinical thresholds
        expected = json.loads(json.dumps(feature_spec()))
        for key, value in expected.items():
            if features.get(key) != value:
                raise ModelLoadError(
                    f"{FEATURES_FILE} {key} differ from what sepsis_ml.features computes now; "
                    "retrain or use matching code"
                )

        try:
            calibration = Calibration.from_json(_read_json(directory, CALIBRATION_FILE))
        except ValueError as exc:
            raise ModelLoadError(f"{CALIBRATION_FILE} is invalid: {exc}") from exc

        metadata = _read_json(directory, METADATA_FILE)
        if not isinstance(metadata, dict):
            raise ModelLoadError(f"{METADATA_FILE} is not a JSON object")
        for key in ("name", "version", "alert_threshold"):
            if key not in metadata:
                raise ModelLoadError(f"{METADATA_FILE} lacks {key!r}")
        threshold = metadata["alert_threshold"]
        if not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
            raise ModelLoadError(f"{METADATA_FILE} alert_threshold must be a probability")

        model_path = directory / MODEL_FILE
        if not model_path.is_file():
            raise ModelLoadError(f"{MODEL_FILE} is missing from the model directory {directory}")

        def open_session(intra_op_threads: int | None) -> ort.InferenceSession:
            try:
                return ort.InferenceSession(
                    str(model_path),
                    sess_options=session_options(intra_op_threads),
                    providers=["CPUExecutionProvider"],
                )
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelLoadError(
                    f"{MODEL_FILE} in {directory} cannot be loaded: {exc}"
                ) from exc

        session = open_session(threads)
        shape = session.get_inputs()[0].shape
        if len(shape) != 2 or shape[1] != len(FEATURE_NAMES):
            raise ModelLoadError(
                f"{MODEL_FILE} expects input shape {shape}, not (n, {len(FEATURE_NAMES)})"
            )
        return cls(
            session=session,
            calibration=calibration,
            metadata=metadata,
            feature_names=FEATURE_NAMES,
            directory=directory,
        )

    def _check(self, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
        x = np.ascontiguousarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(
                f"features must have shape (n, {len(self.feature_names)}), got {x.shape}"
            )
        return x

    def predict_uncalibrated(self, features: npt.ArrayLike) -> FloatArray:
        """The trees' own probability of the positive class, shape (n,), float64."""
        x = self._check(features)
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        (probabilities,) = self._session.run([self._output_name], {self._input_name: x})
        return np.asarray(probabilities, dtype=np.float64)[:, 1]

    def predict(self, features: npt.ArrayLike) -> FloatArray:
        """Calibrated probability of sepsis (the hourly label), shape (n,), float64."""
        return self.calibration.apply(self.predict_uncalibrated(features))
