"""Per-route request figures behind `/performance`, recorded by a pure ASGI middleware.

Latencies are kept in a bounded window per route (the most recent samples), so memory stays
flat however long the process runs; counts cover the whole uptime. Only the route template,
status and duration are recorded, never a body or a header.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("sepsis_genai.access")

WINDOW: Final = 4096
UNMATCHED: Final = "(unmatched)"


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class RouteStats:
    count: int = 0
    client_errors: int = 0
    server_errors: int = 0
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.samples)
        errors = self.client_errors + self.server_errors

        def r(x: float | None) -> float | None:
            return round(x, 3) if x is not None else None

        return {
            "count": self.count,
            "errors": errors,
            "client_errors_4xx": self.client_errors,
            "server_errors_5xx": self.server_errors,
            "error_rate": round(errors / self.count, 4) if self.count else 0.0,
            "server_error_rate": round(self.server_errors / self.count, 4) if self.count else 0.0,
            "latency_ms": {
                "p50": r(percentile(ordered, 50)),
                "p95": r(percentile(ordered, 95)),
                "p99": r(percentile(ordered, 99)),
                "mean": r(sum(ordered) / len(ordered)) if ordered else None,
                "max": r(ordered[-1]) if ordered else None,
            },
        }


class RequestMetrics:
    """Counts and latency windows per route since process start."""

    def __init__(self) -> None:
        self.since = datetime.now(UTC)
        self._started = time.monotonic()
        self.routes: dict[str, RouteStats] = {}

    def record(self, route: str, status: int, ms: float) -> None:
        stats = self.routes.get(route)
        if stats is None:
            stats = self.routes[route] = RouteStats()
        stats.count += 1
        if 400 <= status < 500:
            stats.client_errors += 1
        elif status >= 500:
            stats.server_errors += 1
        stats.samples.append(ms)

    def snapshot(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(timespec="seconds"),
            "uptime_s": round(time.monotonic() - self._started, 3),
            "routes": {name: s.summary() for name, s in sorted(self.routes.items())},
        }


class MetricsMiddleware:
    """Record each request's route, status and duration; log one line per request."""

    def __init__(self, app: ASGIApp, *, metrics: RequestMetrics, routes: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            ms = (time.perf_counter() - started) * 1000
            path = scope["path"]
            route = path if path in self.routes else UNMATCHED
            self.metrics.record(route, status, ms)
            logger.info(
                "%s %s %d %.1f ms",
                scope["method"],
                route,
                status,
                ms,
                extra={"route": route, "status": status, "duration_ms": round(ms, 3)},
            )
