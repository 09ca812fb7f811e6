"""Evaluation report: metrics.json, report.md, and ROC, precision-recall, calibration and
threshold trade-off PNGs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

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


def _roc_pr_calibration(
    out: Path, labels: npt.NDArray[np.int8], runs: Sequence[tuple[str, npt.NDArray[np.float64]]]
) -> None:
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


def _tradeoff(out: Path, table: list[dict[str, float]], threshold: float) -> None:
    t = [row["threshold"] for row in table]
    fig, left = plt.subplots(figsize=(6.5, 4.5))
    left.plot(
        t,
        [row["patient_sensitivity"] for row in table],
        marker="o",
        label="septic patients alerted",
    )
    left.plot(
        t,
        [row["non_septic_patients_alerted"] for row in table],
        marker="s",
        label="non-septic patients alerted",
    )
    left.set(
        xscale="log",
        xlabel="alert threshold (calibrated probability)",
        ylabel="share of patients",
        ylim=(0, 1.02),
    )
    right = left.twinx()
    right.plot(
        t,
        [row["alerts_per_patient_day"] for row in table],
        color="tab:red",
        marker="^",
        label="alerts per patient-day",
    )
    right.set_ylabel("alerts per patient-day")
    left.axvline(threshold, color="grey", linestyle=":", label="model's threshold")
    lines = left.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    left.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    left.set_title("Threshold trade-off (ICULOS withheld)")
    fig.savefig(out / "threshold_tradeoff.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


_FIGURES: Final = (
    ("hourly AUROC", "hourly_auroc"),
    ("hourly AUPRC", "hourly_auprc"),
    ("normalised utility", "utility"),
    ("hours alarmed", "alarm_rate"),
    ("septic patients alarmed", "septic_patients_alarmed"),
    ("non-septic patients alarmed", "non_septic_patients_alarmed"),
    ("Brier score", "brier"),
    ("mean probability", "mean_probability"),
)
_TABLE_COLUMNS: Final = (
    ("threshold", "threshold", "{:.4g}"),
    ("septic patients alerted", "patient_sensitivity", "{:.3f}"),
    ("alerts per patient-day", "alerts_per_patient_day", "{:.2f}"),
    ("non-septic patients alerted", "non_septic_patients_alerted", "{:.3f}"),
    ("patient PPV", "patient_ppv", "{:.3f}"),
    ("alert PPV", "alert_ppv", "{:.3f}"),
    ("median lead time (h)", "median_lead_time_h", "{:.1f}"),
    ("hours alarmed", "hours_alarmed", "{:.3f}"),
)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def write_report(
    out: Path,
    figures: dict[str, Any],
    labels: npt.NDArray[np.int8],
    probabilities: Mapping[str, npt.NDArray[np.float64]],
    titles: Mapping[str, str],
) -> None:
    """Write metrics.json, report.md and the plots into `out` (created if needed);
    `probabilities` and `titles` by scenario suffix."""
    out.mkdir(parents=True, exist_ok=True)
    _roc_pr_calibration(
        out,
        labels,
        (("with ICULOS", probabilities[""]), ("ICULOS withheld", probabilities["_no_los"])),
    )
    _tradeoff(out, figures["threshold_table"], figures["alert_threshold"])
    (out / "metrics.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")

    suffixes = list(probabilities)
    lines = [
        "# Sepsis model evaluation",
        "",
        f"Model: {figures['model']}; rows {figures['rows']:,}; patients {figures['patients']:,}"
        f" ({figures['septic_patients']:,} septic); alert threshold "
        f"{figures['alert_threshold']:.4f}. Expected calibration error "
        f"{figures['ece']:.4f} (ICULOS withheld {figures['ece_no_los']:.4f}).",
        "",
        "## Scenarios",
        "",
        _row(["figure", *(titles[s] for s in suffixes)]),
        _row(["---"] * (len(suffixes) + 1)),
    ]
    for title, key in _FIGURES:
        lines.append(_row([title, *(f"{figures[key + s]:.4f}" for s in suffixes)]))
    lines += [
        "",
        "## Alert thresholds (ICULOS withheld)",
        "",
        "Definitions: `sepsis_ml/training/thresholds.py`. The model's own threshold is marked.",
        "",
        _row([title for title, _, _ in _TABLE_COLUMNS]),
        _row(["---"] * len(_TABLE_COLUMNS)),
    ]
    for row in figures["threshold_table"]:
        cells = [fmt.format(row[key]) for _, key, fmt in _TABLE_COLUMNS]
        if row["threshold"] == figures["alert_threshold"]:
            cells[0] = f"**{cells[0]}** (model)"
        lines.append(_row(cells))
    target = figures.get("target_sensitivity")
    if target is not None:
        lines += ["", f"Target sensitivity {target['target']:.2f}: "]
        if target["threshold"] is None:
            lines[-1] += "no threshold reaches it on this data."
        else:
            lines[-1] += f"threshold {target['threshold']:.6g}; in ml-config.yaml:"
            lines += ["", "```yaml", target["config_change"], "```"]
    bedside = figures.get("bedside_score_hourly_auroc")
    if bedside:
        lines += [
            "",
            "The bedside scores alone on the same hours (ICULOS withheld), hourly AUROC: "
            + ", ".join(f"{name} {auroc:.3f}" for name, auroc in bedside.items())
            + ".",
        ]
    lines += ["", "## Confidence grades", ""]
    for suffix in ("_no_los", "_all_stresses"):
        grades = figures.get(f"by_confidence{suffix}")
        if grades:
            cells = [
                f"{level} {100 * g['hours_share']:.1f} % of hours, AUROC "
                + ("n/a" if g["hourly_auroc"] is None else f"{g['hourly_auroc']:.3f}")
                for level, g in grades.items()
            ]
            lines.append(f"- {suffix.lstrip('_').replace('_', ' ')}: " + "; ".join(cells))
    lines += [
        "",
        "![ROC](roc.png) ![Precision-recall](precision_recall.png) ![Calibration](calibration.png)",
        "![Threshold trade-off](threshold_tradeoff.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
