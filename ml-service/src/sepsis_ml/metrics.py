"""Request and inference figures since start, in bounded memory, for GET /performance.

Requests are counted per route by `sepsis_shared.metrics` (its pure ASGI middleware and
fixed-memory latency histograms); inference calls are counted here, by the runtime, from its
worker threads. The per-route figures keep this service's own field names.
"""

from __future__ import annotations

import threading
from typing import Any

from sepsis_shared.metrics import RouteMetrics, RouteStats


class InferenceStats:
    """Rows and calls of the model, recorded from the inference threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.rows = 0
        self.seconds = 0.0
        self.max_batch = 0

    def record(self, rows: int, seconds: float) -> None:
        """Add one model call of `rows` rows."""
        with self._lock:
            self.calls += 1
            self.rows += rows
            self.seconds += seconds
            self.max_batch = max(self.max_batch, rows)

    def snapshot(self) -> dict[str, Any]:
        """The inference figures as plain data."""
        with self._lock:
            calls, rows, seconds, largest = self.calls, self.rows, self.seconds, self.max_batch
        return {
            "calls": calls,
            "rows_scored": rows,
            "mean_batch_size": round(rows / calls, 3) if calls else None,
            "max_batch_size": largest,
            "total_ms": round(seconds * 1000.0, 3),
            "mean_ms_per_call": round(seconds * 1000.0 / calls, 4) if calls else None,
            "mean_us_per_row": round(seconds * 1e6 / rows, 3) if rows else None,
        }


def _route_figures(stats: RouteStats) -> dict[str, Any]:
    errors = stats.errors
    return {
        "count": stats.count,
        "errors": errors,
        "client_errors": stats.client_errors,
        "server_errors": stats.server_errors,
        "error_rate": round(errors / stats.count, 6) if stats.count else 0.0,
        "latency_ms": stats.latency.summary(),
    }


class ServiceMetrics(RouteMetrics):
    """Per-route figures of one process since it started, and its model calls (routes not
    yet called are left out of the snapshot)."""

    def __init__(self) -> None:
        super().__init__()
        self.inference = InferenceStats()

    def snapshot(self) -> dict[str, Any]:
        """Everything, as plain data."""
        active = self.active()
        return {
            "uptime_s": round(self.uptime_s(), 3),
            "requests": sum(s.count for s in active.values()),
            "errors": sum(s.errors for s in active.values()),
            "routes": {path: _route_figures(s) for path, s in active.items()},
            "inference": self.inference.snapshot(),
        }
