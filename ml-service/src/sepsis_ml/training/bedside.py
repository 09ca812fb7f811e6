"""The bedside scores alone on validation hours, for comparison with the model.

Each scored hour's latest values (the vitals carried forward in its window, its labs with their
age) become a patient for `sepsis_shared.scores`, the same functions every assessment uses;
the hourly AUROC of each score's total is then taken against the label. Values outside their
physiological range are left out, as the parser leaves them out of a request. Set A has no GCS,
ACVPU, oxygen or vasopressor columns, so those components are unscored, as for a request that
does not send them.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from sepsis_ml.features import FEATURE_NAMES, LABS, VITALS
from sepsis_shared.patient import NormalizedPatient, Observation
from sepsis_shared.scores import clinical_scores
from sepsis_shared.variables import VARIABLES

_VITAL = {v: FEATURE_NAMES.index(f"{v}_last") for v in VITALS}
_LAB = {
    lab: (FEATURE_NAMES.index(f"{lab}_last"), FEATURE_NAMES.index(f"{lab}_age")) for lab in LABS
}
SCORES = ("qsofa", "sirs", "news2", "sofa")


def _usable(name: str, value: float) -> bool:
    spec = VARIABLES[name]
    return not math.isnan(value) and spec.low <= value <= spec.high


def score_totals(features: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float64]]:
    """Each bedside score's total for every feature row."""
    out = {name: np.zeros(features.shape[0]) for name in SCORES}
    for i, row in enumerate(np.asarray(features, dtype=np.float64).tolist()):
        # a value outside its physiological range would be left out of a request (set A holds
        # a few recording artefacts, FiO2 0 among them)
        series = {v: (Observation(row[j], 0.0),) for v, j in _VITAL.items() if _usable(v, row[j])}
        for lab, (j, k) in _LAB.items():
            if _usable(lab, row[j]):
                series[lab] = (Observation(row[j], row[k]),)
        scores = clinical_scores(NormalizedPatient(series=series))
        for name in SCORES:
            out[name][i] = getattr(scores, name).score
    return out


def bedside_aurocs(
    labels: npt.NDArray[np.int8], features: npt.NDArray[np.float32]
) -> dict[str, float]:
    """Hourly AUROC of each bedside score alone (higher score = sicker)."""
    return {
        name: float(roc_auc_score(labels, totals))
        for name, totals in score_totals(features).items()
    }
