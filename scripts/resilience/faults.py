"""Part 3: faults under a steady background load of /classify and /genai-classify (and their
batches): ml-service and genai-service killed and restarted, Redis stopped and restarted, the
LLM answering 500, 429 with Retry-After, invalid JSON, or nothing until the deadline.

For each fault: when /health or /genai-health said so (time to detect), when service was back
(time to recover), whether any request outlived its deadline, whether any failure came back as
a 200 without saying so (`degraded`), and whether every batch item was answered or marked."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from scripts.resilience.common import (
    CLASSIFY_BODY,
    Section,
    genai_patient,
    ms,
    percentile,
    say,
    secs,
    wait_until,
)
from scripts.resilience.stackup import GENAI, ML, ReportStack

GENAI_OK = frozenset({"ok", "cached"})


@dataclass(frozen=True)
class Record:
    """One request of the background load."""

    started: float
    """Seconds since the load began."""
    route: str
    status: int | None
    seconds: float
    outcome: str
    """ok, degraded (a 200 that says the LLM answer is missing), error (an honest error
    envelope), silent (a failure passed off as a 200), malformed, transport."""
    note: str = ""


def judge_answer(route: str, status: int, body: Any, sent: int) -> tuple[str, str]:
    """Outcome of one answer of the load (see `Record.outcome`)."""
    if status != 200:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("code"):
            return "error", str(error["code"])
        return "malformed", f"{status} without an error envelope"
    if not isinstance(body, dict):
        return "malformed", "200 that is not a JSON object"
    if route == "/classify":
        return (
            ("ok", "")
            if isinstance(body.get("risk_score"), int | float)
            else ("silent", "200 without a risk_score")
        )
    if route == "/genai-classify":
        return _judge_genai(body)
    results = body.get("results")
    if not isinstance(results, list) or len(results) != sent:
        return "silent", f"batch of {sent} answered {len(results or [])} items"
    outcomes: Counter[str] = Counter()
    codes: list[str] = []
    for item in results:
        if not isinstance(item, dict):
            return "silent", "a batch item is not an object"
        if route == "/classify-batch":
            error = item.get("error")
            if isinstance(error, dict):
                # The load's batches carry one invalid patient on purpose: its entry is right.
                if error.get("code") == "invalid_input":
                    outcomes["ok"] += 1
                else:
                    outcomes["error"] += 1
                    codes.append(str(error.get("code")))
            elif isinstance(item.get("risk_score"), int | float):
                outcomes["ok"] += 1
            else:
                return "silent", "a batch item neither answered nor marked failed"
        elif item.get("ok") is True and isinstance(item.get("assessment"), dict):
            outcomes[_judge_genai(item["assessment"])[0]] += 1
        elif item.get("ok") is False and isinstance(item.get("error"), dict):
            outcomes["error"] += 1
            codes.append(str(item["error"].get("code")))
        else:
            return "silent", "a batch item neither answered nor marked failed"
    if outcomes["silent"]:
        return "silent", f"{outcomes['silent']} of {sent} items failed without saying so"
    if outcomes["error"]:
        return "error", codes[0]
    if outcomes["degraded"]:
        return "degraded", f"{outcomes['degraded']} of {sent} items degraded"
    return "ok", ""


def _judge_genai(body: dict[str, Any]) -> tuple[str, str]:
    llm = body.get("llm")
    status = str(llm.get("status")) if isinstance(llm, dict) else "missing"
    if status in GENAI_OK:
        return "ok", ""
    if body.get("degraded") is True:
        return "degraded", status
    return "silent", f"llm.status {status} with degraded={body.get('degraded')}"


class Load:
    """Closed-loop workers, each pacing its own route, recording every request."""

    def __init__(self, rs: ReportStack, *, deadlines: dict[str, float]) -> None:
        self._rs = rs
        self._deadlines = deadlines
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._seq = 0
        self.records: list[Record] = []
        self.t0 = time.monotonic()
        plan: list[tuple[str, float]] = [
            ("/classify", 0.02), ("/classify", 0.02), ("/genai-classify", 0.1),
            ("/genai-classify", 0.1), ("/classify-batch", 0.5), ("/genai-classify-batch", 0.5),
        ]  # fmt: skip
        self._threads = [
            threading.Thread(target=self._work, args=(route, pace), daemon=True)
            for route, pace in plan
        ]

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=max(self._deadlines.values()) * 2 + 20)

    def _body(self, route: str) -> tuple[Any, int]:
        with self._lock:
            self._seq += 1
            seq = self._seq
        if route == "/classify":
            return CLASSIFY_BODY, 1
        if route == "/genai-classify":
            return genai_patient(f"load-{seq}"), 1
        if route == "/classify-batch":
            return {"patients": [CLASSIFY_BODY] * 4 + [{"HR": "fast"}]}, 5
        return {"patients": [genai_patient(f"load-{seq}-{i}") for i in range(3)]}, 3

    def _work(self, route: str, pace: float) -> None:
        deadline = self._deadlines[route]
        headers = {"X-API-Key": self._rs.client_key}
        # The client waits well past the deadline, so that a late answer is seen as late.
        with httpx.Client(base_url=self._rs.gateway_url, timeout=deadline * 2 + 10) as client:
            while not self._stop.is_set():
                body, sent = self._body(route)
                started = self.now()
                t = time.perf_counter()
                try:
                    response = client.post(route, json=body, headers=headers)
                    seconds = time.perf_counter() - t
                    try:
                        parsed: Any = response.json()
                    except ValueError:
                        parsed = None
                    outcome, note = judge_answer(route, response.status_code, parsed, sent)
                    status: int | None = response.status_code
                except httpx.HTTPError as exc:
                    seconds = time.perf_counter() - t
                    outcome, note, status = "transport", type(exc).__name__, None
                with self._lock:
                    self.records.append(Record(started, route, status, seconds, outcome, note))
                self._stop.wait(pace)


@dataclass(frozen=True)
class Probe:
    at: float
    health_ms: float
    health: dict[str, Any]
    genai_ms: float
    genai_status: int | None
    genai: dict[str, Any]

    @property
    def ml_state(self) -> str:
        return str(self.health.get("upstreams", {}).get("ml", {}).get("status", "?"))

    @property
    def genai_state(self) -> str:
        return str(self.health.get("upstreams", {}).get("genai", {}).get("status", "?"))

    @property
    def genai_health(self) -> str:
        return str(self.genai.get("status", f"http {self.genai_status}"))

    @property
    def cache_state(self) -> str:
        return str(self.genai.get("cache", {}).get("state", "?"))

    @property
    def healthy(self) -> bool:
        return (
            self.ml_state == "up"
            and self.genai_state == "up"
            and self.genai_health == "available"
            and self.cache_state == "up"
        )


class Monitor:
    """/health and /genai-health, as an operator's probe sees them, every `every_s`."""

    def __init__(self, rs: ReportStack, load: Load, *, every_s: float = 0.25) -> None:
        self._rs = rs
        self._load = load
        self._every = every_s
        self._stop = threading.Event()
        self.probes: list[Probe] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _get(self, client: httpx.Client, path: str) -> tuple[float, int | None, dict[str, Any]]:
        t = time.perf_counter()
        try:
            response = client.get(path)
            body = response.json()
            status: int | None = response.status_code
        except (httpx.HTTPError, ValueError):
            body, status = {}, None
        return (time.perf_counter() - t) * 1000, status, body if isinstance(body, dict) else {}

    def _run(self) -> None:
        with httpx.Client(base_url=self._rs.gateway_url, timeout=10.0) as client:
            while not self._stop.is_set():
                at = self._load.now()
                h_ms, _h_status, health = self._get(client, "/health")
                g_ms, g_status, genai = self._get(client, "/genai-health")
                self.probes.append(Probe(at, h_ms, health, g_ms, g_status, genai))
                self._stop.wait(self._every)

    def latest(self) -> Probe | None:
        return self.probes[-1] if self.probes else None

    def first(self, after: float, predicate: Callable[[Probe], bool]) -> Probe | None:
        return next((p for p in self.probes if p.at >= after and predicate(p)), None)


@dataclass
class Fault:
    name: str
    inject: Callable[[], object]
    restore: Callable[[], object]
    detected: Callable[[Probe], bool]
    detected_by: str
    routes: tuple[str, ...]
    """Routes whose first good answer after the restore marks the recovery."""
    detect_within_s: float
    recover_within_s: float
    during: Callable[[], dict[str, Any]] | None = None
    """Run once the fault is in place (a burst of calls, say); its figures go in the report."""


@dataclass
class FaultResult:
    name: str
    detected_by: str
    detect_s: float | None
    recover_s: float | None
    window: tuple[float, float]
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    late: list[Record] = field(default_factory=list)
    silent: list[Record] = field(default_factory=list)
    health_max_ms: float = 0.0
    genai_health_max_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    detect_within_s: float = 0.0
    recover_within_s: float = 0.0


def _burst(rs: ReportStack, size: int) -> dict[str, Any]:
    """`size` concurrent /genai-classify calls of distinct patients (the LLM is hanging)."""
    headers = {"X-API-Key": rs.client_key}
    deadline = rs.setting("GENAI_DEADLINE_S")

    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    client = httpx.Client(base_url=rs.gateway_url, timeout=deadline * 2 + 10, limits=limits)

    def one(i: int) -> tuple[int | None, float, str]:
        body = genai_patient(f"burst-{i}")
        t = time.perf_counter()
        try:
            r = client.post("/genai-classify", json=body, headers=headers)
            code = ""
            if r.status_code != 200:
                code = str((r.json().get("error") or {}).get("code"))
            return r.status_code, time.perf_counter() - t, code
        except (httpx.HTTPError, ValueError) as exc:
            return None, time.perf_counter() - t, type(exc).__name__

    with client, ThreadPoolExecutor(max_workers=size) as pool:
        answers = list(pool.map(one, range(size)))
    shed = [s for status, s, code in answers if status == 503 and code == "llm_overloaded"]
    others = [s for status, s, code in answers if not (status == 503 and code == "llm_overloaded")]
    return {
        "size": size,
        "statuses": dict(Counter(f"{s} {c}".strip() for s, _t, c in answers)),
        "shed": len(shed),
        "shed_p50_s": round(percentile(shed, 50), 3) if shed else None,
        "shed_max_s": round(max(shed), 3) if shed else None,
        "others_max_s": round(max(others), 2) if others else None,
    }


def faults(rs: ReportStack, *, hold_s: float) -> list[Fault]:
    interval = rs.setting("HEALTH_PROBE_INTERVAL_S")
    probe_timeout = rs.setting("HEALTH_PROBE_TIMEOUT_S")
    cooldown = rs.setting("CIRCUIT_COOLDOWN_S")
    deadline = rs.setting("GENAI_DEADLINE_S")
    via_health = interval + probe_timeout + 1.0
    back = interval + cooldown + 2.0
    llm_calls = 2.0 + hold_s
    computed = {"kind": "computed"}
    burst = int(rs.setting("GENAI_MAX_CONCURRENCY") + rs.setting("GENAI_MAX_QUEUED")) + 16
    return [
        Fault("ml-service killed (SIGKILL), restarted", lambda: rs.kill(ML),
              lambda: rs.restart(ML), lambda p: p.ml_state == "down", "/health ml down",
              ("/classify", "/classify-batch"), via_health, back),
        Fault("genai-service killed (SIGKILL), restarted", lambda: rs.kill(GENAI),
              lambda: rs.restart(GENAI), lambda p: p.genai_state == "down",
              "/health genai down", ("/genai-classify", "/genai-classify-batch"),
              via_health, back),
        Fault("Redis stopped, restarted", rs.stop_redis, rs.start_redis,
              lambda p: p.cache_state == "down", "/genai-health cache down",
              ("/genai-classify",), 3.0 + rs.setting("GENAI_CACHE_RETRY_INTERVAL_S"),
              rs.setting("GENAI_CACHE_RETRY_INTERVAL_S") + 3.0),
        Fault("LLM answers 500", lambda: rs.llm_behave({"kind": "status", "status": 500}),
              lambda: rs.llm_behave(computed), lambda p: p.genai_health != "available",
              "/genai-health degraded", ("/genai-classify",), llm_calls, llm_calls),
        Fault("LLM answers 429 with Retry-After: 1",
              lambda: rs.llm_behave({"kind": "status", "status": 429, "retry_after": 1}),
              lambda: rs.llm_behave(computed), lambda p: p.genai_health != "available",
              "/genai-health degraded", ("/genai-classify",), llm_calls + 3, llm_calls + 3),
        Fault("LLM answers invalid JSON", lambda: rs.llm_behave({"kind": "invalid_json"}),
              lambda: rs.llm_behave(computed), lambda p: p.genai_health != "available",
              "/genai-health degraded", ("/genai-classify",), llm_calls, llm_calls),
        Fault("LLM answers nothing until the deadline", lambda: rs.llm_admin("hold"),
              lambda: rs.llm_admin("release"), lambda p: p.genai_health != "available",
              "/genai-health degraded", ("/genai-classify",), deadline + llm_calls,
              llm_calls, during=lambda: _burst(rs, burst)),
    ]  # fmt: skip


def run_fault(
    fault: Fault, load: Load, monitor: Monitor, *, hold_s: float, deadlines: dict[str, float]
) -> FaultResult:
    say(f"faults: {fault.name}")
    settle_s = min(1.0, hold_s / 4)
    wait_until(lambda: bool((p := monitor.latest()) and p.healthy), within_s=60, every_s=0.25)
    time.sleep(settle_s)
    t_inject = load.now()
    fault.inject()
    extra: dict[str, Any] = {}
    if fault.during is not None:
        extra = fault.during()
    wait_until(
        lambda: monitor.first(t_inject, fault.detected) is not None,
        within_s=fault.detect_within_s + 10,
        every_s=0.1,
    )
    time.sleep(max(0.0, hold_s - (load.now() - t_inject)))
    detected = monitor.first(t_inject, fault.detected)
    t_restore = load.now()
    fault.restore()
    t_ready = load.now()  # a restarted service is ready when restore returns

    def recovered_at() -> float | None:
        probe = monitor.first(t_ready, lambda p: p.healthy)
        firsts = [
            next((r.started + r.seconds for r in list(load.records)
                  if r.route == route and r.started >= t_ready and r.outcome == "ok"), None)
            for route in fault.routes
        ]  # fmt: skip
        if probe is None or any(f is None for f in firsts):
            return None
        return max([probe.at, *(f for f in firsts if f is not None)])

    wait_until(lambda: recovered_at() is not None, within_s=90, every_s=0.2)
    back_at = recovered_at()
    t_end = (back_at if back_at is not None else load.now()) + settle_s
    time.sleep(settle_s)
    in_window = [
        r
        for r in list(load.records)
        if t_inject - 0.5 <= r.started + r.seconds and r.started <= t_end
    ]
    counts: dict[str, Counter[str]] = {}
    for r in in_window:
        # An error is counted with its code (upstream_unavailable, llm_overloaded, ...).
        outcome = f"{r.outcome} {r.note}" if r.outcome == "error" else r.outcome
        counts.setdefault(r.route, Counter())[outcome] += 1
    probes = [p for p in monitor.probes if t_inject <= p.at <= t_end]
    extra["restore_s"] = round(t_ready - t_restore, 2)
    return FaultResult(
        name=fault.name,
        detected_by=fault.detected_by,
        detect_s=None if detected is None else detected.at - t_inject,
        recover_s=None if back_at is None else back_at - t_ready,
        window=(t_inject, t_end),
        counts=counts,
        late=[r for r in in_window if r.seconds > deadlines[r.route]],
        silent=[r for r in in_window if r.outcome in ("silent", "malformed")],
        health_max_ms=max((p.health_ms for p in probes), default=0.0),
        genai_health_max_ms=max((p.genai_ms for p in probes), default=0.0),
        extra=extra,
        detect_within_s=fault.detect_within_s,
        recover_within_s=fault.recover_within_s,
    )


def deadlines_of(rs: ReportStack) -> dict[str, float]:
    """How long each route may take at most: the gateway's ML timeout, or the GenAI deadline
    (one patient; a batch's patients run in waves of GENAI_BATCH_CONCURRENCY, so a small batch
    has the same bound), plus a second of slack for the hops around them."""
    ml = rs.setting("ML_TIMEOUT_S") + 1.0
    genai = rs.setting("GENAI_DEADLINE_S") + 2.0
    return {
        "/classify": ml,
        "/classify-batch": ml,
        "/genai-classify": genai,
        "/genai-classify-batch": genai,
    }


def faults_section(rs: ReportStack, *, hold_s: float) -> Section:
    section = Section("faults", "3. Faults under steady load")
    deadlines = deadlines_of(rs)
    rs.llm_admin("config", {"default": {"kind": "computed"}, "latency_s": 0.2})
    load = Load(rs, deadlines=deadlines)
    monitor = Monitor(rs, load)
    load.start()
    monitor.start()
    results: list[FaultResult] = []
    try:
        for fault in faults(rs, hold_s=hold_s):
            results.append(run_fault(fault, load, monitor, hold_s=hold_s, deadlines=deadlines))
    finally:
        load.stop()
        monitor.stop()
    interval = rs.setting("HEALTH_PROBE_INTERVAL_S")
    section.add(
        "Background load through the gateway during every fault: two clients on /classify "
        "(20 ms apart), two on /genai-classify with distinct patients (every call reaches the "
        "LLM, which answers in 0.2 s when well), one on /classify-batch (5 patients, one "
        "invalid) and one on /genai-classify-batch (3 patients). An operator's probe reads "
        f"/health and /genai-health every 0.25 s (the gateway's own probe interval is "
        f"{interval:g} s). Each fault is held {hold_s:g} s (or until detected), then undone. "
        "Time to detect: from the fault to the first probe that shows it. Time to recover: from "
        "the restart or the LLM's return to the first probe that shows everything well and the "
        "first good answer on each affected route. A request is late past "
        + ", ".join(f"{r} {d:g} s" for r, d in deadlines.items())
        + ".",
        "",
    )
    rows = []
    for r in results:
        outcomes = "; ".join(
            f"{route} " + ", ".join(f"{k} {n}" for k, n in sorted(c.items()))
            for route, c in sorted(r.counts.items())
        )
        rows.append([
            r.name, f"{secs(r.detect_s)} ({r.detected_by})", secs(r.recover_s),
            len(r.late), len(r.silent),
            f"{ms(r.health_max_ms, 0)} / {ms(r.genai_health_max_ms, 0)}",
            outcomes,
        ])  # fmt: skip
    section.table(
        ["fault", "time to detect", "time to recover", "late", "silent 200s",
         "slowest /health / /genai-health ms", "answers in the fault window"],
        rows,
    )  # fmt: skip
    section.add(
        "Outcomes: ok (a real answer), degraded (a 200 saying the LLM answer is missing, "
        "`degraded: true`, with the guardrail's assessment), error (an error envelope, with its "
        "code; for a batch, the code of its first failed item), silent (a failure passed off "
        "as a 200) or malformed (no envelope).",
        "",
    )
    for r in results:
        if "size" in r.extra:
            section.add(
                f"- {r.name}: a burst of {r.extra['size']} concurrent /genai-classify calls: "
                f"{r.extra['statuses']}; {r.extra['shed']} shed with 503 llm_overloaded (median "
                f"{r.extra['shed_p50_s']} s, slowest {r.extra['shed_max_s']} s); the rest within "
                f"{r.extra['others_max_s']} s."
            )
        if r.late:
            worst = max(r.late, key=lambda x: x.seconds)
            section.add(
                f"- {r.name}: {len(r.late)} late, worst {worst.route} {worst.seconds:.1f} s"
            )
        for s in r.silent[:3]:
            section.add(f"- {r.name}: {s.route} {s.status}: {s.note}")
    section.add("")
    for r in results:
        section.check(f"{r.name}: detected within {r.detect_within_s:g} s",
                      r.detect_s is not None and r.detect_s <= r.detect_within_s,
                      secs(r.detect_s))  # fmt: skip
        section.check(f"{r.name}: recovered by itself within {r.recover_within_s:g} s",
                      r.recover_s is not None and r.recover_s <= r.recover_within_s,
                      secs(r.recover_s))  # fmt: skip
        section.check(f"{r.name}: no request past its deadline", not r.late, f"{len(r.late)}")
        section.check(f"{r.name}: no failure as a silent 200, every batch item answered or "
                      "marked", not r.silent, f"{len(r.silent)}")  # fmt: skip
        section.check(f"{r.name}: /health and /genai-health answered within 2 s",
                      max(r.health_max_ms, r.genai_health_max_ms) < 2000,
                      f"{ms(r.health_max_ms, 0)} / {ms(r.genai_health_max_ms, 0)} ms")  # fmt: skip
        if "size" in r.extra:
            section.check(f"{r.name}: calls past the LLM limits shed at once with 503",
                          r.extra["shed"] > 0 and (r.extra["shed_p50_s"] or 99) < 1.0,
                          f"{r.extra['shed']} shed, median {r.extra['shed_p50_s']} s, slowest "
                          f"{r.extra['shed_max_s']} s")  # fmt: skip
    section.data = {
        "deadlines_s": deadlines,
        "faults": [
            {"name": r.name, "detect_s": r.detect_s, "recover_s": r.recover_s,
             "window_s": r.window, "counts": {k: dict(v) for k, v in r.counts.items()},
             "late": len(r.late), "silent": len(r.silent), "health_max_ms": r.health_max_ms,
             "genai_health_max_ms": r.genai_health_max_ms, "extra": r.extra}
            for r in results
        ],
        "records": [[round(r.started, 3), r.route, r.status, round(r.seconds, 4), r.outcome]
                    for r in load.records],
        "probes": [[round(p.at, 3), round(p.health_ms, 1), p.ml_state, p.genai_state,
                    p.genai_health, p.cache_state] for p in monitor.probes],
    }  # fmt: skip
    total = len(load.records)
    section.add(f"{total:,} background requests in all; p50 "
                f"{ms(percentile([r.seconds * 1000 for r in load.records], 50))} ms.")  # fmt: skip
    return section
