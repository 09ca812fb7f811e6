"""Gateway overhead benchmark: POST /classify straight to ml-service and through the gateway.

At each concurrency (default 1 and 32 clients) and for each target, it sends a warm-up, then a
fixed number of requests (in short rounds that alternate the two targets, 8 requests per client
each, so that a change in the machine's load falls on both) with the original deployment
guide's /classify body (DESIGN §8), and reports latency p50/p99, throughput and the gateway's
overhead (through-gateway p50 and p99 over direct; direct throughput over through-gateway
throughput; the milliseconds the gateway adds at p50). The targets: at one client the gateway
adds at most 0.8 ms at p50 on loopback; with more clients the p50 ratio is at most 1.5; from 32
clients the p99 and throughput ratios are at most 1.5 too. It also judges the floor of
/classify through the gateway: p50 under 3 ms at one client.
A readable table comes first; the last line is one JSON object with every figure.

Needs a running stack (scripts/run) or any ml-service and gateway you started yourself:

    scripts/bench-gateway [--gateway-url URL] [--ml-url URL] [--requests N] [--concurrency 1,32]

URLs and keys come from the options, else the environment (GATEWAY_URL, ML_SERVICE_URL, API_KEY
or the first of API_KEYS, SERVICE_TOKEN), else the `.run/stack.env` that scripts/run writes,
else the local defaults (:8000 and :8001). The gateway's
per-key rate limit must allow the run (about 2 x (requests + warm-up) per concurrency);
raise RATE_LIMIT_PER_MINUTE on the gateway otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from sepsis_shared.patient import FLAT_EXAMPLE

# DESIGN §8: the original deployment guide's /classify verification request.
GUIDE_CLASSIFY = json.dumps(FLAT_EXAMPLE).encode()

TARGET_RATIO = 1.5
THROUGHPUT_FROM_CLIENTS = 32
"""The throughput and p99 targets hold under concurrent load (32 clients and more); at one
client throughput is only the inverse of the latency."""
ADDED_P50_MAX_MS = 0.8
"""At one client the gateway adds at most this much at p50 on loopback (a ratio says little
of a sub-millisecond hop)."""
ROUND_REQUESTS_PER_CLIENT = 8
"""Each round sends this many requests per client to one target, then the other target has its
round: short rounds, so that the machine's speed, which drifts within seconds on a shared
host, is the same for both targets."""
REQUEST_TIMEOUT_S = 30.0
P50_FLOOR_MS = 3.0
"""The floor of /classify through the gateway: p50 at one client under this."""


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Run:
    target: str
    clients: int
    requests: int
    errors: int
    statuses: dict[str, int]
    p50_ms: float
    p99_ms: float
    mean_ms: float
    throughput_rps: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "statuses": self.statuses,
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "mean_ms": round(self.mean_ms, 3),
            "throughput_rps": round(self.throughput_rps, 1),
        }


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def _drive(
    session: aiohttp.ClientSession, target: Target, *, total: int, clients: int
) -> tuple[list[float], dict[str, int], float]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                async with session.post(
                    target.url, data=GUIDE_CLASSIFY, headers=target.headers
                ) as resp:
                    await resp.read()
                    status = str(resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, statuses, time.perf_counter() - started


async def measure_pair(
    direct: Target, gateway: Target, *, clients: int, requests: int, warmup: int, rounds: int
) -> tuple[Run, Run]:
    """Both targets at one concurrency, alternating in rounds so that drift in the machine's
    load falls on both alike."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    latencies: dict[str, list[float]] = {direct.name: [], gateway.name: []}
    statuses: dict[str, dict[str, int]] = {direct.name: {}, gateway.name: {}}
    wall: dict[str, float] = {direct.name: 0.0, gateway.name: 0.0}
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=clients), timeout=timeout
        ) as session_d,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=clients), timeout=timeout
        ) as session_g,
    ):
        sessions = {direct.name: session_d, gateway.name: session_g}
        for target in (direct, gateway):
            await _drive(sessions[target.name], target, total=max(warmup, clients), clients=clients)
        per_round = [
            requests // rounds + (1 if i < requests % rounds else 0) for i in range(rounds)
        ]
        for i, n in enumerate(per_round):
            order = (direct, gateway) if i % 2 == 0 else (gateway, direct)
            for target in order:
                lat, st, wall_s = await _drive(
                    sessions[target.name], target, total=n, clients=clients
                )
                latencies[target.name] += lat
                for status, count in st.items():
                    statuses[target.name][status] = statuses[target.name].get(status, 0) + count
                wall[target.name] += wall_s

    def run(target: Target) -> Run:
        ordered = sorted(latencies[target.name])
        st = statuses[target.name]
        return Run(
            target=target.name,
            clients=clients,
            requests=requests,
            errors=sum(n for status, n in st.items() if status != "200"),
            statuses=st,
            p50_ms=percentile(ordered, 50),
            p99_ms=percentile(ordered, 99),
            mean_ms=statistics.fmean(ordered),
            throughput_rps=requests / wall[target.name],
        )

    return run(direct), run(gateway)


async def preflight(target: Target) -> str | None:
    """None when the target answers the benchmark request with 200, else why not."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(target.url, data=GUIDE_CLASSIFY, headers=target.headers) as resp,
        ):
            body = await resp.text()
            if resp.status != 200:
                return f"{target.url} answered {resp.status}: {body[:300]}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"{target.url} is not reachable ({type(exc).__name__}: {exc})"
    return None


def rounds_for(requests: int, clients: int, round_size: int) -> int:
    """How many rounds `requests` make at `round_size` requests per client (at least one)."""
    return max(1, min(requests, requests // (clients * round_size)))


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b > 0 else None


def overhead(direct: Run, gateway: Run) -> dict[str, float | None]:
    return {
        "p50_ratio": _ratio(gateway.p50_ms, direct.p50_ms),
        "p99_ratio": _ratio(gateway.p99_ms, direct.p99_ms),
        "throughput_ratio": _ratio(direct.throughput_rps, gateway.throughput_rps),
        "added_p50_ms": round(gateway.p50_ms - direct.p50_ms, 3),
    }


def stack_env() -> dict[str, str]:
    """The `export NAME=value` lines of the env file scripts/run writes, if there is one."""
    run_dir = Path(
        os.environ.get("STACK_RUN_DIR") or Path(__file__).resolve().parent.parent / ".run"
    )
    if not run_dir.is_absolute():
        run_dir = Path(__file__).resolve().parent.parent / run_dir
    path = run_dir / "stack.env"
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                name, value = words[1].split("=", 1)
                values[name] = value
    return values


def _setting(name: str, stack: dict[str, str], default: str | None = None) -> str | None:
    return os.environ.get(name) or stack.get(name) or default


def _default_key(stack: dict[str, str]) -> str | None:
    keys = [k.strip() for k in os.environ.get("API_KEYS", "").split(",") if k.strip()]
    return os.environ.get("API_KEY") or (keys[0] if keys else None) or stack.get("API_KEY")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    stack = stack_env()
    parser.add_argument(
        "--gateway-url", default=_setting("GATEWAY_URL", stack, "http://127.0.0.1:8000")
    )
    parser.add_argument(
        "--ml-url", default=_setting("ML_SERVICE_URL", stack, "http://127.0.0.1:8001")
    )
    parser.add_argument("--api-key", default=_default_key(stack), help="default: API_KEY")
    parser.add_argument(
        "--service-token", default=_setting("SERVICE_TOKEN", stack), help="default: SERVICE_TOKEN"
    )
    parser.add_argument("--path", default="/classify")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per run")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests first")
    parser.add_argument(
        "--round-size",
        type=int,
        default=ROUND_REQUESTS_PER_CLIENT,
        help="requests per client in each round; the rounds alternate the targets "
        f"(default {ROUND_REQUESTS_PER_CLIENT})",
    )
    parser.add_argument(
        "--concurrency",
        default="1,32",
        help="comma-separated numbers of concurrent clients (default 1,32)",
    )
    args = parser.parse_args(argv)
    args.clients = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    if not args.api_key:
        parser.error("no gateway key: set API_KEY (or API_KEYS) or pass --api-key")
    if not args.service_token:
        parser.error("no service token: set SERVICE_TOKEN or pass --service-token")
    if args.requests < 1 or args.round_size < 1 or not args.clients or min(args.clients) < 1:
        parser.error("--requests, --round-size and --concurrency must be positive")
    return args


def target_text(clients: int) -> str:
    """The targets that apply at this concurrency, in words."""
    if clients == 1:
        return f"gateway adds <= {ADDED_P50_MAX_MS} ms at p50"
    parts = [f"p50 ratio <= {TARGET_RATIO}"]
    if clients >= THROUGHPUT_FROM_CLIENTS:
        parts += [f"p99 ratio <= {TARGET_RATIO}", f"throughput ratio <= {TARGET_RATIO}"]
    return ", ".join(parts)


def targets_met(clients: int, r: dict[str, float | None]) -> bool:
    """Whether the overhead at this concurrency meets the targets of `target_text`."""
    if clients == 1:
        return (r["added_p50_ms"] or 0.0) <= ADDED_P50_MAX_MS
    met = (r["p50_ratio"] or 0.0) <= TARGET_RATIO
    if clients >= THROUGHPUT_FROM_CLIENTS:
        met = met and (r["p99_ratio"] or 0.0) <= TARGET_RATIO
        met = met and (r["throughput_ratio"] or 0.0) <= TARGET_RATIO
    return met


def print_table(runs: list[Run], ratios: dict[int, dict[str, float | None]]) -> None:
    header = f"{'target':<10} {'clients':>7} {'requests':>8} {'errors':>6} "
    header += f"{'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8}"
    print(header)  # noqa: T201
    print("-" * len(header))  # noqa: T201
    for run in runs:
        print(  # noqa: T201
            f"{run.target:<10} {run.clients:>7} {run.requests:>8} {run.errors:>6} "
            f"{run.p50_ms:>8.2f} {run.p99_ms:>8.2f} {run.mean_ms:>8.2f} {run.throughput_rps:>8.0f}"
        )
    print()  # noqa: T201
    print("gateway overhead:")  # noqa: T201
    for clients, r in ratios.items():
        print(  # noqa: T201
            f"  {clients:>3} clients: p50 x{r['p50_ratio']}, p99 x{r['p99_ratio']}, "
            f"throughput direct/gateway x{r['throughput_ratio']}, "
            f"+{r['added_p50_ms']} ms at p50"
        )


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    direct = Target(
        "direct",
        args.ml_url.rstrip("/") + args.path,
        {"X-Service-Token": args.service_token, "Content-Type": "application/json"},
    )
    gateway = Target(
        "gateway",
        args.gateway_url.rstrip("/") + args.path,
        {"X-API-Key": args.api_key, "Content-Type": "application/json"},
    )
    for target in (direct, gateway):
        problem = await preflight(target)
        if problem:
            print(f"bench-gateway: {problem}", file=sys.stderr)  # noqa: T201
            print("Start the stack first (scripts/run) or pass the URLs.", file=sys.stderr)  # noqa: T201
            return 2

    runs: list[Run] = []
    ratios: dict[int, dict[str, float | None]] = {}
    for clients in args.clients:
        print(f"... {clients} clients", file=sys.stderr)  # noqa: T201
        pair = await measure_pair(
            direct,
            gateway,
            clients=clients,
            requests=args.requests,
            warmup=args.warmup,
            rounds=rounds_for(args.requests, clients, args.round_size),
        )
        runs += pair
        ratios[clients] = overhead(*pair)

    print_table(runs, ratios)
    one = next((r for r in runs if r.target == "gateway" and r.clients == 1), None)
    floor_met = None if one is None else one.p50_ms < P50_FLOOR_MS
    if one is not None:
        verdict = "meets the floor" if floor_met else "BELOW the floor"
        print(  # noqa: T201
            f"gateway p50 at 1 client: {one.p50_ms:.2f} ms, {verdict} (< {P50_FLOOR_MS} ms)"
        )
    errors = sum(r.errors for r in runs)
    if errors:
        statuses = {f"{r.target}/{r.clients}": r.statuses for r in runs if r.errors}
        print(f"\nWARNING: {errors} requests failed: {statuses}", file=sys.stderr)  # noqa: T201
        if any("429" in s for s in statuses.values()):
            print(  # noqa: T201
                "The gateway's rate limit was hit: raise RATE_LIMIT_PER_MINUTE for the bench.",
                file=sys.stderr,
            )
    verdicts = {clients: targets_met(clients, r) for clients, r in ratios.items()}
    for clients, met_here in verdicts.items():
        print(  # noqa: T201
            f"targets at {clients} clients ({target_text(clients)}): "
            f"{'met' if met_here else 'NOT met'}"
        )
    met = all(verdicts.values())
    summary = {
        "benchmark": "gateway-overhead",
        "path": args.path,
        "direct_url": args.ml_url,
        "gateway_url": args.gateway_url,
        "requests_per_run": args.requests,
        "warmup_per_run": args.warmup,
        "rounds": {str(c): rounds_for(args.requests, c, args.round_size) for c in args.clients},
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "runs": {
            target: {str(r.clients): r.as_dict() for r in runs if r.target == target}
            for target in ("direct", "gateway")
        },
        "overhead": {str(c): r for c, r in ratios.items()},
        "target_ratio": TARGET_RATIO,
        "target_met": met and errors == 0,
        "errors": errors,
        "gateway_p50_floor_ms": P50_FLOOR_MS,
        "gateway_p50_meets_floor": floor_met,
    }
    print(json.dumps(summary, separators=(",", ":")))  # noqa: T201
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
