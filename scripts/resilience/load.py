"""Part 4: load with locust (headless, on loopback, bounded in time): the knee where /classify
p99 passes 100 ms as the user count steps up, the realistic mix at the knee, and the
gateway-vs-direct tail at 32 clients (`scripts/bench_gateway.py`, run as it is)."""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from scripts import bench_gateway as bench
from scripts.resilience.common import Section, ms, say
from scripts.resilience.stackup import ReportStack
from scripts.stack import REPO_ROOT

if TYPE_CHECKING:
    # Type-checked with the rest; never imported here at run time (locust patches with gevent).
    from scripts.resilience import locustfile as _locustfile  # noqa: F401

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
KNEE_P99_MS = 100.0
WARM_PATIENTS = 20


@dataclass(frozen=True)
class RouteStats:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float
    max_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class LocustRun:
    users: int
    seconds: float
    routes: dict[str, RouteStats]
    genai_seen: dict[str, int]
    prefix: Path

    def route(self, name: str) -> RouteStats | None:
        return self.routes.get(name)

    @property
    def total(self) -> RouteStats:
        return self.routes["Aggregated"]


def _num(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return math.nan


def read_stats(path: Path) -> dict[str, RouteStats]:
    """locust's `<prefix>_stats.csv`: one row per route and an `Aggregated` row."""
    found: dict[str, RouteStats] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            found[row["Name"]] = RouteStats(
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                rps=_num(row["Requests/s"]),
                p50=_num(row["50%"]),
                p95=_num(row["95%"]),
                p99=_num(row["99%"]),
                max_ms=_num(row["Max Response Time"]),
            )
    return found


def run_locust(
    rs: ReportStack,
    out_dir: Path,
    *,
    name: str,
    users: int,
    seconds: float,
    mix: str,
    hit_rate: float,
    user_rps: float = 0.0,
    history: bool = False,
) -> LocustRun:
    """One headless locust run; its CSV files stay in `out_dir`."""
    prefix = out_dir / name
    counts = out_dir / f"{name}_genai.json"
    env = dict(os.environ)
    env.update(
        RESILIENCE_API_KEY=rs.client_key,
        RESILIENCE_MIX=mix,
        RESILIENCE_HIT_RATE=str(hit_rate),
        RESILIENCE_WARM=str(WARM_PATIENTS),
        RESILIENCE_USER_RPS=str(user_rps),
        RESILIENCE_COUNTS=str(counts),
        RESILIENCE_USERS=str(users),
        RESILIENCE_RUN_S=str(seconds),
        PYTHONPATH=str(REPO_ROOT),
    )
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", rs.gateway_url, "--stop-timeout", "5",
        "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    if history:
        argv.append("--csv-full-history")
    started = time.monotonic()
    run = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
    )
    stats = Path(f"{prefix}_stats.csv")
    if run.returncode != 0 or not stats.is_file():
        raise RuntimeError(f"locust failed ({run.returncode}): {run.stderr[-3000:]}")
    seen = json.loads(counts.read_text()) if counts.is_file() else {}
    return LocustRun(users, time.monotonic() - started, read_stats(stats), seen, prefix)


def warm_genai_cache(rs: ReportStack) -> None:
    """Send each warm GenAI patient once, so that a hit-rate share of the mix is cached."""
    # The locustfile's patients, built the same way (importing it would load locust here).
    from sepsis_shared.patient import STRUCTURED_EXAMPLE

    with httpx.Client(base_url=rs.gateway_url, timeout=60) as client:
        for i in range(WARM_PATIENTS):
            body = dict(STRUCTURED_EXAMPLE) | {"notes": f"{STRUCTURED_EXAMPLE['notes']}; warm {i}"}
            client.post("/genai-classify", json=body, headers={"X-API-Key": rs.client_key})


@dataclass(frozen=True)
class Knee:
    steps: list[LocustRun]
    below: LocustRun | None
    """The busiest step whose /classify p99 stayed within the bound."""
    above: LocustRun | None
    """The first step past it (None: not reached)."""


def find_knee(rs: ReportStack, out_dir: Path, *, steps: list[int], step_s: float) -> Knee:
    runs: list[LocustRun] = []
    below: LocustRun | None = None
    above: LocustRun | None = None
    for users in steps:
        say(f"load: /classify at {users} users for {step_s:.0f} s")
        run = run_locust(rs, out_dir, name=f"knee-{users:03d}", users=users, seconds=step_s,
                         mix="classify", hit_rate=0.0)  # fmt: skip
        runs.append(run)
        stats = run.route("/classify")
        if stats is None or stats.p99 > KNEE_P99_MS or stats.error_rate > 0.01:
            above = run
            break
        below = run
    return Knee(runs, below, above)


def bench_tail(rs: ReportStack, *, requests: int) -> dict[str, Any]:
    """The gateway-vs-direct measurement of scripts/bench_gateway.py (its own `measure_pair`:
    rounds alternating the targets) at 1 and 32 clients against this stack."""
    # The JSON body is declared as such: the gateway refuses an undeclared type with 415.
    json_type = {"Content-Type": "application/json"}
    direct = bench.Target(
        "direct", f"{rs.ml_url}/classify", {"X-Service-Token": rs.service_token, **json_type}
    )
    gateway = bench.Target(
        "gateway", f"{rs.gateway_url}/classify", {"X-API-Key": rs.client_key, **json_type}
    )
    runs: dict[str, dict[str, Any]] = {"direct": {}, "gateway": {}}
    ratios: dict[str, Any] = {}
    for clients in (1, 32):
        pair = asyncio.run(
            bench.measure_pair(
                direct, gateway, clients=clients, requests=requests,
                warmup=max(32, requests // 10),
                rounds=bench.rounds_for(requests, clients, bench.ROUND_REQUESTS_PER_CLIENT),
            )
        )  # fmt: skip
        for run in pair:
            runs[run.target][str(clients)] = run.as_dict()
        ratios[str(clients)] = bench.overhead(*pair)
    return {"runs": runs, "overhead": ratios, "requests_per_run": requests}


def _route_rows(run: LocustRun) -> list[list[object]]:
    rows: list[list[object]] = []
    for name, st in sorted(run.routes.items(), key=lambda kv: kv[0] == "Aggregated"):
        rows.append([name, f"{st.requests:,}", f"{st.rps:,.1f}", ms(st.p50, 0), ms(st.p95, 0),
                     ms(st.p99, 0), ms(st.max_ms, 0), f"{st.error_rate:.2%}"])  # fmt: skip
    return rows


def load_section(
    rs: ReportStack,
    out_dir: Path,
    *,
    steps: list[int],
    step_s: float,
    mix_s: float,
    hit_rate: float,
    bench_requests: int,
    judge_speed: bool = True,
) -> tuple[Section, Knee]:
    """The load part; with `judge_speed` False (a run too short for a tail to mean anything)
    the speed targets are reported but not judged."""
    section = Section("load", "4. Load (locust) and the gateway's tail at 32 clients")
    rs.llm_admin("config", {"default": {"kind": "computed"}, "latency_s": 0.2})
    knee = find_knee(rs, out_dir, steps=steps, step_s=step_s)
    section.add(
        f"locust {_locust_version()} headless on loopback (FastHttpUser, no wait between "
        f"requests), /classify alone, {step_s:g} s per step, the user count stepped up until "
        f"/classify p99 passed {KNEE_P99_MS:g} ms (or errors passed 1 %). Everything (the "
        f"stack, locust, the fake LLM) shares this machine's {os.cpu_count()} CPUs.",
        "",
    )
    step_rows = []
    for run in knee.steps:
        st = run.route("/classify")
        if st is not None:
            step_rows.append([run.users, f"{st.rps:,.0f}", ms(st.p50, 0), ms(st.p95, 0),
                              ms(st.p99, 0), f"{st.error_rate:.2%}"])  # fmt: skip
    section.table(["users", "/classify rps", "p50 ms", "p95 ms", "p99 ms", "errors"], step_rows)
    if knee.above is not None and knee.below is not None:
        b, a = knee.below.route("/classify"), knee.above.route("/classify")
        assert b is not None
        assert a is not None
        section.add(
            f"**Knee**: /classify p99 passes {KNEE_P99_MS:g} ms between {knee.below.users} "
            f"users ({b.rps:,.0f} rps, p99 {b.p99:.0f} ms) and {knee.above.users} users "
            f"({a.rps:,.0f} rps, p99 {a.p99:.0f} ms).",
            "",
        )
    elif knee.above is None and knee.below is not None:
        section.add(f"**Knee**: not reached up to {knee.below.users} users.", "")
    else:
        section.add(f"**Knee**: /classify p99 was past {KNEE_P99_MS:g} ms from the first step.", "")
    mix_users = knee.below.users if knee.below is not None else steps[0]
    warm_genai_cache(rs)
    say(f"load: the realistic mix at {mix_users} users for {mix_s:.0f} s")
    mix = run_locust(rs, out_dir, name="mix", users=mix_users, seconds=mix_s, mix="mix",
                     hit_rate=hit_rate)  # fmt: skip
    seen = mix.genai_seen
    genai_total = sum(seen.values())
    observed = seen.get("cached", 0) / genai_total if genai_total else math.nan
    section.add(
        f"**Realistic mix** at {mix_users} users for {mix_s:g} s: 85 % /classify, 5 % "
        f"/classify-batch of 10 patients, 10 % /genai-classify with a set cache-hit rate of "
        f"{hit_rate:.0%} ({WARM_PATIENTS} patients cached beforehand; the rest distinct, each "
        f"an LLM call answered in 0.2 s); hit rate observed in the answers: {observed:.1%} "
        f"({json.dumps(seen)}).",
        "",
    )
    section.table(["route", "requests", "rps", "p50 ms", "p95 ms", "p99 ms", "max ms",
                   "errors"], _route_rows(mix))  # fmt: skip
    say(f"load: bench-gateway at 1 and 32 clients, {bench_requests} requests each")
    tail = bench_tail(rs, requests=bench_requests)
    d32, g32 = tail["runs"]["direct"]["32"], tail["runs"]["gateway"]["32"]
    d1, g1 = tail["runs"]["direct"]["1"], tail["runs"]["gateway"]["1"]
    ratio = g32["p99_ms"] / d32["p99_ms"] if d32["p99_ms"] else math.nan
    added = g1["p50_ms"] - d1["p50_ms"]
    section.add(
        f"**Gateway vs direct**: scripts/bench_gateway.py's measurement (`measure_pair`, "
        f"rounds alternating the two targets) of /classify, {bench_requests} requests per "
        "target and concurrency, straight to ml-service and through the gateway:",
        "",
    )
    section.table(
        ["clients", "direct p50", "direct p99", "gateway p50", "gateway p99", "p99 ratio",
         "direct rps", "gateway rps"],
        [[c, ms(tail["runs"]["direct"][c]["p50_ms"], 2), ms(tail["runs"]["direct"][c]["p99_ms"], 2),
          ms(tail["runs"]["gateway"][c]["p50_ms"], 2), ms(tail["runs"]["gateway"][c]["p99_ms"], 2),
          f"{tail['runs']['gateway'][c]['p99_ms'] / tail['runs']['direct'][c]['p99_ms']:.2f}x",
          f"{tail['runs']['direct'][c]['throughput_rps']:,.0f}",
          f"{tail['runs']['gateway'][c]['throughput_rps']:,.0f}"] for c in ("1", "32")],
    )  # fmt: skip
    section.check(
        "gateway p99 at 32 clients within 1.5x of direct",
        ratio <= 1.5 if judge_speed else None,
        f"{ratio:.2f}x",
    )
    section.check(
        "gateway adds at most 0.8 ms at p50 at one client",
        added <= 0.8 if judge_speed else None,
        f"+{added:.2f} ms",
    )
    section.check(
        "the realistic mix: error rate under 1 %",
        mix.total.error_rate < 0.01,
        f"{mix.total.error_rate:.2%} of {mix.total.requests:,}",
    )
    section.data = {
        "knee_p99_ms": KNEE_P99_MS,
        "steps": [
            {"users": r.users, **vars(r.routes["/classify"])}
            for r in knee.steps
            if "/classify" in r.routes
        ],
        "knee_below_users": knee.below.users if knee.below else None,
        "knee_above_users": knee.above.users if knee.above else None,
        "mix": {name: vars(st) for name, st in mix.routes.items()},
        "mix_users": mix_users,
        "genai_seen": seen,
        "hit_rate_set": hit_rate,
        "bench_gateway": tail,
    }
    return section, knee


def _locust_version() -> str:
    from importlib.metadata import version

    return version("locust")
