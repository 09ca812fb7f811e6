"""Request counts, error counts and latency percentiles since start, in bounded memory.

Latencies go into a log-scale histogram (buckets 2 % wide from 10 µs to ~1 h): memory does not
grow with traffic, and a percentile read from it is within about 1 % of the exact value.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_MIN_MS = 0.01
_GROWTH = 1.02
_LOG_GROWTH = math.log(_GROWTH)
_MAX_BUCKET = int(math.log(3_600_000 / _MIN_MS) / _LOG_GROWTH)
PERCENTILES = (50, 95, 99)


class LatencyHistogram:
    """Log-bucketed latency histogram (milliseconds)."""

    __slots__ = ("_buckets", "count", "max_ms", "min_ms", "total_ms")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.total_ms = 0.0
        self.min_ms = math.inf
        self.max_ms = 0.0

    def record(self, ms: float) -> None:
        """Add one observation."""
        index = 0 if ms <= _MIN_MS else min(_MAX_BUCKET, int(math.log(ms / _MIN_MS) / _LOG_GROWTH))
        self._buckets[index] = self._buckets.get(index, 0) + 1
        self.count += 1
        self.total_ms += ms
        self.min_ms = min(self.min_ms, ms)
        self.max_ms = max(self.max_ms, ms)

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0-100), or None before any observation."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.count))
        if rank >= self.count:
            return self.max_ms
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                # Geometric middle of the bucket, kept inside what was actually observed.
                value = _MIN_MS * math.pow(_GROWTH, index + 0.5)
                return min(self.max_ms, max(self.min_ms, value))
        return self.max_ms

    def summary(self) -> dict[str, float | None]:
        """p50/p95/p99, mean and max in milliseconds, rounded for display."""
        out: dict[str, float | None] = {}
        for q in PERCENTILES:
            value = self.percentile(q)
            out[f"p{q}"] = None if value is None else round(value, 3)
        out["mean"] = round(self.total_ms / self.count, 3) if self.count else None
        out["max"] = round(self.max_ms, 3) if self.count else None
        return out


@dataclass(slots=True)
class RouteStats:
    """What happened on one route (or to one upstream) since start."""

    count: int = 0
    client_errors: int = 0
    server_errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def record(self, status: int, ms: float) -> None:
        self.count += 1
        if status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.client_errors += 1
        self.latency.record(ms)

    def snapshot(self) -> dict[str, Any]:
        errors = self.client_errors + self.server_errors
        return {
            "count": self.count,
            "errors": errors,
            "client_errors_4xx": self.client_errors,
            "server_errors_5xx": self.server_errors,
            "error_rate": round(errors / self.count, 4) if self.count else 0.0,
            "server_error_rate": round(self.server_errors / self.count, 4) if self.count else 0.0,
            "latency_ms": self.latency.summary(),
        }


class Metrics:
    """Per-route and per-upstream figures of this gateway process.

    Route names come from the fixed public route table (anything else is counted under one
    name), so the number of entries is bounded whatever paths clients send.
    """

    def __init__(self) -> None:
        self.started_wall = datetime.now(UTC)
        self.started = time.monotonic()
        self.routes: dict[str, RouteStats] = {}
        self.upstreams: dict[str, RouteStats] = {}

    def record_request(self, route: str, status: int, ms: float) -> None:
        """Count one answered request."""
        stats = self.routes.get(route)
        if stats is None:
            stats = self.routes[route] = RouteStats()
        stats.record(status, ms)

    def record_upstream(self, upstream: str, status: int, ms: float) -> None:
        """Count one upstream call; `status` is 0 when no answer came back."""
        stats = self.upstreams.get(upstream)
        if stats is None:
            stats = self.upstreams[upstream] = RouteStats()
        # A call without an answer is a failure of the upstream, counted as a 5xx.
        stats.record(status or 599, ms)

    def snapshot(self) -> dict[str, Any]:
        """All figures as plain data."""
        total = RouteStats()
        for stats in self.routes.values():
            total.count += stats.count
            total.client_errors += stats.client_errors
            total.server_errors += stats.server_errors
        summary = total.snapshot()
        del summary["latency_ms"]
        return {
            "since": self.started_wall.isoformat(timespec="seconds"),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "totals": summary,
            "routes": {name: s.snapshot() for name, s in sorted(self.routes.items())},
            "upstream_calls": {name: s.snapshot() for name, s in sorted(self.upstreams.items())},
        }
