"""Request and inference figures since start, in bounded memory, for GET /performance.

Latencies go into a fixed log-spaced histogram per route (5 % wide buckets from 10 µs to
10 min), so the percentiles cover every request since start at a constant memory cost and
are exact to within half a bucket (about 2.5 %). A pure ASGI middleware records each request
under its route path; inference calls are counted by the runtime from its worker threads.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LOW_S: Final = 1e-5
_HIGH_S: Final = 600.0
_RATIO: Final = 1.05
_LOG_RATIO: Final = math.log(_RATIO)
_BUCKETS: Final = math.ceil(math.log(_HIGH_S / _LOW_S) / _LOG_RATIO) + 2
UNMATCHED: Final = "(unmatched)"


class LatencyHistogram:
    """Counts of latencies in geometric buckets; percentiles by interpolation in a bucket."""

    __slots__ = ("count", "counts", "max_s", "min_s", "total_s")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.total_s = 0.0
        self.min_s = math.inf
        self.max_s = 0.0

    @staticmethod
    def _index(seconds: float) -> int:
        if seconds < _LOW_S:
            return 0
        return min(_BUCKETS - 1, 1 + int(math.log(seconds / _LOW_S) / _LOG_RATIO))

    @staticmethod
    def _edges(index: int) -> tuple[float, float]:
        if index == 0:
            return 0.0, _LOW_S
        low = _LOW_S * _RATIO ** (index - 1)
        return low, low * _RATIO

    def record(self, seconds: float) -> None:
        """Add one latency."""
        seconds = max(0.0, seconds)
        self.counts[self._index(seconds)] += 1
        self.count += 1
        self.total_s += seconds
        self.min_s = min(self.min_s, seconds)
        self.max_s = max(self.max_s, seconds)

    def percentile(self, q: float) -> float | None:
        """The q-quantile (0 < q <= 1) in seconds, None before the first record."""
        if self.count == 0:
            return None
        rank = q * self.count
        seen = 0
        for index, n in enumerate(self.counts):
            if n and seen + n >= rank:
                low, high = self._edges(index)
                value = low + (high - low) * max(0.0, rank - seen) / n
                return min(max(value, self.min_s), self.max_s)
            seen += n
        return self.max_s


class RouteStats:
    """Counts, error counts and latencies of one route."""

    __slots__ = ("client_errors", "latency", "server_errors")

    def __init__(self) -> None:
        self.client_errors = 0
        self.server_errors = 0
        self.latency = LatencyHistogram()

    def record(self, status: int, seconds: float) -> None:
        """Add one finished request."""
        if status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.client_errors += 1
        self.latency.record(seconds)

    def snapshot(self) -> dict[str, Any]:
        """The route's figures as plain data (milliseconds)."""
        h = self.latency
        errors = self.client_errors + self.server_errors

        def ms(seconds: float | None) -> float | None:
            return None if seconds is None else round(seconds * 1000.0, 3)

        return {
            "count": h.count,
            "errors": errors,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "error_rate": round(errors / h.count, 6) if h.count else 0.0,
            "latency_ms": {
                "p50": ms(h.percentile(0.50)),
                "p95": ms(h.percentile(0.95)),
                "p99": ms(h.percentile(0.99)),
                "mean": ms(h.total_s / h.count) if h.count else None,
                "max": ms(h.max_s) if h.count else None,
            },
        }


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


class ServiceMetrics:
    """Per-route figures of one process since it started (routes not yet called are left out
    of the snapshot)."""

    def __init__(self, routes: Iterable[str] = ()) -> None:
        self.started = time.monotonic()
        self.routes: dict[str, RouteStats] = {path: RouteStats() for path in routes}
        self.inference = InferenceStats()

    def track(self, paths: Iterable[str]) -> None:
        """Count these paths under their own names (the rest fall under one bucket)."""
        for path in paths:
            self.routes.setdefault(path, RouteStats())

    def route_key(self, path: str) -> str:
        """The key a path is counted under: the route path, or one bucket for the rest."""
        return path if path in self.routes else UNMATCHED

    def record(self, path: str, status: int, seconds: float) -> None:
        """Add one finished request (called on the event loop only)."""
        key = self.route_key(path)
        stats = self.routes.get(key)
        if stats is None:
            stats = self.routes[key] = RouteStats()
        stats.record(status, seconds)

    def snapshot(self) -> dict[str, Any]:
        """Everything, as plain data."""
        routes = {
            path: stats.snapshot() for path, stats in self.routes.items() if stats.latency.count
        }
        return {
            "uptime_s": round(time.monotonic() - self.started, 3),
            "requests": sum(r["count"] for r in routes.values()),
            "errors": sum(r["errors"] for r in routes.values()),
            "routes": routes,
            "inference": self.inference.snapshot(),
        }


class MetricsMiddleware:
    """Pure ASGI: time every HTTP request to its last body byte and count it by route."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        done = False

        async def send_and_time(message: Message) -> None:
            nonlocal status, done
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                done = True
                self.metrics.record(scope["path"], status, time.perf_counter() - start)

        try:
            await self.app(scope, receive, send_and_time)
        finally:
            if not done:
                # The app raised or the client went away before the response finished.
                self.metrics.record(scope["path"], status, time.perf_counter() - start)
