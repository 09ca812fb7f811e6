"""genai-service against a real LLM server: what an assessment costs and how it ends.

It starts llama.cpp (xllamacpp, `tests/llm/llama_server.py`, one slot: it answers one call at a
time) serving SmolLM2-135M-Instruct from the real-LLM tier's environment (`LLM_TIER_PYTHON`,
which `scripts/bench-llm` sets up), and genai-service in-process (its lifespan over ASGI, the
`openai` SDK over loopback HTTP to the server, no cache). Then:

1. prompt size: characters and the server's prompt tokens (its chat template included) for the
   original guide's patient and for a 24-hour, 10-variable hourly series with a 2,000-character
   note;
2. `--n` distinct patients one after another with the service's deadline and
   `--max-output-tokens`: share of valid structured answers (`llm.status` ok) and of every
   other status, p50/p95 of the LLM latency per assessment, prompt and completion tokens per
   assessment;
3. the deadline: one assessment with `GENAI_DEADLINE_S=2` and room for 4,000 tokens: its status,
   when it ended, and how long the server kept generating after the service gave up;
4. `--concurrent` distinct patients at once against the one-slot server (the fake server's
   `scripts/bench-genai` figure is 100 in under 3 s against a 1 s LLM that runs them all at
   once): wall time and statuses.

The model is far too small to judge patients: these are figures of the wire, not of clinical
quality. Every step is bounded; the server is stopped at the end. The last line printed is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from sepsis_genai.app import create_app
from sepsis_genai.config import GenAISettings
from sepsis_genai.narrative import build_prompt
from sepsis_genai.trends import compute_trends
from sepsis_shared.notes import extract_findings
from sepsis_shared.patient import STRUCTURED_EXAMPLE, parse_patient
from sepsis_shared.scores import clinical_scores

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "tests" / "llm" / "llama_server.py"
TOKEN = secrets.token_urlsafe(24)


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return round(ordered[rank - 1], 1)


class Server:
    """The llama.cpp server process."""

    def __init__(self, python: str, *, parallel: int) -> None:
        self.key = secrets.token_urlsafe(16)
        # One thread: spinning llama.cpp threads beside the service on the same cores slow it.
        threads = os.environ.get("LLM_TIER_THREADS", "1")
        args = [python, str(LAUNCHER), "--api-key", self.key, "--parallel", str(parallel)]
        self.proc = subprocess.Popen(
            [*args, "--threads", threads],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line: list[str] = []
        stdout = self.proc.stdout
        reader = threading.Thread(
            target=lambda: line.append(stdout.readline() if stdout else ""), daemon=True
        )
        reader.start()
        reader.join(120)
        if not line or not line[0].strip():
            self.stop()
            raise SystemExit("the llama.cpp server did not start")
        info = json.loads(line[0])
        self.origin: str = info["listening"]
        self.model: str = info["model"]

    def busy(self) -> int:
        headers = {"Authorization": f"Bearer {self.key}"}
        slots = httpx.get(f"{self.origin}/slots", headers=headers, timeout=10).json()
        return sum(1 for slot in slots if slot.get("is_processing"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def settings(server: Server, **overrides: Any) -> GenAISettings:
    values: dict[str, Any] = {
        "SERVICE_TOKEN": TOKEN,
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
        "LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": f"{server.origin}/v1",
        "OPENAI_API_KEY": server.key,
        "OPENAI_MODEL": server.model,
        "GENAI_CACHE_ENABLED": False,
        "GENAI_HEALTH_PROBE_INTERVAL_S": 0,
    }
    values.update(overrides)
    return GenAISettings.model_validate(values)


@asynccontextmanager
async def service(config: GenAISettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(config)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://genai.bench",
            headers={"X-Service-Token": TOKEN},
            timeout=600,
        ) as client:
            yield client


def guide() -> dict[str, Any]:
    return copy.deepcopy(dict(STRUCTURED_EXAMPLE))


def patient(i: int) -> dict[str, Any]:
    """A distinct patient per index, from mild to septic shock."""
    shock = i % 3 == 2
    return {
        "patient_id": f"BENCH-LLM-{i}",
        "vitals": {
            "HR": [98 + i % 40, 95, 90],
            "SBP": [72 if shock else 118 - i % 30, 96, 112],
            "Temp": round(37.2 + (i % 18) / 10, 1),
            "Resp": 16 + i % 14,
            "O2Sat": 97 - i % 8,
            "Lactate": round(1.0 + (i % 50) / 10, 1),
            "WBC": 8.0 + i % 12,
            "Age": 35 + i % 55,
            "Gender": i % 2,
        },
        "notes": "Mottled knees, on noradrenaline." if shock else f"Comfortable, obs set {i}.",
    }


def long_series() -> dict[str, Any]:
    """24 hourly values of 10 variables and a 2,000-character note."""
    now = datetime(2026, 2, 7, 18, 0)

    def series(start: float, step: float) -> list[dict[str, Any]]:
        return [
            {"val": round(start + step * h, 1), "ts": (now - timedelta(hours=23 - h)).isoformat()}
            for h in range(24)
        ]

    vitals = {
        "HR": series(88, 1.5),
        "SBP": series(128, -1.6),
        "DBP": series(74, -0.8),
        "MAP": series(92, -1.0),
        "Temp": series(37.0, 0.08),
        "Resp": series(16, 0.4),
        "O2Sat": series(98, -0.25),
        "FiO2": series(0.21, 0.01),
        "Lactate": series(1.1, 0.12),
        "WBC": series(9.0, 0.4),
    }
    sentence = "Patient more drowsy, skin cool and mottled at the knees, urine output falling. "
    notes = (sentence * 40)[:2000]
    return {"patient_id": "BENCH-LLM-LONG", "vitals": vitals, "notes": notes}


async def prompt_size(server: Server, raw: dict[str, Any]) -> dict[str, Any]:
    patient_ = parse_patient(raw)
    prompt = build_prompt(
        patient_,
        scores=clinical_scores(patient_),
        trends=compute_trends(patient_),
        findings=extract_findings(patient_.notes),
        max_notes_chars=2000,
    )
    body = {
        "model": server.model,
        "messages": [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.narrative},
        ],
        "max_tokens": 1,
    }
    headers = {"Authorization": f"Bearer {server.key}"}
    async with httpx.AsyncClient(timeout=300) as client:
        reply = await client.post(
            f"{server.origin}/v1/chat/completions", json=body, headers=headers
        )
    reply.raise_for_status()
    return {
        "system_chars": len(prompt.system),
        "narrative_chars": len(prompt.narrative),
        "prompt_tokens": reply.json()["usage"]["prompt_tokens"],
    }


async def sequential(server: Server, n: int, max_output_tokens: int) -> dict[str, Any]:
    config = settings(server, GENAI_MAX_OUTPUT_TOKENS=max_output_tokens)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    prompt_tokens: list[int] = []
    completion_tokens: list[int] = []
    async with service(config) as client:
        for i in range(n):
            body = (await client.post("/genai-classify", json=patient(i))).json()
            llm = body["llm"]
            statuses[llm["status"]] += 1
            latencies.append(llm["latency_ms"])
            prompt_tokens.append(llm["prompt_tokens"])
            completion_tokens.append(llm["completion_tokens"])
            say(f"  {i + 1}/{n}: {llm['status']} in {llm['latency_ms']:.0f} ms, "
                f"{llm['prompt_tokens']} + {llm['completion_tokens']} tokens, "
                f"priority {body['priority']}")  # fmt: skip
    return {
        "n": n,
        "max_output_tokens": max_output_tokens,
        "deadline_s": config.deadline_s,
        "statuses": dict(statuses),
        "valid_share": round(statuses["ok"] / n, 3),
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p95": percentile(latencies, 95),
        "prompt_tokens_mean": round(sum(prompt_tokens) / n, 1),
        "completion_tokens_mean": round(sum(completion_tokens) / n, 1),
    }


async def deadline(server: Server) -> dict[str, Any]:
    config = settings(server, GENAI_DEADLINE_S=2, GENAI_MAX_OUTPUT_TOKENS=4000)
    async with service(config) as client:
        started = time.perf_counter()
        body = (await client.post("/genai-classify", json=patient(999))).json()
        answered_s = time.perf_counter() - started
    gave_up = time.perf_counter()
    for _ in range(1200):  # at most a minute
        if not await asyncio.to_thread(server.busy):
            break
        await asyncio.sleep(0.05)
    return {
        "status": body["llm"]["status"],
        "error_kind": body["llm"]["error_kind"],
        "answered_s": round(answered_s, 2),
        "degraded": body["degraded"],
        "priority": body["priority"],
        "server_still_generating_s": round(time.perf_counter() - gave_up, 2),
    }


async def concurrent(server: Server, k: int, max_output_tokens: int) -> dict[str, Any]:
    config = settings(server, GENAI_MAX_OUTPUT_TOKENS=max_output_tokens)
    async with service(config) as client:
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(client.post("/genai-classify", json=patient(500 + i)) for i in range(k))
        )
        wall = time.perf_counter() - started
    statuses = Counter(r.json()["llm"]["status"] for r in replies)
    return {
        "requests": k,
        "wall_s": round(wall, 2),
        "statuses": dict(statuses),
        "http_statuses": dict(Counter(r.status_code for r in replies)),
    }


async def measure(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    say("== prompt size")
    sizes = {
        "guide_patient": await prompt_size(server, guide()),
        "series_24h_10_variables_note_2000_chars": await prompt_size(server, long_series()),
    }
    say(json.dumps(sizes))
    say(f"== {args.n} assessments one after another")
    runs = await sequential(server, args.n, args.max_output_tokens)
    say(json.dumps(runs))
    say("== the deadline (2 s, room for 4,000 tokens)")
    ended = await deadline(server)
    say(json.dumps(ended))
    say(f"== {args.concurrent} at once against one slot")
    together = await concurrent(server, args.concurrent, args.max_output_tokens)
    say(json.dumps(together))
    return {
        "server": "llama.cpp (xllamacpp) SmolLM2-135M-Instruct Q4_1, 1 slot",
        "threads": int(os.environ.get("LLM_TIER_THREADS", "1")),
        "prompt": sizes,
        "sequential": runs,
        "deadline": ended,
        "concurrent": together,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=12, help="assessments one after another")
    parser.add_argument("--concurrent", type=int, default=6, help="assessments at once")
    parser.add_argument("--max-output-tokens", type=int, default=256, help="answer length cap")
    parser.add_argument("--timeout", type=float, default=1800.0, help="bound on the whole run")
    args = parser.parse_args(argv)
    python = os.environ.get("LLM_TIER_PYTHON")
    if not python:
        raise SystemExit("LLM_TIER_PYTHON is not set: run scripts/bench-llm")
    for name in list(os.environ):
        if name.startswith(("AZURE_OPENAI_", "OPENAI_", "GENAI_")):
            del os.environ[name]
    server = Server(python, parallel=1)
    try:
        figures = asyncio.run(asyncio.wait_for(measure(args, server), args.timeout))
    finally:
        server.stop()
    say(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
