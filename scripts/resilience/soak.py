"""Part 5: a soak at half the knee's throughput with the realistic mix: RSS, open file
descriptors and sockets of every process of the stack sampled from /proc, TCP connections per
port from /proc/net/tcp; growth beyond noise is flagged."""

from __future__ import annotations

import csv
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.resilience.common import Section, ms, say
from scripts.resilience.load import LocustRun, run_locust
from scripts.resilience.stackup import ReportStack

_TCP_ESTABLISHED = "01"


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def fds(pid: int) -> tuple[int, int] | None:
    """Open file descriptors and, among them, sockets."""
    base = Path(f"/proc/{pid}/fd")
    total = sockets = 0
    try:
        for entry in base.iterdir():
            total += 1
            try:
                if os.readlink(entry).startswith("socket:"):
                    sockets += 1
            except OSError:
                continue
    except OSError:
        return None
    return total, sockets


def established(ports: dict[str, int]) -> dict[str, int]:
    """Established TCP connections whose local port is each named port (IPv4 and IPv6)."""
    by_port = dict.fromkeys(ports.values(), 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 4 or parts[3] != _TCP_ESTABLISHED:
                continue
            port = int(parts[1].rsplit(":", 1)[1], 16)
            if port in by_port:
                by_port[port] += 1
    return {name: by_port[port] for name, port in ports.items()}


@dataclass
class Series:
    t: list[float] = field(default_factory=list)
    rss_mib: dict[str, list[float]] = field(default_factory=dict)
    fds: dict[str, list[float]] = field(default_factory=dict)
    sockets: dict[str, list[float]] = field(default_factory=dict)
    connections: dict[str, list[float]] = field(default_factory=dict)


class Sampler:
    def __init__(self, rs: ReportStack, *, every_s: float) -> None:
        self._rs = rs
        self._every = every_s
        self._stop = threading.Event()
        self.series = Series()
        self._pids = rs.pids()
        self._ports = {
            "gateway": int(rs.gateway_url.rsplit(":", 1)[1]),
            "ml-service": int(rs.ml_url.rsplit(":", 1)[1]),
            "genai-service": int(rs.genai_url.rsplit(":", 1)[1]),
            "redis": int(rs.settings["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]),
        }
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def sample(self) -> None:
        s = self.series
        s.t.append(time.monotonic() - self._t0)
        for name, pid in self._pids.items():
            rss = rss_kib(pid)
            s.rss_mib.setdefault(name, []).append(math.nan if rss is None else rss / 1024)
            counts = fds(pid)
            s.fds.setdefault(name, []).append(math.nan if counts is None else counts[0])
            s.sockets.setdefault(name, []).append(math.nan if counts is None else counts[1])
        for name, count in established(self._ports).items():
            s.connections.setdefault(name, []).append(count)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._every)


@dataclass(frozen=True)
class Growth:
    start: float
    end: float
    peak: float
    growth: float
    noise: float
    flagged: bool | None
    """None: too few samples to judge."""


def growth_of(values: list[float], *, floor: float, relative: float = 0.0) -> Growth:
    """Growth from the settled start to the end of a series, against its noise.

    The first fifth is warm-up and left out; the rest is cut in thirds: growth is the median of
    the last third minus the median of the first, noise three times the median absolute
    deviation of the first third, at least `floor` (and `relative` of the start). It is flagged
    when it passes the noise."""
    clean = [v for v in values if not math.isnan(v)]
    if len(clean) < 15:
        return Growth(math.nan, math.nan, max(clean, default=math.nan), math.nan, math.nan, None)
    settled = clean[len(clean) // 5 :]
    third = max(1, len(settled) // 3)
    first, last = settled[:third], settled[-third:]
    start, end = statistics.median(first), statistics.median(last)
    mad = statistics.median(abs(v - start) for v in first)
    noise = max(3 * mad, floor, relative * start)
    growth = end - start
    return Growth(start, end, max(clean), growth, noise, growth > noise)


def read_history(prefix: Path) -> list[dict[str, float]]:
    """The Aggregated and /classify rows of locust's `<prefix>_stats_history.csv`."""
    path = Path(f"{prefix}_stats_history.csv")
    if not path.is_file():
        return []
    rows: list[dict[str, float]] = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] != "/classify":
                continue

            def num(key: str, row: dict[str, str] = row) -> float:
                try:
                    return float(row[key])
                except (KeyError, ValueError):
                    return math.nan

            rows.append({"t": num("Timestamp"), "rps": num("Requests/s"), "p50": num("50%"),
                         "p95": num("95%"), "p99": num("99%")})  # fmt: skip
    if rows:
        t0 = rows[0]["t"]
        for r in rows:
            r["t"] -= t0
    return rows


def _num(value: float, spec: str = ".1f") -> str:
    return "-" if math.isnan(value) else format(value, spec)


def soak_section(
    rs: ReportStack,
    out_dir: Path,
    *,
    target_rps: float,
    seconds: float,
    sample_s: float,
    hit_rate: float,
) -> tuple[Section, Series, list[dict[str, float]], LocustRun]:
    section = Section("soak", "5. Soak at half the knee")
    users = max(4, min(64, math.ceil(target_rps / 10)))
    say(f"soak: {target_rps:.0f} rps ({users} users) for {seconds:.0f} s")
    with Sampler(rs, every_s=sample_s) as sampler:
        run = run_locust(rs, out_dir, name="soak", users=users, seconds=seconds, mix="mix",
                         hit_rate=hit_rate, user_rps=target_rps / users, history=True)  # fmt: skip
    series = sampler.series
    history = read_history(run.prefix)
    total = run.total
    section.add(
        f"The realistic mix (as in part 4) at {target_rps:.0f} rps ({users} locust users at "
        f"{target_rps / users:.1f} rps each) for {seconds:g} s: {total.requests:,} requests, "
        f"{total.rps:,.1f} rps, errors {total.error_rate:.2%}. Every {sample_s:g} s: VmRSS and "
        f"the open file descriptors (sockets among them) of each process from /proc/<pid>, and "
        f"the established TCP connections on each service's port from /proc/net/tcp. Growth is "
        f"the median of the last third against the first third of the run after a warm-up "
        f"fifth; flagged past three median absolute deviations (at least 8 MiB and 5 % of the "
        f"start for RSS, 4 descriptors, 4 connections).",
        "",
    )
    rows: list[list[object]] = []
    flags: list[str] = []
    judged = False
    for name in sorted(series.rss_mib):
        for what, values, floor, rel, unit in (
            ("RSS", series.rss_mib[name], 8.0, 0.05, "MiB"),
            ("open fds", series.fds[name], 4.0, 0.0, ""),
            ("sockets", series.sockets[name], 4.0, 0.0, ""),
        ):
            g = growth_of(values, floor=floor, relative=rel)
            judged = judged or g.flagged is not None
            if g.flagged:
                flags.append(f"{name} {what} +{g.growth:.1f}{unit}")
            verdict = "-" if g.flagged is None else "GROWS" if g.flagged else "flat"
            rows.append([name, what, _num(g.start), _num(g.end), _num(g.peak),
                         _num(g.growth, "+.1f"), _num(g.noise), verdict])  # fmt: skip
    for name, values in sorted(series.connections.items()):
        g = growth_of(values, floor=4.0)
        judged = judged or g.flagged is not None
        if g.flagged:
            flags.append(f"connections to {name} +{g.growth:.0f}")
        rows.append([name, "TCP connections in", _num(g.start, ".0f"), _num(g.end, ".0f"),
                     _num(g.peak, ".0f"), _num(g.growth, "+.0f"), _num(g.noise, ".0f"),
                     "-" if g.flagged is None else "GROWS" if g.flagged else "flat"])  # fmt: skip
    section.table(["process", "figure", "start", "end", "peak", "growth", "noise", "verdict"],
                  rows)  # fmt: skip
    if history:
        # Windows without a request (the very first) carry no latency.
        p99s = [h["p99"] for h in history if h["rps"] > 0 and not math.isnan(h["p99"])]
        p99s = p99s or [math.nan]
        section.add(
            f"/classify over the soak (locust's 10 s windows): p99 from {ms(p99s[0], 0)} to "
            f"{ms(p99s[-1], 0)} ms, worst {ms(max(p99s), 0)} ms.",
            "",
        )
    section.check(
        "soak: no growth of memory, descriptors or connections beyond noise",
        (not flags) if judged and seconds >= 120 else None,
        "; ".join(flags) or ("flat" if judged else "too short to judge"),
    )
    section.check("soak: error rate under 1 %", total.error_rate < 0.01, f"{total.error_rate:.2%}")
    section.data = {
        "target_rps": target_rps,
        "users": users,
        "seconds": seconds,
        "requests": total.requests,
        "rps": total.rps,
        "error_rate": total.error_rate,
        "flags": flags,
        "series": {"t": series.t, "rss_mib": series.rss_mib, "fds": series.fds,
                   "sockets": series.sockets, "connections": series.connections},
    }  # fmt: skip
    return section, series, history, run
