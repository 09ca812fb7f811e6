"""ml-service benchmark: /classify latency, /classify-batch throughput, where a batch's time goes.

Over loopback (one keep-alive connection, sequential requests): POST /classify p50/p99 and
POST /classify-batch with 1,000 patients (median ms per batch, patients per second, the
server's own processing_time_ms), and the same patients sent as snapshots (newest value of
each vital, no notes). Then in process, without HTTP, each stage of the batch path
timed on the service's own functions (best of several runs). Floors: a 1,000-patient batch at
5,000 patients/s or more; /classify p50 under 3 ms through the gateway (judged by
scripts/bench-gateway; the direct p50 here is a lower bound of it). A machine-speed reference
(json.loads of the batch body, a fixed pure-Python loop) lets runs of different days be
compared. By default it starts `uvicorn sepsis_ml.app:create_app --factory` on a free port with
a generated token; `--url` (SERVICE_TOKEN from the environment) measures a running service.
The table goes to stderr; the last line on stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import json
import os
import platform
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sepsis_ml.app import GC_FIRST_THRESHOLD
from sepsis_ml.config import MLSettings
from sepsis_ml.features import features_for_windows, window_from_patient
from sepsis_ml.metrics import InferenceStats, ServiceMetrics
from sepsis_ml.mlconfig import ConfigStore
from sepsis_ml.model import SepsisModel
from sepsis_ml.runtime import (
    InferenceRuntime,
    ServiceState,
    assessment,
    encode_json,
    score_batch,
)
from sepsis_shared.body import decode_json
from sepsis_shared.errors import InvalidInput
from sepsis_shared.patient import parse_patients_body

SINGLE_FLOOR_MS = 3.0
BATCH_FLOOR_PER_S = 5000.0
READY_TIMEOUT_S = 90.0
REQUEST_TIMEOUT_S = 60.0
T = TypeVar("T")

NOTES = (
    "GCS 14, on 2 L nasal cannula",
    "Alert and oriented, room air",
    "New confusion overnight, GCS 13",
    "On 4 L nasal cannula, sats stable",
    "Febrile, suspected UTI, cultures sent",
    "Noradrenaline 0.05 mcg/kg/min started",
    "Urine output 20 mL/h",
)
LABS = {  # name: (mean at severity 0, rise to severity 1, sd, high)
    "Lactate": (1.0, 4.0, 0.3, 15.0),
    "WBC": (8.0, 12.0, 1.5, 60.0),
    "Creatinine": (0.9, 1.5, 0.2, 10.0),
    "Platelets": (240.0, -140.0, 30.0, 900.0),
    "Bilirubin_total": (0.7, 2.0, 0.3, 30.0),
    "BUN": (15.0, 25.0, 4.0, 150.0),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201


# ---- synthetic patients ---------------------------------------------------------------------


def synthetic_patients(n: int, *, seed: int, now: datetime) -> list[dict[str, Any]]:
    """`n` ICU patients as clients send them, from stable to septic (severity `s`): 6 hourly
    values per vital, newest first, as lists or (for about 1 in 6) as dated time series; labs
    on about half, a short note on a third, a monitor artefact (SBP 320) now and then."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        s = rng.random()
        trends = {  # name: (now, change per hour back, noise)
            "HR": (75 + 50 * s, -3 * s, 4.0),
            "O2Sat": (98 - 8 * s, 0.5 * s, 1.0),
            "Temp": (36.9 + 2.0 * s, -0.1 * s, 0.2),
            "SBP": (128 - 45 * s, 4 * s, 6.0),
            "MAP": (88 - 28 * s, 3 * s, 4.0),
            "DBP": (70 - 20 * s, 2 * s, 4.0),
            "Resp": (15 + 12 * s, -s, 2.0),
        }
        vitals: dict[str, Any] = {
            name: [round(v0 + dv * h + rng.gauss(0.0, sd), 1) for h in range(6)]
            for name, (v0, dv, sd) in trends.items()
        }
        vitals["O2Sat"] = [min(100.0, v) for v in vitals["O2Sat"]]
        if rng.random() < 0.03:
            vitals["SBP"][rng.randint(1, 5)] = 320.0  # an arterial-line flush
        if rng.random() < 1 / 6:
            newest = now - timedelta(minutes=rng.randint(5, 50))
            vitals = {
                name: [
                    {"val": v, "ts": (newest - timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")}
                    for h, v in enumerate(values)
                ]
                for name, values in vitals.items()
            }
        patient: dict[str, Any] = {
            "patient_id": f"BENCH{i:05d}",
            "vitals": vitals,
            "Age": rng.randint(18, 95),
            "Gender": rng.choice(["female", "male"]),
        }
        if rng.random() < 0.5:
            patient["labs"] = {
                name: round(min(high, max(0.1, rng.gauss(mean + rise * s, sd))), 2)
                for name, (mean, rise, sd, high) in LABS.items()
                if rng.random() < 0.8
            }
        if rng.random() < 1 / 3:
            patient["notes"] = rng.choice(NOTES)
        if rng.random() < 0.3:
            patient["ICULOS"] = rng.randint(1, 200)
        out.append(patient)
    return out


# ---- the service over loopback --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
        conn.request("GET", "/readyz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


@contextmanager
def started_service(token: str) -> Iterator[str]:
    """uvicorn running ml-service on a free loopback port; stopped on exit."""
    port = _free_port()
    env = {**os.environ, "SERVICE_TOKEN": token, "LOG_LEVEL": "WARNING", "LOG_FORMAT": "text"}
    command = [sys.executable, "-m", "uvicorn", "sepsis_ml.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen([*command, "--no-access-log"], env=env)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _ready(port):
            if process.poll() is not None:
                raise RuntimeError(f"ml-service exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ml-service not ready within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class Client:
    """One keep-alive HTTP/1.1 connection (stdlib, so the client adds little of its own)."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port or 80, timeout=REQUEST_TIMEOUT_S
        )
        self.headers = {"X-Service-Token": token, "Content-Type": "application/json"}

    def post(self, path: str, body: bytes) -> tuple[float, dict[str, Any]]:
        """Seconds to the whole answer, and the answer; raises unless 200."""
        start = time.perf_counter()
        self.conn.request("POST", path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        content = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}: {content[:300]!r}")
        answer: dict[str, Any] = json.loads(content)
        return elapsed, answer


def _check_batch(answer: dict[str, Any], n: int) -> None:
    if answer["count"] != n or answer["errors"]:
        errors = [r["error"] for r in answer["results"] if "error" in r][:3]
        raise RuntimeError(f"{answer['errors']} of {n} patients not assessed, e.g. {errors}")


def service_figures(
    client: Client,
    patients: list[dict[str, Any]],
    batch_body: bytes,
    *,
    requests: int,
    batches: int,
) -> dict[str, float]:
    """/classify p50/p99 (sequential) and the median /classify-batch, in ms."""
    bodies = [json.dumps(p).encode() for p in patients[:200]]
    for body in bodies:
        client.post("/classify", body)
    single: list[float] = []
    single_server: list[float] = []
    for i in range(requests):
        elapsed, answer = client.post("/classify", bodies[i % len(bodies)])
        single.append(elapsed * 1e3)
        single_server.append(float(answer["processing_time_ms"]))
    batch_ms, batch_server_ms = batch_figures(client, batch_body, len(patients), batches)
    single.sort()
    return {
        "single_p50_ms": statistics.median(single),
        "single_p99_ms": single[min(len(single) - 1, round(0.99 * (len(single) - 1)))],
        "single_server_p50_ms": statistics.median(single_server),
        "batch_ms": batch_ms,
        "batch_server_ms": batch_server_ms,
    }


def batch_figures(client: Client, body: bytes, n: int, batches: int) -> tuple[float, float]:
    """The median /classify-batch of `n` patients over `batches` calls after two warm-up
    calls: (ms to the whole answer, the server's own processing_time_ms)."""
    batch: list[float] = []
    batch_server: list[float] = []
    for i in range(batches + 2):
        elapsed, answer = client.post("/classify-batch", body)
        _check_batch(answer, n)
        if i >= 2:
            batch.append(elapsed * 1e3)
            batch_server.append(float(answer["processing_time_ms"]))
    return statistics.median(batch), statistics.median(batch_server)


def snapshots(patients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same patients as a single snapshot each: the newest value of every vital, no
    notes (the simplest request a client sends)."""
    out: list[dict[str, Any]] = []
    for patient in patients:
        snapshot = {k: v for k, v in patient.items() if k != "notes"}
        snapshot["vitals"] = {
            name: v[0]["val"] if isinstance(v[0], dict) else v[0]
            for name, v in patient["vitals"].items()
        }
        out.append(snapshot)
    return out


# ---- in process -----------------------------------------------------------------------------


def _best_ms(fn: Callable[[], T], runs: int) -> tuple[float, T]:
    """The fastest of `runs` calls (ms), and what the last call returned."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        best = min(best, (time.perf_counter() - start) * 1e3)
    return best, out


def stage_figures(state: ServiceState, body: bytes, *, runs: int) -> dict[str, float]:
    """Each stage of the batch path (`score_batch` -> `assess_patients`) on the service's own
    functions, each fed the previous stage's output (ms, best of `runs`), and `score_batch`
    whole; raises unless every patient is assessed."""
    loaded = state.configs.current
    answer = json.loads(score_batch(state, body, request_id=None, started=time.perf_counter()))
    _check_batch(answer, answer["count"])
    ms: dict[str, float] = {}
    ms["decode_parse_intake"], items = _best_ms(
        lambda: parse_patients_body(
            body,
            max_items=state.settings.max_batch,
            decode=decode_json,
            limits=loaded.config.inputs,
        ),
        runs,
    )
    patients = [p for p in items if not isinstance(p, InvalidInput)]
    ms["windows_features"], features = _best_ms(
        lambda: features_for_windows([window_from_patient(p) for p in patients]), runs
    )
    ms["model"], probabilities = _best_ms(lambda: state.runtime.predict(features).tolist(), runs)
    ms["training_range_check"], outside = _best_ms(
        lambda: state.model.input_ranges.outside(features), runs
    )
    ms["assessment"], results = _best_ms(
        lambda: [
            assessment(state, loaded, p, q, o, None)
            for p, q, o in zip(patients, probabilities, outside, strict=True)
        ],
        runs,
    )
    ms["encode_json"], _ = _best_ms(lambda: encode_json({"results": results}), runs)
    ms["score_batch_whole"], _ = _best_ms(
        lambda: score_batch(state, body, request_id=None, started=time.perf_counter()), runs
    )
    return ms


@contextmanager
def in_process_state() -> Iterator[ServiceState]:
    """The service's state as its lifespan builds it, with the same collector settings."""
    settings = MLSettings(SERVICE_TOKEN="bench-in-process-token-0123456789")
    model = SepsisModel.load(settings.model_dir, threads=1)
    executor = ThreadPoolExecutor(max_workers=1)
    # As the lifespan does: without it the collector's runs, not the stages, would be timed.
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_FIRST_THRESHOLD, 50, 100)
    try:
        yield ServiceState(
            settings=settings,
            model=model,
            configs=ConfigStore.open(settings.config_path),
            runtime=InferenceRuntime(
                model=model, executor=executor, threads=1, stats=InferenceStats()
            ),
            metrics=ServiceMetrics(),
        )
    finally:
        gc.set_threshold(*thresholds)
        executor.shutdown()


def speed_reference(body: bytes) -> dict[str, float]:
    """Work that does not change with the code, to compare runs of different days (ms)."""
    loads_ms, _ = _best_ms(lambda: json.loads(body), 5)
    loop_ms, _ = _best_ms(lambda: sum(i * i for i in range(1_000_000)), 5)
    return {"json_loads_batch_ms": loads_ms, "python_loop_1e6_ms": loop_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="measure this running ml-service (SERVICE_TOKEN from env)")
    parser.add_argument("--patients", type=int, default=1000, help="batch size (default 1000)")
    parser.add_argument("--requests", type=int, default=2000, help="/classify calls (default 2000)")
    parser.add_argument(
        "--batches", type=int, default=30, help="/classify-batch calls (default 30)"
    )
    parser.add_argument("--runs", type=int, default=7, help="in-process runs per stage (default 7)")
    parser.add_argument("--seed", type=int, default=2019)
    args = parser.parse_args(argv)
    if not (1 <= args.patients <= 100_000 and 1 <= args.requests <= 100_000):
        parser.error("--patients and --requests must be between 1 and 100000")
    if not (1 <= args.batches <= 1000 and 1 <= args.runs <= 100):
        parser.error("--batches must be between 1 and 1000, --runs between 1 and 100")

    patients = synthetic_patients(args.patients, seed=args.seed, now=datetime.now(UTC))
    body = json.dumps({"patients": patients}).encode()
    snapshot_body = json.dumps({"patients": snapshots(patients)}).encode()
    reference = speed_reference(body)
    service_at: contextlib.AbstractContextManager[str]
    if args.url:
        token = os.environ.get("SERVICE_TOKEN", "")
        service_at = contextlib.nullcontext(args.url)
    else:
        token = secrets.token_urlsafe(24)
        service_at = started_service(token)
    with service_at as url:
        log(f"service at {url}: {args.requests} x /classify, {args.batches} x /classify-batch")
        client = Client(url, token)
        try:
            http_ms = service_figures(
                client, patients, body, requests=args.requests, batches=args.batches
            )
            snapshot_ms, _ = batch_figures(
                client, snapshot_body, args.patients, max(1, args.batches // 3)
            )
        finally:
            client.conn.close()
    with in_process_state() as state:
        log(f"in process: {args.runs} runs per stage")
        stages = stage_figures(state, body, runs=args.runs)
        model = state.model_info

    whole = stages.pop("score_batch_whole")
    per_s = args.patients / http_ms["batch_ms"] * 1e3
    figures: dict[str, Any] = {
        "benchmark": "ml-service",
        "model": f"{model['name']} {model['version']}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "patients": args.patients,
        **{k: round(v, 3) for k, v in http_ms.items()},
        "single_floor_ms": SINGLE_FLOOR_MS,
        "single_p50_meets_floor": http_ms["single_p50_ms"] < SINGLE_FLOOR_MS,
        "batch_patients_per_s": round(per_s),
        "batch_floor_patients_per_s": BATCH_FLOOR_PER_S,
        "batch_meets_floor": per_s >= BATCH_FLOOR_PER_S,
        "snapshot_batch_ms": round(snapshot_ms, 3),
        "snapshot_batch_patients_per_s": round(args.patients / snapshot_ms * 1e3),
        "snapshot_batch_meets_floor": args.patients / snapshot_ms * 1e3 >= BATCH_FLOOR_PER_S,
        "stages_ms": {k: round(v, 2) for k, v in stages.items()},
        "stages_sum_ms": round(sum(stages.values()), 2),
        "score_batch_in_process_ms": round(whole, 2),
        "dominant_stage": max(stages, key=lambda k: stages[k]),
        "reference_ms": {k: round(v, 2) for k, v in reference.items()},
    }

    def verdict(met: bool) -> str:
        return "MEETS the floor" if met else "BELOW the floor"

    f = figures
    rows = [
        ("/classify p50 / p99 (direct)", f"{f['single_p50_ms']:.3f} / {f['single_p99_ms']:.3f} ms"),
        ("/classify server p50", f"{f['single_server_p50_ms']:.3f} ms"),
        (
            f"  floor < {SINGLE_FLOOR_MS:g} ms (through the gateway)",
            f"direct {verdict(f['single_p50_meets_floor'])}; gateway: scripts/bench-gateway",
        ),
        (
            f"/classify-batch, {args.patients} patients",
            f"{f['batch_ms']:.1f} ms (server {f['batch_server_ms']:.1f} ms), "
            f"{f['batch_patients_per_s']} patients/s",
        ),
        (f"  floor >= {BATCH_FLOOR_PER_S:.0f} patients/s", verdict(f["batch_meets_floor"])),
        (
            "/classify-batch, the same as snapshots",
            f"{f['snapshot_batch_ms']:.1f} ms, {f['snapshot_batch_patients_per_s']} patients/s",
        ),
        (
            f"  floor >= {BATCH_FLOOR_PER_S:.0f} patients/s",
            verdict(f["snapshot_batch_meets_floor"]),
        ),
    ]
    rows += [(f"in process: {stage}", f"{v:.2f} ms") for stage, v in f["stages_ms"].items()]
    rows += [
        ("in process: sum of the stages", f"{f['stages_sum_ms']:.2f} ms"),
        ("in process: score_batch whole", f"{f['score_batch_in_process_ms']:.2f} ms"),
        ("dominant stage", f["dominant_stage"]),
        ("speed reference: json.loads of the batch", f"{reference['json_loads_batch_ms']:.2f} ms"),
        ("speed reference: pure-Python loop (1e6)", f"{reference['python_loop_1e6_ms']:.2f} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        log(f"{name:<{width}}  {value}")
    print(json.dumps(figures))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
