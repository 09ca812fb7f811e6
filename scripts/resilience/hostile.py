"""Part 2: the hostile inputs fuzzers miss, each sent for real to both pathways, with a
slow-body client and 200 idle keep-alive connections while other clients are served."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx

from scripts.resilience.common import CLASSIFY_BODY, GENAI_BODY, Section, ms, percentile, say
from scripts.resilience.stackup import GATEWAY, ReportStack

CASE_TIMEOUT_S = 60.0
"""No hostile case may take longer than this to be answered (it would be a hang)."""


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: bytes
    expect: frozenset[int]
    content_type: str | None = "application/json"
    extra_headers: tuple[tuple[str, str], ...] = ()
    judge: Callable[[int, Any], str | None] | None = None
    """Beyond the status: None when the answer is right, else what is wrong with it."""


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()


def _ts(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quality_names(field_part: str) -> Callable[[int, Any], str | None]:
    """A 200 must list the input in `data_quality` (a field containing `field_part`)."""

    def judge(status: int, body: Any) -> str | None:
        if status != 200:
            return None
        entries = body.get("data_quality") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            return "no data_quality in the answer"
        if any(field_part in str(e.get("field", "")) for e in entries if isinstance(e, dict)):
            return None
        return f"data_quality does not name {field_part}: {json.dumps(entries)[:200]}"

    return judge


def cases() -> list[Case]:
    """Every case of the issue's "Cases fuzzers miss" list, on both single-patient routes
    (and on the batch routes where the case is about batches)."""
    now = datetime.now(UTC)
    series = [
        {"val": 80 + i % 40, "ts": (now - timedelta(seconds=2 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for i in range(10_000)
    ]
    same = _ts(timedelta(minutes=-30))
    vitals = {"SBP": 95, "Resp": 22, "Temp": 38.5}
    flat = dict(CLASSIFY_BODY)
    deep = b'{"HR": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    twenty_mb = b'{"HR": 90, "notes": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    one_mb_note = {"vitals": vitals | {"HR": 110}, "notes": "fever and rigors. " * 55_556}
    singles: list[tuple[str, bytes, frozenset[int], Callable[[int, Any], str | None] | None]] = [
        ("NaN literal", b'{"HR": NaN, "SBP": 95}', frozenset({422}), None),
        ("Infinity literal", b'{"HR": Infinity, "SBP": 95}', frozenset({422}), None),
        ("-Infinity literal", b'{"HR": -Infinity, "SBP": 95}', frozenset({422}), None),
        ("numbers as strings", _dump({"HR": "110", "SBP": "95"}), frozenset({200, 422}), None),
        ("10,000-point series", _dump({"vitals": vitals | {"HR": series}}),
         frozenset({200, 413, 422}), None),
        ("duplicate timestamps", _dump({"vitals": vitals | {"HR": [
            {"val": 100, "ts": same}, {"val": 130, "ts": same}]}}), frozenset({200}),
         _quality_names("HR")),
        ("future timestamp (2099)", _dump({"vitals": vitals | {"HR": [
            {"val": 100, "ts": _ts(timedelta(minutes=-20))},
            {"val": 60, "ts": "2099-01-01T00:00:00Z"}]}}), frozenset({200}),
         _quality_names("HR")),
        ("mixed time zones", _dump({"vitals": vitals | {"HR": [
            {"val": 100, "ts": _ts(timedelta(minutes=-40))},
            {"val": 110, "ts": (now - timedelta(minutes=20)).astimezone(
                timezone(timedelta(hours=2))).isoformat()},
            {"val": 120, "ts": (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S")}]}}),
         frozenset({200, 422}), None),
        ("unicode notes", _dump({"vitals": vitals | {"HR": 110},
                                 "notes": "fièvre 39,2 °C, 患者 confused, مريض 🤒 e\u0301"}),
         frozenset({200}), None),
        ("control characters and NUL in notes", _dump({"vitals": vitals | {"HR": 110},
                                                       "notes": "a\u0000b\u0007c\u001bd\r\ne"}),
         frozenset({200, 422}), None),
        ("lone surrogate in notes", b'{"HR": 110, "notes": "bad \\ud800"}', frozenset({422}),
         None),
        ("1 MB note", _dump(one_mb_note), frozenset({200, 413, 422}), None),
        ("20 MB body", twenty_mb, frozenset({413}), None),
        ("JSON nested 10,000 deep", deep, frozenset({422}), None),
    ]  # fmt: skip
    found: list[Case] = []
    for path in ("/classify", "/genai-classify"):
        for name, body, expect, judge in singles:
            found.append(Case(name, path, body, expect, judge=judge))
        good = _dump(flat if path == "/classify" else GENAI_BODY)
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
            found.append(Case(f"Content-Type {ctype}", path, good, frozenset({415}), ctype))
        found.append(
            Case("duplicated X-API-Key (valid last)", path, good, frozenset({401}),
                 extra_headers=(("X-API-Key", "not-the-key"),))
        )  # fmt: skip
    found.append(
        Case("batch of 1,001", "/classify-batch", _dump({"patients": [flat] * 1001}),
             frozenset({413}))
    )  # fmt: skip
    found.append(
        Case("batch of 1,001", "/genai-classify-batch", _dump({"patients": [GENAI_BODY] * 1001}),
             frozenset({413}))
    )  # fmt: skip
    found.append(Case("20 MB body", "/classify-batch", twenty_mb, frozenset({413})))
    return found


@dataclass
class Outcome:
    case: Case
    status: int | None
    seconds: float
    problems: list[str] = field(default_factory=list)
    answer: str = ""
    """The error's code and message, or what a 200 said about the input."""


def send_case(client: httpx.Client, case: Case, key: str) -> Outcome:
    # The duplicated-key case sends its wrong key first and the valid one last.
    headers: list[tuple[str, str]] = [*case.extra_headers, ("X-API-Key", key)]
    if case.content_type is not None:
        headers.append(("Content-Type", case.content_type))
    started = time.perf_counter()
    try:
        response = client.post(case.path, content=case.body, headers=headers)
    except httpx.HTTPError as exc:
        return Outcome(case, None, time.perf_counter() - started, [type(exc).__name__])
    seconds = time.perf_counter() - started
    problems: list[str] = []
    try:
        body: Any = response.json()
    except ValueError:
        body = None
        problems.append("the answer is not JSON")
    if response.status_code not in case.expect:
        problems.append(f"expected {'/'.join(map(str, sorted(case.expect)))}")
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or "code" not in error:
            problems.append("no error envelope")
        elif error.get("request_id") != response.headers.get("X-Request-ID"):
            problems.append("envelope request_id differs from X-Request-ID")
    if case.judge is not None:
        problem = case.judge(response.status_code, body)
        if problem:
            problems.append(problem)
    return Outcome(case, response.status_code, seconds, problems, _gist(body))


def _gist(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        return f"{error.get('code')}: {str(error.get('message'))[:90]}"
    quality = body.get("data_quality")
    if isinstance(quality, list) and quality:
        first = quality[0] if isinstance(quality[0], dict) else {}
        return (
            f"{len(quality)} in data_quality, first {first.get('field')} "
            f"{first.get('action')}: {str(first.get('reason'))[:60]}"
        )
    return f"risk {body.get('risk_score')}, {body.get('priority')}"


# --- slow clients -------------------------------------------------------------------------------


class Prober:
    """Another client, served or not meanwhile: /classify every `every_s` seconds."""

    def __init__(self, rs: ReportStack, *, every_s: float = 0.1) -> None:
        self._rs = rs
        self._every = every_s
        self._stop = threading.Event()
        self.latencies_ms: list[float] = []
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        headers = {"X-API-Key": self._rs.client_key}
        with httpx.Client(base_url=self._rs.gateway_url, timeout=10.0) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    response = client.post("/classify", json=CLASSIFY_BODY, headers=headers)
                    if response.status_code != 200:
                        self.failures.append(str(response.status_code))
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
                self._stop.wait(self._every)

    def summary(self) -> str:
        lat = self.latencies_ms
        return (
            f"{len(lat)} requests, {len(self.failures)} not 200, p50 {ms(percentile(lat, 50))} "
            f"ms, p99 {ms(percentile(lat, 99))} ms, max {ms(max(lat) if lat else None)} ms"
        )


def _address(rs: ReportStack) -> tuple[str, int]:
    parts = urlsplit(rs.gateway_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _read_answer(sock: socket.socket, *, until: float) -> tuple[bytes, float | None]:
    """The first bytes the server sends before `until`, or when it closed the connection
    (then with what it sent just before)."""
    data = b""
    while time.monotonic() < until:
        ready, _, _ = select.select([sock], [], [], max(0.0, until - time.monotonic()))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except OSError:
            return data, time.monotonic()
        if not chunk:
            return data, time.monotonic()
        data += chunk
        # Whatever follows at once (the rest of the answer, or the close) comes with it.
        until = min(until, time.monotonic() + 0.2)
    return data, None


def _read_response(sock: socket.socket, *, within_s: float) -> bytes:
    """One whole HTTP response (head and Content-Length body), leaving the connection open."""
    data = b""
    until = time.monotonic() + within_s
    while time.monotonic() < until:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(rest) >= length:
                return data
        ready, _, _ = select.select([sock], [], [], max(0.0, until - time.monotonic()))
        if not ready:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _status_of(raw: bytes) -> int | None:
    try:
        return int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def trickled_body(rs: ReportStack, *, over_s: float) -> dict[str, Any]:
    """A /classify body sent one byte at a time, spread over `over_s` seconds."""
    body = json.dumps(CLASSIFY_BODY).encode()
    head = (
        f"POST /classify HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {rs.client_key}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    gap = over_s / len(body)
    answer = b""
    sent = 0
    answered_at: float | None = None
    closed_at: float | None = None
    with Prober(rs) as prober, socket.create_connection(_address(rs), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(head)
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
                sent += 1
            except OSError:
                break
            answer, closed_at = _read_answer(sock, until=time.monotonic() + gap)
            if answer or closed_at is not None:
                break
        if not answer and closed_at is None:
            answer, closed_at = _read_answer(sock, until=time.monotonic() + over_s + 30)
        answered_at = time.monotonic() if answer else None
        if answer and closed_at is None:
            # Answered: is the connection closed after it?
            _rest, closed_at = _read_answer(sock, until=time.monotonic() + 5)
            if closed_at is None:
                _rest, closed_at = _read_answer(sock, until=time.monotonic() + 5)
        end = answered_at or closed_at or time.monotonic()
        elapsed = end - started
    return {
        "body_bytes": len(body),
        "bytes_sent": sent,
        "status": _status_of(answer),
        "answered_after_s": round(elapsed, 2),
        "closed": closed_at is not None,
        "others": prober.summary(),
        "others_failures": len(prober.failures),
        "others_served": len(prober.latencies_ms),
    }


def silent_connection(rs: ReportStack, *, wait_s: float) -> dict[str, Any]:
    """A connection that never sends a byte."""
    with socket.create_connection(_address(rs), timeout=5) as sock:
        started = time.monotonic()
        answer, closed_at = _read_answer(sock, until=started + wait_s)
    return {
        "status": _status_of(answer),
        "closed_after_s": None if closed_at is None else round(closed_at - started, 2),
    }


def _fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def idle_keepalive(rs: ReportStack, *, connections: int, hold_s: float) -> dict[str, Any]:
    """`connections` keep-alive connections that each make one request and then sit idle."""
    request = b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n"
    socks: list[socket.socket] = []
    answered = 0
    gateway_pid = rs.pids().get(GATEWAY)
    fds_before = _fd_count(gateway_pid) if gateway_pid else None
    fds_peak = fds_before or 0
    closed_after: list[float] = []
    try:
        for _ in range(connections):
            sock = socket.create_connection(_address(rs), timeout=5)
            socks.append(sock)
            sock.sendall(request)
        for sock in socks:
            if _status_of(_read_response(sock, within_s=5)) == 200:
                answered += 1
        started = time.monotonic()
        open_socks = set(socks)
        with Prober(rs) as prober:
            while time.monotonic() - started < hold_s:
                if not open_socks:
                    time.sleep(0.2)
                    continue
                if gateway_pid:
                    fds_peak = max(fds_peak, _fd_count(gateway_pid) or 0)
                ready, _, _ = select.select(list(open_socks), [], [], 0.2)
                for sock in ready:
                    try:
                        chunk = sock.recv(65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        open_socks.discard(sock)
                        closed_after.append(time.monotonic() - started)
        still_open = len(open_socks)
    finally:
        for sock in socks:
            sock.close()
    return {
        "connections": connections,
        "answered": answered,
        "held_s": hold_s,
        "closed_by_server": len(closed_after),
        "still_open": still_open,
        "closed_after_s_median": round(percentile(closed_after, 50), 2) if closed_after else None,
        "gateway_fds_before": fds_before,
        "gateway_fds_peak": fds_peak,
        "others": prober.summary(),
        "others_failures": len(prober.failures),
        "others_served": len(prober.latencies_ms),
    }


def hostile_section(
    rs: ReportStack, *, trickle_s: float, idle_connections: int, idle_hold_s: float
) -> Section:
    section = Section("hostile", "2. Hostile input the fuzzers miss")
    say("hostile: each case on both pathways")
    outcomes: list[Outcome] = []
    with httpx.Client(base_url=rs.gateway_url, timeout=CASE_TIMEOUT_S) as client:
        for case in cases():
            outcomes.append(send_case(client, case, rs.client_key))
    rows = [
        [o.case.name, o.case.path, len(o.case.body), o.status if o.status is not None else "-",
         "/".join(map(str, sorted(o.case.expect))), ms(o.seconds * 1000), o.answer,
         "; ".join(o.problems) or "as expected"]
        for o in outcomes
    ]  # fmt: skip
    section.add("Each case sent once through the gateway with a client key.", "")
    section.table(["case", "route", "bytes", "status", "expected", "ms", "answer", "verdict"], rows)
    bad = [o for o in outcomes if o.problems]
    section.check(
        "hostile cases: each answered as expected (status, envelope, data_quality)",
        not bad,
        "; ".join(f"{o.case.name} on {o.case.path}: {', '.join(o.problems)}" for o in bad)
        or f"{len(outcomes)} cases",
    )
    server_errors = [o for o in outcomes if o.status is None or o.status >= 500]
    section.check("hostile cases: no 5xx and no hang", not server_errors,
                  f"{len(server_errors)} of {len(outcomes)}")  # fmt: skip

    body_limit = rs.setting("BODY_READ_TIMEOUT_S")
    head_limit = rs.setting("HEADER_READ_TIMEOUT_S")
    say(f"hostile: a body trickled over {trickle_s:.0f} s")
    trickle = trickled_body(rs, over_s=trickle_s)
    say("hostile: a connection that sends nothing")
    silent = silent_connection(rs, wait_s=head_limit + 10)
    say(f"hostile: {idle_connections} idle keep-alive connections for {idle_hold_s:.0f} s")
    idle = idle_keepalive(rs, connections=idle_connections, hold_s=idle_hold_s)
    section.add(
        "**Slow and idle clients** (another client sends /classify every 0.1 s meanwhile):",
        "",
    )
    section.table(
        ["client", "what happened", "other clients meanwhile"],
        [
            [f"body of {trickle['body_bytes']} bytes, 1 byte every "
             f"{trickle_s / trickle['body_bytes'] * 1000:.0f} ms (over {trickle_s:.0f} s)",
             f"{trickle['status'] or 'no answer'} after {trickle['answered_after_s']} s, "
             f"{trickle['bytes_sent']} bytes sent, connection "
             f"{'closed' if trickle['closed'] else 'left open'} "
             f"(BODY_READ_TIMEOUT_S={body_limit:g})", trickle["others"]],
            ["a connection that sends nothing",
             f"{silent['status'] or 'no answer'}, closed after {silent['closed_after_s']} s "
             f"(HEADER_READ_TIMEOUT_S={head_limit:g})", "-"],
            [f"{idle['connections']} keep-alive connections, one request each, then idle",
             f"{idle['answered']} answered; {idle['closed_by_server']} closed by the gateway "
             f"(median after {idle['closed_after_s_median']} s), {idle['still_open']} open after "
             f"{idle['held_s']:.0f} s; gateway fds {idle['gateway_fds_before']} -> peak "
             f"{idle['gateway_fds_peak']}", idle["others"]],
        ],
    )  # fmt: skip
    trickle_ok = trickle["status"] == 408 and trickle["answered_after_s"] <= body_limit + 3
    if trickle_s < body_limit:
        trickle_ok = trickle["status"] in (200, 408)
    section.check(
        "a trickled body is timed out (408) and the connection closed",
        trickle_ok and trickle["closed"],
        f"{trickle['status']} after {trickle['answered_after_s']} s",
    )
    section.check(
        "others are served while a body trickles",
        trickle["others_failures"] == 0 and trickle["others_served"] > 0,
        trickle["others"],
    )
    section.check(
        "a silent connection gets 408 and is closed within HEADER_READ_TIMEOUT_S",
        silent["status"] == 408
        and silent["closed_after_s"] is not None
        and silent["closed_after_s"] <= head_limit + 3,
        f"{silent['status']} after {silent['closed_after_s']} s",
    )
    section.check(
        f"others are served while {idle_connections} idle keep-alive connections are held",
        idle["answered"] == idle_connections
        and idle["others_failures"] == 0
        and idle["others_served"] > 0,
        idle["others"],
    )
    section.data = {
        "cases": [
            {"case": o.case.name, "path": o.case.path, "bytes": len(o.case.body),
             "status": o.status, "seconds": round(o.seconds, 4), "problems": o.problems,
             "answer": o.answer}
            for o in outcomes
        ],
        "trickle": trickle,
        "silent": silent,
        "idle_keepalive": idle,
    }  # fmt: skip
    return section
