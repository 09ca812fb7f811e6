"""genai-service benchmark: cache hits, concurrency against a 1 s LLM, coalescing.

It starts, on free loopback ports, a private `redis-server` (or uses REDIS_URL when none is
installed), the local OpenAI-compatible server (`tests/fakes/fake_openai.py`) answering after
`--llm-latency` seconds (1 s by default), and the service itself
(`uvicorn sepsis_genai.app:create_app --factory`, provider `openai` pointed at that server, real
Redis cache). Then, in one run:

1. cache-hit latency at the service: one patient is answered once (cache filled), then
   `--hits` sequential requests on one keep-alive connection; p50/p99 of the round trip;
2. 100 concurrent distinct requests (none cached): wall time for all of them (target < 3 s
   with a 1 s LLM, which proves the calls run concurrently);
3. 50 identical concurrent requests of a patient not yet cached: how many LLM calls were made
   (target 1: coalesced).

Every step is bounded by a timeout; all processes it started are stopped at the end, and keys
of its own namespace are deleted when an outside Redis was used. The last line printed is one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
FAKE_SERVER = ROOT / "tests" / "fakes" / "fake_openai.py"
FAKE_KEY = "fake-llm-key"
STARTUP_TIMEOUT_S = 60.0


CONCURRENT = 100
"""Distinct requests sent at once in phase 2."""


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


@contextmanager
def process(
    args: list[str], *, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def wait_until(check: Any, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode} while starting")
        try:
            if check():
                return
        except (OSError, httpx.HTTPError, redis.RedisError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start within {STARTUP_TIMEOUT_S:.0f} s")


def redis_pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    finally:
        client.close()


def patient(i: int, *, notes: str = "Patient warm to touch, mild tachycardia.") -> dict[str, Any]:
    """A distinct, valid patient per index (distinct narrative, so a distinct cache key)."""
    return {
        "patient_id": f"BENCH-{i}",
        "vitals": {
            "HR": [96 + i % 40, 94 + i % 40, 90 + i % 40],
            "SBP": [112 - i % 25, 116, 120],
            "Temp": round(37.4 + (i % 15) / 10, 1),
            "Resp": 18 + i % 10,
            "O2Sat": 95,
            "Lactate": round(1.2 + (i % 30) / 10, 1),
            "WBC": 11.0 + i % 7,
            "Age": 40 + i % 50,
            "Gender": i % 2,
        },
        "notes": f"{notes} Observation set {i}.",
    }


async def measure(base: str, token: str, fake: str, hits: int) -> dict[str, Any]:
    headers = {"X-Service-Token": token}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with (
        httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as client,
        httpx.AsyncClient(base_url=fake, timeout=10) as admin,
    ):

        async def llm_calls() -> int:
            calls: int = (await admin.get("/_admin/stats")).json()["calls"]
            return calls

        # 1. cache hits
        warm = (await client.post("/genai-classify", json=patient(0))).json()
        if warm["llm"]["status"] != "ok":
            raise SystemExit(f"warm-up answer not from the LLM: {warm['llm']}")
        for _ in range(20):  # connection and code paths warm
            await client.post("/genai-classify", json=patient(0))
        round_trips: list[float] = []
        server_ms: list[float] = []
        statuses: set[str] = set()
        for _ in range(hits):
            started = time.perf_counter()
            r = await client.post("/genai-classify", json=patient(0))
            round_trips.append((time.perf_counter() - started) * 1000)
            body = r.json()
            statuses.add(body["llm"]["status"])
            server_ms.append(body["processing_time_ms"])
        if statuses != {"cached"}:
            raise SystemExit(f"cache-hit phase saw statuses {statuses}")
        say(
            f"cache hit, {hits} sequential requests: p50 {percentile(round_trips, 50):.2f} ms, "
            f"p99 {percentile(round_trips, 99):.2f} ms round trip "
            f"(in-service processing p50 {statistics.median(server_ms):.2f} ms)"
        )

        # 2. 100 concurrent distinct requests against the slow LLM
        before = await llm_calls()
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(client.post("/genai-classify", json=patient(1000 + i)) for i in range(CONCURRENT))
        )
        wall_100 = time.perf_counter() - started
        calls_100 = await llm_calls() - before
        statuses_100 = sorted(
            {r.json()["llm"]["status"] if r.status_code == 200 else "shed" for r in responses}
        )
        codes_100 = sorted({r.status_code for r in responses})
        say(
            f"100 concurrent distinct requests: {wall_100:.2f} s wall "
            f"({calls_100} LLM calls, statuses {statuses_100}, HTTP {codes_100}; target < 3 s)"
        )

        # 3. 50 identical concurrent requests of an uncached patient
        before = await llm_calls()
        same = patient(5000, notes="New confusion, mottled knees.")
        started = time.perf_counter()
        identical = await asyncio.gather(
            *(client.post("/genai-classify", json=same) for _ in range(50))
        )
        wall_50 = time.perf_counter() - started
        calls_50 = await llm_calls() - before
        statuses_50 = sorted({r.json()["llm"]["status"] for r in identical})
        say(
            f"50 identical concurrent requests: {calls_50} LLM call(s) in {wall_50:.2f} s "
            f"(statuses {statuses_50}; target 1)"
        )
        perf = (await client.get("/performance")).json()

    return {
        "cache_hit_p50_ms": round(percentile(round_trips, 50), 3),
        "cache_hit_p99_ms": round(percentile(round_trips, 99), 3),
        "cache_hit_server_p50_ms": round(statistics.median(server_ms), 3),
        "cache_hit_requests": hits,
        "concurrent_100_wall_s": round(wall_100, 3),
        "concurrent_100_llm_calls": calls_100,
        "concurrent_100_ok": all(r.status_code == 200 for r in responses)
        and statuses_100 == ["ok"],
        "concurrent_100_target_met": wall_100 < 3.0,
        "identical_50_llm_calls": calls_50,
        "identical_50_wall_s": round(wall_50, 3),
        "identical_50_target_met": calls_50 == 1,
        "service_cache_hit_rate": perf["cache"]["hit_rate"],
        "service_cache_errors": perf["cache"]["errors"],
        "service_cache_state": perf["cache"]["state"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--llm-latency", type=float, default=1.0, help="seconds per LLM answer")
    parser.add_argument("--hits", type=int, default=500, help="sequential cache-hit requests")
    parser.add_argument("--log-level", default="WARNING", help="the service's LOG_LEVEL")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on the whole run")
    args = parser.parse_args(argv)

    token = secrets.token_urlsafe(24)
    namespace = f"bench-genai:{secrets.token_hex(6)}"
    fake_port, service_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_OPENAI_", "OPENAI_"))}

    with ExitStack() as stack:
        redis_binary = shutil.which("redis-server")
        own_redis = redis_binary is not None
        if redis_binary is not None:
            redis_port = free_port()
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            proc = stack.enter_context(
                process(
                    [
                        redis_binary,
                        "--port",
                        str(redis_port),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ]
                )
            )
            wait_until(lambda: redis_pings(redis_url), "redis-server", proc)
        else:
            redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
            if not redis_pings(redis_url):
                raise SystemExit(f"no redis-server installed and nothing answers at {redis_url}")

        fake = f"http://127.0.0.1:{fake_port}"
        proc = stack.enter_context(
            process(
                [
                    sys.executable,
                    str(FAKE_SERVER),
                    "--port",
                    str(fake_port),
                    "--latency",
                    str(args.llm_latency),
                ]
            )
        )
        wait_until(lambda: httpx.get(f"{fake}/_admin/stats", timeout=1).is_success, "LLM", proc)

        env.update(
            SERVICE_TOKEN=token,
            LLM_PROVIDER="openai",
            OPENAI_BASE_URL=f"{fake}/v1",
            OPENAI_API_KEY=FAKE_KEY,
            OPENAI_MODEL="bench-model",
            REDIS_URL=redis_url,
            GENAI_CACHE_NAMESPACE=namespace,
            # room for the 100 concurrent calls of phase 2 (the defaults admit 64 in flight
            # and 32 waiting, then shed with 503 llm_overloaded)
            GENAI_MAX_CONCURRENCY=env.get("GENAI_MAX_CONCURRENCY", str(CONCURRENT)),
            LOG_LEVEL=args.log_level,
            LOG_FORMAT="json",
        )
        base = f"http://127.0.0.1:{service_port}"
        proc = stack.enter_context(
            process(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "sepsis_genai.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(service_port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env=env,
            )
        )
        wait_until(lambda: httpx.get(f"{base}/readyz", timeout=1).is_success, "service", proc)
        say(
            f"genai-service on {base}, LLM server latency {args.llm_latency:g} s, "
            f"Redis {'private' if own_redis else redis_url}"
        )

        async def bounded() -> dict[str, Any]:
            async with asyncio.timeout(args.timeout):
                return await measure(base, token, fake, args.hits)

        try:
            figures = asyncio.run(bounded())
        finally:
            if not own_redis:
                client = redis.Redis.from_url(redis_url)
                try:
                    found = list(client.scan_iter(match=f"{namespace}:*", count=500))
                    if found:
                        client.delete(*found)
                finally:
                    client.close()

    figures.update(
        benchmark="genai-service",
        llm_latency_s=args.llm_latency,
        cpus=os.cpu_count(),
        python=sys.version.split()[0],
    )
    say(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
