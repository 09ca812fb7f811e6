"""Per-route request figures: histogram accuracy and memory, error counting, the middleware."""

from __future__ import annotations

import logging
import random

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from starlette.types import Receive, Scope, Send

from sepsis_shared.metrics import (
    BUCKETS,
    UNMATCHED,
    LatencyHistogram,
    LatencySummary,
    RouteMetrics,
    RouteMetricsMiddleware,
    RouteStats,
    counts_snapshot,
)


def test_percentiles_of_a_skewed_distribution_are_close_to_exact_ones() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(1.0, 0.8) for _ in range(20_000)]
    hist = LatencyHistogram()
    for v in values:
        hist.record(v)
    ordered = sorted(values)
    for q in (50, 95, 99):
        exact = ordered[int(q / 100 * len(ordered)) - 1]
        approx = hist.percentile(q)
        assert approx is not None
        assert approx == pytest.approx(exact, rel=0.03), q
    assert hist.percentile(100) == pytest.approx(max(values))
    assert LatencyHistogram().percentile(50) is None


def test_percentiles_of_a_uniform_spread_over_five_decades() -> None:
    hist = LatencyHistogram()
    for i in range(1, 100_001):
        hist.record(i / 100)  # 10 µs .. 1 s, in milliseconds
    for q in (50, 95, 99):
        value = hist.percentile(q)
        assert value is not None
        assert value == pytest.approx(q * 10.0, rel=0.03), q


def test_summary_reports_rounded_milliseconds_and_nothing_when_empty() -> None:
    hist = LatencyHistogram()
    assert hist.summary() == {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    for ms in (1.0, 2.0, 3.0, 4.0):
        hist.record(ms)
    summary = hist.summary()
    assert summary["mean"] == 2.5
    assert summary["max"] == 4.0
    p50, p95, p99 = summary["p50"], summary["p95"], summary["p99"]
    assert p50 is not None
    assert p95 is not None
    assert p99 is not None
    assert 1.0 <= p50 <= p95 <= p99 <= 4.0
    assert LatencySummary.model_validate(summary).model_dump() == summary
    assert LatencySummary.model_validate(LatencyHistogram().summary()).max is None


def test_memory_is_fixed_whatever_the_traffic() -> None:
    hist = LatencyHistogram()
    assert len(hist.counts) == BUCKETS < 1000
    for i in range(200_000):
        hist.record((i % 5000) * 0.37 + 0.001)
    hist.record(10**9)  # beyond the range: clamped into the last bucket, still counted
    hist.record(-1.0)  # a negative duration counts as zero
    assert hist.count == 200_002
    assert len(hist.counts) == BUCKETS
    assert sum(hist.counts) == hist.count
    assert hist.percentile(100) == 10**9
    assert hist.min_ms == 0.0


def test_route_stats_count_client_and_server_errors_apart() -> None:
    stats = RouteStats()
    for status in (200, 201, 204, 301, 401, 404, 422, 500, 503, 599):
        stats.record(status, 1.0)
    assert (stats.count, stats.client_errors, stats.server_errors, stats.errors) == (10, 3, 3, 6)
    figures = stats.snapshot()
    assert figures["count"] == 10
    assert figures["errors"] == 6
    assert figures["client_errors_4xx"] == 3
    assert figures["server_errors_5xx"] == 3
    assert figures["error_rate"] == 0.6
    assert figures["server_error_rate"] == 0.3
    assert figures["latency_ms"]["max"] == 1.0


def test_counts_add_up_over_routes() -> None:
    a, b = RouteStats(), RouteStats()
    a.record(200, 1.0)
    a.record(500, 1.0)
    b.record(429, 1.0)
    b.record(200, 1.0)
    totals = counts_snapshot([a, b])
    assert totals["count"] == 4
    assert totals["client_errors_4xx"] == 1
    assert totals["server_errors_5xx"] == 1
    assert totals["error_rate"] == 0.5
    assert counts_snapshot([])["error_rate"] == 0.0


def test_snapshot_lists_only_called_routes_in_order() -> None:
    metrics = RouteMetrics(["/a", "/b"])
    metrics.record("/b", 200, 1.0)
    metrics.record("/a", 404, 2.0)
    metrics.routes["/idle"] = RouteStats()
    snapshot = metrics.snapshot()
    assert list(snapshot["routes"]) == ["/a", "/b"]
    assert snapshot["routes"]["/a"]["client_errors_4xx"] == 1
    assert snapshot["uptime_s"] >= 0.0
    assert snapshot["since"].endswith("+00:00")


def _app(metrics: RouteMetrics, *, log: logging.Logger | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(
        RouteMetricsMiddleware,
        metrics=metrics,
        access_log=log,
        log_fields=lambda scope, route: {"path_length": len(scope["path"]), "key": route},
    )
    return app


async def test_middleware_counts_by_template_known_path_or_one_bucket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = RouteMetrics(["/known-but-unrouted"])
    app = _app(metrics, log=logging.getLogger("test.access"))
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.INFO, logger="test.access"):
        async with AsyncClient(transport=transport, base_url="http://t") as client:
            for item_id in range(5):
                assert (await client.get(f"/items/{item_id}")).status_code == 200
            assert (await client.get("/items/not-a-number")).status_code == 422
            assert (await client.get("/known-but-unrouted")).status_code == 404
            for path in ("/x", "/y/z", "/items"):
                assert (await client.get(path)).status_code == 404
            assert (await client.get("/boom")).status_code == 500
    routes = metrics.snapshot()["routes"]
    assert set(routes) == {"/items/{item_id}", "/known-but-unrouted", "/boom", UNMATCHED}
    assert routes["/items/{item_id}"]["count"] == 6
    assert routes["/items/{item_id}"]["client_errors_4xx"] == 1
    assert routes["/known-but-unrouted"]["count"] == 1
    assert routes[UNMATCHED]["count"] == 3
    assert routes["/boom"]["server_errors_5xx"] == 1
    lines = [r for r in caplog.records if r.name == "test.access"]
    assert len(lines) == 11
    first = lines[0]
    assert first.__dict__["route"] == "/items/{item_id}"
    assert first.__dict__["method"] == "GET"
    assert first.__dict__["status"] == 200
    assert first.__dict__["duration_ms"] >= 0.0
    assert first.__dict__["path_length"] == len("/items/0")
    assert first.__dict__["key"] == "/items/{item_id}"


async def test_middleware_counts_a_request_whose_app_raised_before_answering() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        del receive, send
        raise RuntimeError(f"no answer to {scope['path']}")

    metrics = RouteMetrics(["/broken"])
    middleware = RouteMetricsMiddleware(broken, metrics=metrics)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: object) -> None:
        raise AssertionError(f"nothing is sent, yet {message!r} was")

    scope = {"type": "http", "method": "GET", "path": "/broken", "headers": []}
    with pytest.raises(RuntimeError):
        await middleware(scope, receive, send)
    assert metrics.routes["/broken"].server_errors == 1
    assert metrics.routes["/broken"].count == 1


async def test_middleware_ignores_lifespan_and_websocket_scopes() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        del receive, send
        seen.append(scope["type"])

    metrics = RouteMetrics()
    middleware = RouteMetricsMiddleware(inner, metrics=metrics)

    async def receive() -> dict[str, object]:
        return {"type": "lifespan.startup"}

    async def send(message: object) -> None:
        raise AssertionError(f"nothing is sent, yet {message!r} was")

    await middleware({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]
    assert metrics.routes == {}
