"""The openai SDK's two HTTP transports: client cost of concurrent calls, and a refused port.

It starts the local OpenAI-compatible server (`tests/fakes/fake_openai.py`, answering at once)
on a free loopback port and, for the SDK's default transport (httpx2) and its aiohttp one
(`openai.DefaultAioHttpClient`), makes `--calls` concurrent chat completions of the service's
size (1,300 + 1,500 characters, a JSON schema), `--rounds` times after a warm-up round. It
prints the median wall time of a round and this process's CPU time per call, then what each
transport raises for a port where nothing listens. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai

ROOT = Path(__file__).resolve().parents[1]
FAKE_SERVER = ROOT / "tests" / "fakes" / "fake_openai.py"
KEY = "fake-llm-key"
SCHEMA: Any = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def client(transport: str, base_url: str) -> openai.AsyncOpenAI:
    http = (
        openai.DefaultAioHttpClient()
        if transport == "aiohttp"
        else openai.DefaultAsyncHttpxClient()
    )
    return openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0, http_client=http)


async def rounds(transport: str, base_url: str, calls: int, n_rounds: int) -> dict[str, Any]:
    sdk = client(transport, base_url)

    async def one(i: int) -> None:
        await sdk.chat.completions.create(
            model="m",
            messages=[
                {"role": "system", "content": "s" * 1300},
                {"role": "user", "content": f"{'u' * 1500} {i}"},
            ],
            max_tokens=800,
            temperature=0,
            response_format=SCHEMA,
        )

    walls: list[float] = []
    cpus: list[float] = []
    try:
        await asyncio.gather(*(one(i) for i in range(calls)))  # connections opened
        for _ in range(n_rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(one(i) for i in range(calls)))
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    finally:
        await sdk.close()
    return {
        "wall_ms_median": round(statistics.median(walls) * 1000, 1),
        "cpu_ms_per_call": round(statistics.median(cpus) * 1000 / calls, 3),
    }


async def refused(transport: str) -> str:
    sdk = client(transport, f"http://127.0.0.1:{free_port()}/v1")
    try:
        await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    except openai.OpenAIError as exc:
        return type(exc).__name__
    finally:
        await sdk.close()
    return "no error"


async def measure(base_url: str, calls: int, n_rounds: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"openai": openai.__version__, "calls": calls, "rounds": n_rounds}
    for transport in ("httpx2", "aiohttp"):
        result = await rounds(transport, base_url, calls, n_rounds)
        result["refused_port_raises"] = await refused(transport)
        say(f"{transport}: {json.dumps(result)}")
        figures[transport] = result
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=100, help="concurrent calls per round")
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds")
    args = parser.parse_args(argv)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(FAKE_SERVER), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_admin/stats", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        figures = asyncio.run(measure(f"http://127.0.0.1:{port}/v1", args.calls, args.rounds))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    say(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
