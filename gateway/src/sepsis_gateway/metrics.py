"""The gateway's figures behind `/performance`, and its access log.

Per-route counting, latency histograms and the pure ASGI middleware are `sepsis_shared.metrics`;
the gateway adds the calls it makes to each upstream, totals over its routes, and the
upstream and body size on each access log line (never headers, keys or bodies).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.types import Scope

from sepsis_gateway.routes.table import ROUTES_BY_PATH
from sepsis_shared.metrics import RouteMetrics, RouteStats, counts_snapshot

access_logger = logging.getLogger("sepsis.gateway.access")


class Metrics(RouteMetrics):
    """Per-route and per-upstream figures of this gateway process.

    Routes are counted under the paths of the public route table (anything else under one
    name), so the number of entries is bounded whatever paths clients send.
    """

    def __init__(self) -> None:
        super().__init__(ROUTES_BY_PATH)
        self.upstreams: dict[str, RouteStats] = {}

    def record_upstream(self, upstream: str, status: int, ms: float) -> None:
        """Count one upstream call; `status` is 0 when no answer came back."""
        stats = self.upstreams.get(upstream)
        if stats is None:
            stats = self.upstreams[upstream] = RouteStats()
        # A call without an answer is a failure of the upstream, counted as a 5xx.
        stats.record(status or 599, ms)

    def snapshot(self) -> dict[str, Any]:
        """All figures as plain data."""
        figures = super().snapshot()
        return {
            "since": figures["since"],
            "uptime_s": figures["uptime_s"],
            "totals": counts_snapshot(self.routes.values()),
            "routes": figures["routes"],
            "upstream_calls": {name: s.snapshot() for name, s in sorted(self.upstreams.items())},
        }


def access_log_fields(scope: Scope, route: str) -> Mapping[str, Any]:
    """The upstream a request went to and the size of its body, for its access log line."""
    del route  # the key is already on the line; the upstream follows from the raw path
    public = ROUTES_BY_PATH.get(scope["path"])
    bytes_in = None
    for key, value in scope["headers"]:
        if key == b"content-length":
            bytes_in = int(value) if value.isdigit() else None
            break
    return {"upstream": public.upstream if public else None, "bytes_in": bytes_in}
