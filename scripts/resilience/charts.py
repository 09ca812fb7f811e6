"""The report's PNG charts (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROUTE_COLOURS = {
    "/classify": "tab:blue",
    "/classify-batch": "tab:cyan",
    "/genai-classify": "tab:orange",
    "/genai-classify-batch": "tab:red",
}


def faults_chart(data: dict[str, Any], path: Path) -> Path:
    """Latency of every background request over time, each fault's window shaded."""
    fig, ax = plt.subplots(figsize=(13, 5.5))
    by_route: dict[str, tuple[list[float], list[float]]] = {}
    for started, route, _status, seconds, _outcome in data["records"]:
        xs, ys = by_route.setdefault(route, ([], []))
        xs.append(started)
        ys.append(max(seconds * 1000, 0.1))
    for route, (xs, ys) in sorted(by_route.items()):
        ax.scatter(xs, ys, s=3, alpha=0.5, label=route, color=ROUTE_COLOURS.get(route))
    for i, fault in enumerate(data["faults"]):
        start, end = fault["window_s"]
        ax.axvspan(start, end, color="grey" if i % 2 else "silver", alpha=0.3)
        ax.text(start, 1.02, fault["name"].split(",")[0], rotation=20, fontsize=7,
                transform=ax.get_xaxis_transform())  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the load began")
    ax.set_ylabel("latency, ms (log)")
    fig.suptitle("Background load through the faults (shaded: fault until recovery)")
    ax.legend(loc="upper right", markerscale=4, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def knee_chart(steps: list[dict[str, Any]], bound_ms: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    rps = [s["rps"] for s in steps]
    for key, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        ax.plot(rps, [s[key] for s in steps], style, label=f"/classify {key}")
    for s in steps:
        ax.annotate(f"{s['users']}u", (s["rps"], s["p99"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    ax.axhline(bound_ms, color="red", linestyle="--", linewidth=1, label=f"{bound_ms:g} ms")
    ax.set_xlabel("throughput, requests/s (locust users marked)")
    ax.set_ylabel("latency, ms")
    ax.set_title("/classify latency as the load steps up")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def soak_latency_chart(history: list[dict[str, float]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(11, 4.5))
    t = [h["t"] for h in history]
    for key in ("p50", "p95", "p99"):
        ax.plot(t, [h[key] for h in history], label=f"/classify {key}")
    ax.set_xlabel("seconds into the soak")
    ax.set_ylabel("latency, ms (locust, 10 s window)")
    twin = ax.twinx()
    twin.plot(t, [h["rps"] for h in history], color="grey", alpha=0.5, label="requests/s")
    twin.set_ylabel("/classify requests/s")
    ax.set_title("Latency over the soak")
    ax.legend(loc="upper left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def soak_resources_chart(series: dict[str, Any], path: Path) -> Path:
    fig, (top, mid, low) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    t = series["t"]
    for name, values in sorted(series["rss_mib"].items()):
        top.plot(t, values, label=name)
    top.set_ylabel("RSS, MiB")
    top.set_title("Memory, file descriptors and connections over the soak")
    top.legend(fontsize=8, ncol=3)
    for name, values in sorted(series["fds"].items()):
        mid.plot(t, values, label=name)
    mid.set_ylabel("open file descriptors")
    mid.legend(fontsize=8, ncol=3)
    for name, values in sorted(series["connections"].items()):
        low.plot(t, values, label=f"to {name}")
    low.set_ylabel("established TCP connections")
    low.set_xlabel("seconds into the soak")
    low.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
