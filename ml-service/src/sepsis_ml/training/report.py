"""Evaluation report: metrics.json, report.md and ROC / precision-recall / calibration PNGs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from sklearn.metrics import precision_recall_curve, roc_curve

# quantile edges, finer at the top where the alarms are: most hours sit near zero, so equal
# bins would spend nearly all their resolution on the lowest probabilities
CALIBRATION_QUANTILES = (0.0, 0.3, 0.5, 0.65, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 1.0)


def _reliability(
    labels: npt.NDArray[np.int8], p: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    edges = np.unique(np.quantile(p, CALIBRATION_QUANTILES))
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, len(edges) - 2)
    mean_p = np.array([p[idx == b].mean() for b in range(len(edges) - 1) if (idx == b).any()])
    rate = np.array([labels[idx == b].mean() for b in range(len(edges) - 1) if (idx == b).any()])
    return mean_p, rate


def write_report(
    out: Path,
    figures: dict[str, Any],
    labels: npt.NDArray[np.int8],
    p_los: npt.NDArray[np.float64],
    p_no_los: npt.NDArray[np.float64],
) -> None:
    """Write the report files into `out` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    runs = (("with ICULOS", p_los), ("ICULOS withheld", p_no_los))

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, p in runs:
        fpr, tpr, _ = roc_curve(labels, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (hourly)")
    ax.legend(loc="lower right")
    fig.savefig(out / "roc.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, p in runs:
        precision, recall, _ = precision_recall_curve(labels, p)
        ax.plot(recall, precision, label=name)
    ax.axhline(float(labels.mean()), color="grey", linestyle=":", label="prevalence")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (hourly)")
    ax.legend(loc="upper right")
    fig.savefig(out / "precision_recall.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for name, p in runs:
        mean_p, rate = _reliability(labels, p)
        ax.plot(mean_p, rate, marker="o", label=name)
        top = max(top, float(mean_p.max()), float(rate.max()))
    ax.plot([0, top], [0, top], color="grey", linestyle=":", label="perfect")
    ax.set(
        xlabel="predicted probability (bin mean)",
        ylabel="observed label rate",
        title="Calibration (bins by quantile, finer at the top)",
    )
    ax.legend(loc="upper left")
    fig.savefig(out / "calibration.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    (out / "metrics.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Sepsis model evaluation",
        "",
        f"Model: {figures['model']}; rows {figures['rows']:,}; patients {figures['patients']:,}"
        f" ({figures['septic_patients']:,} septic); alert threshold "
        f"{figures['alert_threshold']:.4f}.",
        "",
        "| figure | with ICULOS | ICULOS withheld | 6 h history, no ICULOS | snapshot, no ICULOS |",
        "| --- | --- | --- | --- | --- |",
    ]
    scenarios = ("", "_no_los", "_6h_no_los", "_snapshot_no_los")
    for label, key in (
        ("hourly AUROC", "hourly_auroc"),
        ("hourly AUPRC", "hourly_auprc"),
        ("normalised utility", "utility"),
        ("hours alarmed", "alarm_rate"),
        ("septic patients alarmed", "septic_patients_alarmed"),
        ("non-septic patients alarmed", "non_septic_patients_alarmed"),
        ("Brier score", "brier"),
        ("mean probability", "mean_probability"),
        ("utility at the best threshold (hindsight)", "utility_at_best_threshold"),
    ):
        cells = " | ".join(f"{figures[key + s]:.4f}" for s in scenarios)
        lines.append(f"| {label} | {cells} |")
    lines.append(
        f"| observed label rate | {figures['positive_rows'] / figures['rows']:.4f} | | | |"
    )
    scores = figures.get("score_hourly_auroc") or {}
    if scores:
        lines += [
            "",
            "Hourly AUROC of the partial bedside scores on the same hours: "
            + ", ".join(f"{name} {auroc:.4f}" for name, auroc in scores.items())
            + ".",
        ]
    lines += [
        "",
        "![ROC](roc.png) ![Precision-recall](precision_recall.png) ![Calibration](calibration.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
