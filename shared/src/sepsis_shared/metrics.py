"""Request counts, error counts and latency percentiles per route, in fixed memory.

Each route keeps a log-bucket latency histogram: 2 % wide buckets from 10 µs to one hour
(about a thousand counters, allocated once). Memory does not grow with traffic, and a
percentile read from it (interpolated inside its bucket) is within one bucket width, 2 %, of
the exact value over every request since start.

`RouteMetricsMiddleware` (pure ASGI) times each HTTP request to its last body byte and counts
it under its route: the path template the router matched, else the raw path when it is a
known route, else one shared name. The set of keys is therefore bounded whatever paths
clients send. Only the route, method, status and duration are recorded, never a header or a
body.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED: Final = "(unmatched)"
"""The key every request outside the known routes is counted under."""

PERCENTILES: Final = (50, 95, 99)

_LOW_MS: Final = 0.01
_HIGH_MS: Final = 3_600_000.0
_RATIO: Final = 1.02
_LOG_RATIO: Final = math.log(_RATIO)
# Bucket 0 holds everything under _LOW_MS; the last one everything from _HIGH_MS up.
BUCKETS: Final = math.ceil(math.log(_HIGH_MS / _LOW_MS) / _LOG_RATIO) + 2


def _rounded(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)


class LatencyHistogram:
    """Latencies (milliseconds) counted in fixed geometric buckets."""

    __slots__ = ("count", "counts", "max_ms", "min_ms", "total_ms")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.total_ms = 0.0
        self.min_ms = math.inf
        self.max_ms = 0.0

    @staticmethod
    def _index(ms: float) -> int:
        if ms < _LOW_MS:
            return 0
        return min(BUCKETS - 1, 1 + int(math.log(ms / _LOW_MS) / _LOG_RATIO))

    @staticmethod
    def _edges(index: int) -> tuple[float, float]:
        if index == 0:
            return 0.0, _LOW_MS
        low = _LOW_MS * _RATIO ** (index - 1)
        return low, low * _RATIO

    def record(self, ms: float) -> None:
        """Add one latency in milliseconds (a value past the range is still counted)."""
        ms = max(0.0, ms)
        self.counts[self._index(ms)] += 1
        self.count += 1
        self.total_ms += ms
        self.min_ms = min(self.min_ms, ms)
        self.max_ms = max(self.max_ms, ms)

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0 < q <= 100) in milliseconds, or None before any record."""
        if self.count == 0:
            return None
        rank = q / 100.0 * self.count
        seen = 0
        for index, n in enumerate(self.counts):
            if n and seen + n >= rank:
                # Spread the bucket's observations evenly across it, then keep the answer
                # inside what was actually observed.
                low, high = self._edges(index)
                if index == BUCKETS - 1:
                    high = max(high, self.max_ms)  # the overflow bucket is open-ended
                value = low + (high - low) * max(0.0, rank - seen) / n
                return min(max(value, self.min_ms), self.max_ms)
            seen += n
        return self.max_ms

    def summary(self) -> dict[str, float | None]:
        """p50, p95, p99, mean and max in milliseconds, rounded for display (None if empty);
        the shape of `LatencySummary`."""
        out = {f"p{q}": _rounded(self.percentile(q)) for q in PERCENTILES}
        out["mean"] = _rounded(self.total_ms / self.count) if self.count else None
        out["max"] = _rounded(self.max_ms) if self.count else None
        return out


class LatencySummary(BaseModel):
    """Latency percentiles, mean and maximum in milliseconds (null before any request)."""

    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    max: float | None


class RouteStats:
    """Requests, client errors (4xx), server errors (5xx) and latencies of one route."""

    __slots__ = ("client_errors", "latency", "server_errors")

    def __init__(self) -> None:
        self.client_errors = 0
        self.server_errors = 0
        self.latency = LatencyHistogram()

    @property
    def count(self) -> int:
        """Requests recorded."""
        return self.latency.count

    @property
    def errors(self) -> int:
        """Requests answered with a 4xx or a 5xx."""
        return self.client_errors + self.server_errors

    def record(self, status: int, ms: float) -> None:
        """Add one finished request."""
        if status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.client_errors += 1
        self.latency.record(ms)

    def snapshot(self) -> dict[str, Any]:
        """The route's figures as plain data."""
        return {**counts_snapshot([self]), "latency_ms": self.latency.summary()}


def counts_snapshot(stats: Iterable[RouteStats]) -> dict[str, Any]:
    """Summed request and error counts of some routes, with their error rates."""
    count = client = server = 0
    for one in stats:
        count += one.count
        client += one.client_errors
        server += one.server_errors
    errors = client + server
    return {
        "count": count,
        "errors": errors,
        "client_errors_4xx": client,
        "server_errors_5xx": server,
        "error_rate": round(errors / count, 4) if count else 0.0,
        "server_error_rate": round(server / count, 4) if count else 0.0,
    }


class RouteMetrics:
    """Per-route figures of one process since it started.

    Record from the event loop only (the counters take no lock).
    """

    def __init__(self, routes: Iterable[str] = ()) -> None:
        self.since = datetime.now(UTC)
        self.started = time.monotonic()
        self.known: set[str] = set(routes)
        self.routes: dict[str, RouteStats] = {}

    def track(self, paths: Iterable[str]) -> None:
        """Count these raw paths under their own names."""
        self.known.update(paths)

    def route_key(self, scope: Scope) -> str:
        """The name a request is counted under: the matched path template, the raw path of a
        known route, or UNMATCHED."""
        template = getattr(scope.get("route"), "path", None)
        if isinstance(template, str):
            return template
        path: str = scope["path"]
        return path if path in self.known else UNMATCHED

    def record(self, route: str, status: int, ms: float) -> None:
        """Count one finished request under `route`."""
        stats = self.routes.get(route)
        if stats is None:
            stats = self.routes[route] = RouteStats()
        stats.record(status, ms)

    def uptime_s(self) -> float:
        """Seconds since this object was made."""
        return time.monotonic() - self.started

    def active(self) -> dict[str, RouteStats]:
        """Routes with at least one request, by name."""
        return {name: s for name, s in sorted(self.routes.items()) if s.count}

    def snapshot(self) -> dict[str, Any]:
        """Start time, uptime and every called route's figures, as plain data."""
        return {
            "since": self.since.isoformat(timespec="seconds"),
            "uptime_s": round(self.uptime_s(), 3),
            "routes": {name: s.snapshot() for name, s in self.active().items()},
        }


LogFields = Callable[[Scope, str], Mapping[str, Any]]
"""Extra fields for a request's log line, given its scope and route key."""


class RouteMetricsMiddleware:
    """Pure ASGI: time every HTTP request to its last body byte and count it by route.

    With `access_log`, also log one INFO line per request (method, route, status, duration,
    plus `log_fields`). A request whose app raised, or whose client left before the end of
    the response, is counted when the app returns (status 500 if none was sent).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: RouteMetrics,
        access_log: logging.Logger | None = None,
        log_fields: LogFields | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.log_fields = log_fields

    def _finish(self, scope: Scope, status: int, started: float) -> None:
        ms = (time.perf_counter() - started) * 1000.0
        route = self.metrics.route_key(scope)
        self.metrics.record(route, status, ms)
        log = self.access_log
        if log is not None and log.isEnabledFor(logging.INFO):
            extra = {
                "route": route,
                "method": scope["method"],
                "status": status,
                "duration_ms": round(ms, 3),
            }
            if self.log_fields is not None:
                extra.update(self.log_fields(scope, route))
            # Built directly rather than through `log.info`, which would walk the stack to find
            # the calling line on every request; the record is always this one place.
            record = log.makeRecord(
                log.name,
                logging.INFO,
                __file__,
                0,
                "%s %s %d %.1f ms",
                (scope["method"], route, status, ms),
                None,
                func="RouteMetricsMiddleware",
                extra=extra,
            )
            log.handle(record)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        done = False

        async def send_and_time(message: Message) -> None:
            nonlocal status, done
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                done = True
                self._finish(scope, status, started)

        try:
            await self.app(scope, receive, send_and_time)
        finally:
            if not done:
                self._finish(scope, status, started)
