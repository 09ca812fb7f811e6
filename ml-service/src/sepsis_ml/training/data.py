"""Loading the challenge data and splitting it by patient.

Accepts the project's parquet file (one row per patient-hour, `patient_id` column) or a folder
of the challenge's original pipe-separated `.psv` files (one per patient; the file stem is the
patient id). Rows stay in stay order: patients one after another, hours in time order.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from tqdm import tqdm

from sepsis_ml.features import INPUT_VARIABLES, WINDOW_HOURS, Withheld, features_for_stays

LABEL: Final = "SepsisLabel"
REQUIRED_COLUMNS: Final = (*INPUT_VARIABLES, "Age", "Gender", "ICULOS", LABEL)
DEFAULT_DATA: Final = Path("../shared/data/physionet2019/setA.parquet")

# The split rule stored in metadata.json: a patient is in the validation set when the first
# 8 bytes of sha256("<salt>:<seed>:<patient_id>"), read as a big-endian integer, are below
# fraction * 2**64. It depends on nothing but the id, so any copy of the data splits alike.
SPLIT_SALT: Final = "sepsis-ml-split"
INNER_SALT: Final = "sepsis-ml-inner"
VALIDATION_FRACTION: Final = 0.2
INNER_HOLDOUT_FRACTION: Final = 0.2


def _read_psv_folder(folder: Path, *, progress: bool) -> pd.DataFrame:
    files = sorted(folder.glob("*.psv"))
    if not files:
        raise FileNotFoundError(f"no .psv files in {folder}")
    frames = []
    for path in tqdm(files, desc="reading", unit="file", disable=not progress, file=sys.stderr):
        frame = pd.read_csv(path, sep="|")
        frame.insert(0, "patient_id", path.stem)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def load_dataset(
    path: Path,
    *,
    progress: bool = False,
    missing_variables: Callable[[list[str]], None] | None = None,
) -> pd.DataFrame:
    """Read a parquet file, one .psv file or a folder of them; check the columns the model
    needs. With `missing_variables`, variable columns the data lacks (another hospital's
    export may not carry every lab) are added as never measured and named to it; the stay,
    label and demographic columns stay required."""
    path = Path(path)
    if path.is_dir():
        df = _read_psv_folder(path, progress=progress)
    elif path.suffix == ".psv":
        df = pd.read_csv(path, sep="|")
        df.insert(0, "patient_id", path.stem)
    else:
        df = pd.read_parquet(path)
    absent = [c for c in INPUT_VARIABLES if c not in df.columns]
    if absent and missing_variables is not None:
        missing_variables(absent)
        df = df.assign(**dict.fromkeys(absent, np.nan))
    missing = [c for c in ("patient_id", *REQUIRED_COLUMNS) if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks columns: {', '.join(missing)}")
    df["patient_id"] = df["patient_id"].astype(str)
    # stays must be contiguous and in time order; a stable sort keeps the file's own order
    df = df.sort_values(["patient_id", "ICULOS"], kind="stable").reset_index(drop=True)
    return df


def _hash_unit(patient_ids: npt.ArrayLike, salt: str, seed: int) -> npt.NDArray[np.float64]:
    out = []
    for pid in np.asarray(patient_ids, dtype=str):
        digest = hashlib.sha256(f"{salt}:{seed}:{pid}".encode()).digest()
        out.append(int.from_bytes(digest[:8], "big") / 2.0**64)
    return np.asarray(out, dtype=np.float64)


def in_validation(patient_ids: npt.ArrayLike, *, seed: int) -> npt.NDArray[np.bool_]:
    """True for the patients of the validation split (by id hash; see SPLIT_SALT)."""
    return _hash_unit(patient_ids, SPLIT_SALT, seed) < VALIDATION_FRACTION


def in_inner_holdout(patient_ids: npt.ArrayLike, *, seed: int) -> npt.NDArray[np.bool_]:
    """True for the training patients held out for early stopping, calibration, threshold."""
    return _hash_unit(patient_ids, INNER_SALT, seed) < INNER_HOLDOUT_FRACTION


PatientRule = Callable[..., npt.NDArray[np.bool_]]


def row_mask(df: pd.DataFrame, rule: PatientRule, *, seed: int) -> npt.NDArray[np.bool_]:
    """Per-row mask from a per-patient rule, computed once per distinct patient."""
    ids = df["patient_id"].to_numpy(dtype=str)
    unique, inverse = np.unique(ids, return_inverse=True)
    per_patient = np.asarray(rule(unique, seed=seed), dtype=bool)
    return per_patient[inverse]


@dataclass(frozen=True)
class Hourly:
    """Features, labels and stay ids of every hour of a set of stays."""

    features: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int8]
    stay_ids: npt.NDArray[np.str_]


@dataclass(frozen=True)
class Stress:
    """What real requests lack that set A rows have, as shares of the scored hours (drawn at
    random with a fixed seed, so every model is stressed on the same hours)."""

    name: str
    recent_labs: float = 0.0
    """Labs of the newest 8 hours left out (an older result, up to 24 h, stands in)."""
    labs: float = 0.0
    """Every lab left out."""
    bp: float = 0.0
    """SBP, MAP and DBP left out."""
    fio2: float = 0.0
    history: float = 0.0
    """Vitals before the newest `history_hours` left out."""
    history_hours: int | None = 1
    """Hours of vitals kept where history is left out; None: 1 to WINDOW_HOURS-1 at random."""

    def withheld(self, n: int, *, seed: int = 2019) -> Withheld:
        """What each of `n` rows has withheld, for `features_for_stays`."""
        rng = np.random.default_rng(seed)
        # every share draws its own numbers whether it is used or not, so the hours one kind
        # of input is withheld from never depend on the other shares
        draws = {key: rng.random(n) for key in ("recent_labs", "labs", "bp", "fio2", "history")}
        hours = rng.integers(1, WINDOW_HOURS, size=n)
        masks = {
            key: draw < share if (share := float(getattr(self, key))) > 0 else None
            for key, draw in draws.items()
        }
        vital_hours = None
        history = masks.pop("history")
        if history is not None:
            kept = hours if self.history_hours is None else np.full(n, self.history_hours)
            vital_hours = np.where(history, kept, WINDOW_HOURS).astype(np.int64)
        return Withheld(vital_hours=vital_hours, **masks)


STRESSES: Final = (
    Stress("old_labs", recent_labs=0.5),
    Stress("no_bp", bp=1 / 3),
    Stress("no_fio2", fio2=1.0),
    Stress("snapshot", history=1.0),
    Stress("all_stresses", recent_labs=0.5, bp=1 / 3, fio2=1.0, history=1.0),
)
"""The ways requests were seen to differ from set A (labs 8-24 h old in half the windows, BP
absent in a third, FiO2 absent, a single snapshot), one at a time and all at once."""


def hourly_features(
    df: pd.DataFrame,
    *,
    withhold_iculos: bool = False,
    history_hours: int | None = None,
    stress: Stress | None = None,
) -> Hourly:
    """Features of every hour of every stay in `df` (window per hour, as the service sees);
    optionally without ICULOS, with only the newest `history_hours` hours of vitals, or
    under a `stress`."""
    n = len(df)
    iculos = np.full(n, np.nan) if withhold_iculos else df["ICULOS"].to_numpy(dtype=np.float64)
    stay_ids = df["patient_id"].to_numpy(dtype=str)
    if stress is None and history_hours is not None:
        stress = Stress("history", history=1.0, history_hours=history_hours)
    features = features_for_stays(
        df[list(INPUT_VARIABLES)].to_numpy(dtype=np.float64),
        stay_ids,
        age=df["Age"].to_numpy(dtype=np.float64),
        gender=df["Gender"].to_numpy(dtype=np.float64),
        iculos=iculos,
        withheld=None if stress is None else stress.withheld(n),
    )
    return Hourly(features=features, labels=df[LABEL].to_numpy(dtype=np.int8), stay_ids=stay_ids)
