"""ml-service benchmark: raw onnxruntime against the service's /classify and /classify-batch.

One run measures, on the same synthetic patients (seeded; about 6 hourly points per vital and
some labs, as the original system's clients send them):

1. raw onnxruntime: one `session.run` on 1 row and on a 1,000-row batch (intra-op threads =
   cores, inter-op 1; the faster of onnxruntime's default spinning threads and the service's
   non-spinning ones), and `json.loads` of the 1,000-patient request body;
2. the service over loopback: POST /classify latency p50/p99 (one keep-alive connection,
   sequential requests) and POST /classify-batch with 1,000 patients (rows per second),

and prints each figure with its ratio to raw onnxruntime. The batch ratio is taken batch by
batch: each of the service's batches against the baseline timed right before it (the faster of
three back-to-back runs of each part, so warm, and at the same moment of the host's load, whose
speed drifts within seconds on a shared machine; onnxruntime without spinning threads there,
which would take a core from the service measured next), and the median of those ratios is
judged. The ratio of the median batch to the baseline timed in a tight loop beforehand is
printed too. Targets: /classify p50 under 3 ms; a 1,000-patient batch within 3x (raw
onnxruntime for the 1,000 rows + JSON parsing of the body). By default it starts
`uvicorn sepsis_ml.app:create_app --factory` itself on a free port with a generated token and
stops it at the end; `--url` (with SERVICE_TOKEN in the environment) measures a service already
running. Loops are bounded; the last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import itertools
import json
import math
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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import onnxruntime as ort

from sepsis_ml.batch_blend import batch_blend, choose_drivers
from sepsis_ml.batch_inputs import batch_inputs
from sepsis_ml.batch_scores import batch_scores
from sepsis_ml.config import MLSettings
from sepsis_ml.features import features_for_windows, features_from_arrays, window_from_patient
from sepsis_ml.metrics import InferenceStats, ServiceMetrics
from sepsis_ml.mlconfig import ConfigStore
from sepsis_ml.model import MODEL_FILE, SepsisModel, packaged_artifacts_dir, session_options
from sepsis_ml.runtime import (
    InferenceRuntime,
    ServiceState,
    assessment,
    decode_json,
    encode_json,
    score_batch,
)
from sepsis_shared.errors import InvalidInput
from sepsis_shared.patient import parse_patient, parse_patients_body
from sepsis_shared.scores import clinical_scores

BASELINE_RUNS = 3
SINGLE_TARGET_MS = 3.0
BATCH_TARGET_RATIO = 3.0
READY_TIMEOUT_S = 90.0
REQUEST_TIMEOUT_S = 60.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201


# ---- synthetic patients ---------------------------------------------------------------------


def _series(
    rng: random.Random, start: float, drift: float, noise: float, lo: float, hi: float
) -> list[float]:
    """Six hourly values, newest first: `start` now, `start + drift * h` h hours ago."""
    values = [start + drift * h + rng.gauss(0.0, noise) for h in range(6)]
    return [round(min(hi, max(lo, v)), 1) for v in values]


def synthetic_patients(n: int, *, seed: int) -> list[dict[str, Any]]:
    """`n` plausible ICU patients in the structured form, from stable to septic."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        s = rng.random()  # severity 0 (stable) .. 1 (septic shock)
        vitals: dict[str, Any] = {
            "HR": _series(rng, 75 + 50 * s, -3 * s, 4, 30, 220),
            "O2Sat": _series(rng, 98 - 8 * s, 0.5 * s, 1, 60, 100),
            "Temp": _series(rng, 36.9 + 2.0 * s, -0.1 * s, 0.2, 33, 42),
            "SBP": _series(rng, 128 - 45 * s, 4 * s, 6, 50, 220),
            "MAP": _series(rng, 88 - 28 * s, 3 * s, 4, 35, 150),
            "DBP": _series(rng, 70 - 20 * s, 2 * s, 4, 25, 120),
            "Resp": _series(rng, 15 + 12 * s, -1 * s, 2, 6, 50),
        }
        labs = {
            "Lactate": (0.6, 1.0 + 4.0 * s, 0.3, 15.0),
            "WBC": (0.7, 8 + 12 * s, 1.5, 60.0),
            "Creatinine": (0.7, 0.9 + 1.5 * s, 0.2, 10.0),
            "Platelets": (0.5, 240 - 140 * s, 30, 900.0),
            "Bilirubin_total": (0.3, 0.7 + 2.0 * s, 0.3, 30.0),
            "BUN": (0.6, 15 + 25 * s, 4, 150.0),
            "Glucose": (0.6, 120 + 40 * s, 20, 600.0),
        }
        for name, (share, mean, sd, high) in labs.items():
            if rng.random() < share:
                vitals[name] = round(min(high, max(0.1, rng.gauss(mean, sd))), 2)
        patient: dict[str, Any] = {
            "patient_id": f"BENCH{i:05d}",
            "vitals": vitals,
            "Age": rng.randint(18, 95),
            "Gender": rng.choice(["female", "male"]),
        }
        if rng.random() < 0.3:
            patient["ICULOS"] = rng.randint(1, 200)
        out.append(patient)
    return out


# ---- timing helpers -------------------------------------------------------------------------


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _mid(values: list[float]) -> float:
    """The median, infinite for no values."""
    return statistics.median(values) if values else math.inf


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def raw_figures(
    model_dir: Path,
    patients: list[dict[str, Any]],
    body: bytes,
    *,
    threads: int,
    single_runs: int,
    batch_runs: int,
) -> tuple[dict[str, float], Callable[[], tuple[float, float]]]:
    """Raw onnxruntime on the patients' feature rows, and json.loads of the batch body; and a
    function that times one more of each (to interleave with the service's batches)."""
    features = features_for_windows([window_from_patient(parse_patient(p)) for p in patients])
    # onnxruntime's own defaults (idle threads spin, waiting for the next call), and the
    # service's settings (no spinning); the faster of the two is the raw figure
    spinning = ort.SessionOptions()
    spinning.intra_op_num_threads = threads
    spinning.inter_op_num_threads = 1
    spinning.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sessions = [
        ort.InferenceSession(
            str(model_dir / MODEL_FILE), sess_options=options, providers=["CPUExecutionProvider"]
        )
        for options in (spinning, session_options(threads))
    ]
    name = sessions[0].get_inputs()[0].name
    outputs = [o.name for o in sessions[0].get_outputs()]
    # The probabilities only, as the service asks for them.
    wanted = ["probabilities" if "probabilities" in outputs else outputs[-1]]
    one = np.ascontiguousarray(features[:1])
    rows = np.ascontiguousarray(features)
    single: list[float] = []
    batch: list[float] = []
    for session in sessions:
        for _ in range(50):
            session.run(wanted, {name: one})
        session.run(wanted, {name: rows})
        on_one = functools.partial(session.run, wanted, {name: one})
        on_rows = functools.partial(session.run, wanted, {name: rows})
        single = min(single, _timed(on_one, single_runs), key=_mid)
        batch = min(batch, _timed(on_rows, batch_runs), key=_mid)
    parse = _timed(lambda: json.loads(body), batch_runs)
    quiet = sessions[1]

    def baseline() -> tuple[float, float]:
        """The (raw batch, json.loads) timings now, in seconds: the faster of BASELINE_RUNS
        back-to-back runs of each. Without spinning: a spinning thread of this process would
        take a core from the service measured next."""
        run_s = min(_timed(lambda: quiet.run(wanted, {name: rows}), BASELINE_RUNS))
        parse_s = min(_timed(lambda: json.loads(body), BASELINE_RUNS))
        return run_s, parse_s

    figures = {
        "raw_single_row_ms": statistics.median(single) * 1e3,
        "raw_batch_ms": statistics.median(batch) * 1e3,
        "raw_batch_us_per_row": statistics.median(batch) * 1e6 / len(patients),
        "json_parse_batch_ms": statistics.median(parse) * 1e3,
    }
    return figures, baseline


@contextmanager
def _in_process(model: SepsisModel) -> Iterator[ServiceState]:
    """The service's state as its lifespan builds it (one pool thread), without HTTP."""
    threads = ThreadPoolExecutor(max_workers=1)
    try:
        yield ServiceState(
            settings=MLSettings(SERVICE_TOKEN="bench"),
            model=model,
            configs=ConfigStore.open(),
            runtime=InferenceRuntime(
                model=model, executor=threads, threads=1, stats=InferenceStats()
            ),
            metrics=ServiceMetrics(),
        )
    finally:
        threads.shutdown()


def _keep_best(best: dict[str, float], marks: list[tuple[str, float]]) -> None:
    """Each stage's time between consecutive marks (ms), kept when it beats the best so far."""
    for (_, before), (stage, after) in itertools.pairwise(marks):
        ms = (after - before) * 1e3
        best[stage] = min(best.get(stage, ms), ms)


def _score_batch_ms(state: ServiceState, body: bytes, *, runs: int) -> list[float]:
    """`score_batch` whole, body bytes to response bytes, `runs` times (ms each)."""
    whole: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        score_batch(state, body, request_id=None, started=start)
        whole.append((time.perf_counter() - start) * 1e3)
    return whole


def stage_figures(model: SepsisModel, body: bytes, *, runs: int) -> dict[str, float]:
    """Where a batch's time goes: each stage of the service's batch path, in process (ms, best
    of `runs`), then the whole pipeline (`score_batch`, body bytes to response bytes) without
    HTTP. The stages are timed one by one from the same inputs; `assembly` (each patient's
    drivers and JSON, and the final join) is what `score_batch` takes beyond the others."""
    best: dict[str, float] = {}
    with _in_process(model) as state:
        loaded = state.configs.current
        threshold = state.alert_threshold(loaded)
        for _ in range(runs):
            marks = [("start", time.perf_counter())]
            parsed = parse_patients_body(
                body, max_items=state.settings.max_batch, decode=decode_json
            )
            patients = [p for p in parsed if not isinstance(p, InvalidInput)]
            marks.append(("decode_parse", time.perf_counter()))
            inputs = batch_inputs(patients)
            marks.append(("layout", time.perf_counter()))
            features = features_from_arrays(
                inputs.windows, inputs.age, inputs.gender, inputs.iculos
            )
            marks.append(("features", time.perf_counter()))
            probabilities = model.predict(features)
            marks.append(("model", time.perf_counter()))
            scores = batch_scores(inputs.latest, inputs.urine_points)
            result = batch_blend(
                probability=probabilities,
                totals=scores.totals,
                latest=inputs.latest,
                plan=loaded.plan,
                alert_threshold=threshold,
            )
            choose_drivers(
                result=result,
                totals=scores.totals,
                trend_change=inputs.trend_change,
                trend_span=inputs.trend_span,
                plan=loaded.plan,
            )
            marks.append(("scores_blend", time.perf_counter()))
            _keep_best(best, marks)
        whole = _score_batch_ms(state, body, runs=runs)
    best["assembly"] = max(0.0, min(whole) - sum(best.values()))
    best["score_batch_min"] = min(whole)
    best["score_batch_median"] = statistics.median(whole)
    return best


def single_stage_figures(model: SepsisModel, body: bytes, *, runs: int) -> dict[str, float]:
    """Where one patient's time goes: the per-patient functions /classify (and a batch of
    fewer than `VECTORISED_FROM` patients) runs, in process (ms, best of `runs`;
    `clinical_scores_alone` is also inside `assessment_with_scores`), and `score_batch` whole."""
    best: dict[str, float] = {}
    with _in_process(model) as state:
        loaded = state.configs.current
        for _ in range(runs):
            marks = [("start", time.perf_counter())]
            raw = decode_json(body)
            marks.append(("decode_json", time.perf_counter()))
            assert isinstance(raw, dict)
            patients = [parse_patient(p) for p in raw["patients"]]
            marks.append(("parse_patient", time.perf_counter()))
            windows = [window_from_patient(p) for p in patients]
            marks.append(("window_from_patient", time.perf_counter()))
            features = features_for_windows(windows)
            marks.append(("features_for_windows", time.perf_counter()))
            probabilities = model.predict(features).tolist()
            marks.append(("model_predict", time.perf_counter()))
            for p in patients:
                clinical_scores(p)
            marks.append(("clinical_scores_alone", time.perf_counter()))
            results = [
                assessment(state, loaded, p, q, None)
                for p, q in zip(patients, probabilities, strict=True)
            ]
            marks.append(("assessment_with_scores", time.perf_counter()))
            encode_json({"results": results})
            marks.append(("encode_json", time.perf_counter()))
            _keep_best(best, marks)
        whole = _score_batch_ms(state, body, runs=runs)
    best["score_batch_min"] = min(whole)
    best["score_batch_median"] = statistics.median(whole)
    return best


# ---- the service ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(host: str, port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(host, port, timeout=2.0)
        conn.request("GET", "/readyz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


@contextmanager
def started_service(token: str, threads: int | None) -> Iterator[str]:
    """uvicorn running ml-service on a free loopback port; stopped on exit."""
    port = _free_port()
    env = {**os.environ, "SERVICE_TOKEN": token, "LOG_LEVEL": "WARNING", "LOG_FORMAT": "text"}
    if threads is not None:
        env["ML_INFERENCE_THREADS"] = str(threads)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "sepsis_ml.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    process = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _ready("127.0.0.1", port):
            if process.poll() is not None:
                raise RuntimeError(f"ml-service exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ml-service not ready within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        log(f"service: started at http://127.0.0.1:{port}")
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

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def service_figures(
    url: str,
    token: str,
    patients: list[dict[str, Any]],
    batch_body: bytes,
    *,
    single_runs: int,
    batch_runs: int,
    baseline: Callable[[], tuple[float, float]],
) -> dict[str, Any]:
    """/classify latency over keep-alive loopback and /classify-batch rows per second, each
    batch right after one raw baseline (`baseline`)."""
    client = Client(url, token)
    try:
        bodies = [json.dumps(p).encode() for p in patients[:200]]
        for body in bodies[:100]:
            status, _ = client.call("POST", "/classify", body)
            if status != 200:
                raise RuntimeError(f"/classify answered {status}")
        latencies: list[float] = []
        server_ms: list[float] = []
        for i in range(single_runs):
            start = time.perf_counter()
            status, content = client.call("POST", "/classify", bodies[i % len(bodies)])
            latencies.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"/classify answered {status}")
            server_ms.append(float(json.loads(content)["processing_time_ms"]))

        for _ in range(2):
            client.call("POST", "/classify-batch", batch_body)
        batch_times: list[float] = []
        batch_server_ms: list[float] = []
        raw_batch: list[float] = []
        raw_parse: list[float] = []
        for _ in range(batch_runs):
            # the baseline right before each batch: a change in the machine's load falls on both
            run_s, parse_s = baseline()
            raw_batch.append(run_s)
            raw_parse.append(parse_s)
            start = time.perf_counter()
            status, content = client.call("POST", "/classify-batch", batch_body)
            batch_times.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"/classify-batch answered {status}")
            answer = json.loads(content)
            if answer["count"] != len(patients) or answer["errors"]:
                raise RuntimeError("/classify-batch did not assess every patient")
            batch_server_ms.append(float(answer["processing_time_ms"]))
        status, content = client.call("GET", "/performance")
        performance = json.loads(content) if status == 200 else {}
    finally:
        client.close()
    batch_s = statistics.median(batch_times)
    paired = [b / (r + p) for b, r, p in zip(batch_times, raw_batch, raw_parse, strict=True)]
    return {
        "classify_p50_ms": _quantile(latencies, 0.50) * 1e3,
        "classify_p99_ms": _quantile(latencies, 0.99) * 1e3,
        "classify_mean_ms": statistics.fmean(latencies) * 1e3,
        "classify_server_p50_ms": statistics.median(server_ms),
        "batch_ms": batch_s * 1e3,
        "batch_server_ms": statistics.median(batch_server_ms),
        "batch_rows_per_s": len(patients) / batch_s,
        "interleaved_raw_batch_ms": statistics.median(raw_batch) * 1e3,
        "interleaved_json_parse_ms": statistics.median(raw_parse) * 1e3,
        "batch_paired_ratio": statistics.median(paired),
        "inference_threads": performance.get("inference_threads"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="measure this running ml-service (SERVICE_TOKEN from env)")
    parser.add_argument("--model-dir", type=Path, help="artefacts for the raw figures")
    parser.add_argument("--patients", type=int, default=1000, help="batch size (default 1000)")
    parser.add_argument("--requests", type=int, default=2000, help="/classify calls (default 2000)")
    parser.add_argument(
        "--batches", type=int, default=30, help="/classify-batch calls (default 30)"
    )
    parser.add_argument("--threads", type=int, help="ML_INFERENCE_THREADS of the started service")
    parser.add_argument("--seed", type=int, default=2019)
    args = parser.parse_args(argv)
    if not (
        1 <= args.patients <= 100_000
        and 1 <= args.requests <= 100_000
        and 1 <= args.batches <= 1000
    ):
        parser.error("patients, requests and batches must be positive and bounded")

    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    threads = args.threads or cores
    model_dir = args.model_dir or packaged_artifacts_dir()
    # as the service loads it
    model = SepsisModel.load(model_dir, threads=1, large_threads=threads)
    patients = synthetic_patients(args.patients, seed=args.seed)
    batch_body = json.dumps({"patients": patients}).encode()

    features = len(model.feature_names)
    log(f"raw onnxruntime: {model.name} {model.version}, {features} features, {threads} threads")
    raw, baseline = raw_figures(
        model_dir, patients, batch_body, threads=threads, single_runs=2000, batch_runs=30
    )
    stages = {stage: round(ms, 2) for stage, ms in stage_figures(model, batch_body, runs=5).items()}
    one_body = json.dumps({"patients": patients[:1]}).encode()
    single_stages = {
        stage: round(ms * 1e3, 1)
        for stage, ms in single_stage_figures(model, one_body, runs=300).items()
    }
    service_at: contextlib.AbstractContextManager[str]
    if args.url:
        token = os.environ.get("SERVICE_TOKEN", "")
        log(f"service: {args.url}")
        service_at = contextlib.nullcontext(args.url)
    else:
        token = secrets.token_urlsafe(24)
        service_at = started_service(token, args.threads)
    with service_at as url:
        service = service_figures(
            url,
            token,
            patients,
            batch_body,
            single_runs=args.requests,
            batch_runs=args.batches,
            baseline=baseline,
        )

    tight_ms = raw["raw_batch_ms"] + raw["json_parse_batch_ms"]
    paired = service["batch_paired_ratio"]
    figures: dict[str, Any] = {
        "benchmark": "ml-service",
        "model": f"{model.name} {model.version}",
        "machine": f"{platform.machine()}, {cores} cores, Python {platform.python_version()}",
        "onnxruntime": ort.__version__,
        "patients": args.patients,
        "requests": args.requests,
        "raw_single_row_ms": round(raw["raw_single_row_ms"], 4),
        "raw_batch_ms": round(raw["raw_batch_ms"], 3),
        "raw_batch_us_per_row": round(raw["raw_batch_us_per_row"], 3),
        "json_parse_batch_ms": round(raw["json_parse_batch_ms"], 3),
        "classify_p50_ms": round(service["classify_p50_ms"], 3),
        "classify_p99_ms": round(service["classify_p99_ms"], 3),
        "classify_mean_ms": round(service["classify_mean_ms"], 3),
        "classify_server_p50_ms": round(service["classify_server_p50_ms"], 3),
        "classify_p50_vs_raw_single": round(
            service["classify_p50_ms"] / raw["raw_single_row_ms"], 1
        ),
        "classify_p50_target_ms": SINGLE_TARGET_MS,
        "classify_p50_meets_target": service["classify_p50_ms"] < SINGLE_TARGET_MS,
        "batch_ms": round(service["batch_ms"], 2),
        "batch_server_ms": round(service["batch_server_ms"], 2),
        "batch_rows_per_s": round(service["batch_rows_per_s"], 1),
        "raw_batch_rows_per_s": round(1e3 * args.patients / raw["raw_batch_ms"], 1),
        "batch_vs_raw_onnx": round(service["batch_ms"] / raw["raw_batch_ms"], 2),
        "batch_vs_raw_onnx_plus_json": round(paired, 2),
        "batch_vs_tight_loop_baseline": round(service["batch_ms"] / tight_ms, 2),
        "interleaved_raw_batch_ms": round(service["interleaved_raw_batch_ms"], 3),
        "interleaved_json_parse_ms": round(service["interleaved_json_parse_ms"], 3),
        "batch_target_ratio": BATCH_TARGET_RATIO,
        "batch_meets_target": paired <= BATCH_TARGET_RATIO,
        "inference_threads": service["inference_threads"],
        "batch_stages_ms": stages,
        "single_stages_us": single_stages,
    }
    f = figures
    n = args.patients
    rows = [
        ("raw onnxruntime, 1 row", f"{f['raw_single_row_ms']:.4f} ms"),
        (
            f"raw onnxruntime, {n} rows",
            f"{f['raw_batch_ms']:.3f} ms ({f['raw_batch_us_per_row']:.2f} us/row)",
        ),
        (f"json.loads of the {n}-patient body", f"{f['json_parse_batch_ms']:.3f} ms"),
        (
            "  the same two, between the batches",
            f"{f['interleaved_raw_batch_ms']:.3f} + {f['interleaved_json_parse_ms']:.3f} ms",
        ),
        (
            "/classify p50 / p99 (loopback)",
            f"{f['classify_p50_ms']:.3f} / {f['classify_p99_ms']:.3f} ms "
            f"(x{f['classify_p50_vs_raw_single']} raw 1 row; target < {SINGLE_TARGET_MS} ms)",
        ),
        ("/classify server-side p50", f"{f['classify_server_p50_ms']:.3f} ms"),
        (
            f"/classify-batch {n} patients",
            f"{f['batch_ms']:.2f} ms, {f['batch_rows_per_s']:.0f} rows/s "
            f"(server {f['batch_server_ms']:.2f} ms)",
        ),
        ("batch vs raw onnxruntime", f"x{f['batch_vs_raw_onnx']}"),
        (
            "batch vs raw onnxruntime + JSON parsing",
            f"x{f['batch_vs_raw_onnx_plus_json']}, median of each batch against the baseline "
            f"right before it (target <= {BATCH_TARGET_RATIO})",
        ),
        (
            "  median batch vs the tight-loop baseline",
            f"x{f['batch_vs_tight_loop_baseline']} of {tight_ms:.2f} ms",
        ),
    ]
    rows += [(f"  batch in process: {stage}", f"{ms:.2f} ms") for stage, ms in stages.items()]
    rows += [
        (f"  1 patient in process: {stage}", f"{us:.1f} us") for stage, us in single_stages.items()
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")  # noqa: T201
    print(json.dumps(figures))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
