"""Export a LightGBM booster to ONNX and check onnxruntime against the native model."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

from sepsis_ml.features import FEATURE_NAMES

INPUT_NAME = "features"
TARGET_OPSET = 15


def float32_exact_booster(booster: lgb.Booster) -> lgb.Booster:
    """The same trees with every split threshold moved to the largest float32 <= it.

    LightGBM keeps thresholds as doubles; the ONNX tree operator stores float32 and compares
    float32 inputs. Rounding a threshold to the nearest float32 can step over an input value
    and send it down the other branch. For float32 inputs `x <= t` and `x <= t'` (t' the largest
    float32 not above t) always agree, so the adjusted model is the same function on the
    features the service computes, and its thresholds survive the export exactly.
    """
    # tree_sizes lists each tree's byte length for parallel parsing; the edited trees change
    # length, so the line goes and LightGBM parses the trees one after another
    lines = [
        line for line in booster.model_to_string().split("\n") if not line.startswith("tree_sizes=")
    ]
    for i, line in enumerate(lines):
        if not line.startswith("threshold="):
            continue
        values = np.array(line.removeprefix("threshold=").split(), dtype=np.float64)
        as32 = values.astype(np.float32)
        above = as32.astype(np.float64) > values
        as32[above] = np.nextafter(as32[above], np.float32(-np.inf))
        lines[i] = "threshold=" + " ".join(repr(float(v)) for v in as32)
    return lgb.Booster(model_str="\n".join(lines))


def export_onnx(booster: lgb.Booster, path: Path, *, name: str) -> None:
    """Write the booster as an ONNX classifier (probabilities output, no ZipMap)."""
    onnx_model = convert_lightgbm(
        booster,
        name=name,
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURE_NAMES)]))],
        target_opset=TARGET_OPSET,
        zipmap=False,
    )
    onnx_model.producer_name = "sepsis_ml.training"
    onnx_model.doc_string = f"{name}: LightGBM sepsis classifier over {len(FEATURE_NAMES)} features"
    path.write_bytes(onnx_model.SerializeToString())


def onnx_native_max_diff(
    booster: lgb.Booster, path: Path, features: npt.NDArray[np.float32]
) -> float:
    """Max |onnxruntime - LightGBM| positive-class probability over the given rows."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    output = "probabilities" if "probabilities" in outputs else outputs[-1]
    (onnx_p,) = session.run([output], {INPUT_NAME: np.ascontiguousarray(features)})
    native = np.asarray(booster.predict(features.astype(np.float64)), dtype=np.float64)
    return float(np.max(np.abs(np.asarray(onnx_p, dtype=np.float64)[:, 1] - native)))
