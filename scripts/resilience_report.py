"""The resilience report: starts its own local stack on free ports (scripts/stack.py, GenAI
pointed at the local fake LLM server so that LLM faults can be scripted), runs every check of
the resilience issue against it, and writes `reports/resilience/<UTC timestamp>/REPORT.md` with
the figures, PNG charts of latency and memory over time and `results.json`.

Parts, in order (each bounded by the options below; `--quick` shrinks them all to about a
minute in all):
  1 fuzz     schemathesis, every phase, with and without a key; cases and failures per operation
  2 hostile  the cases fuzzers miss, a trickled body, a silent connection, 200 idle keep-alives
  3 faults   services killed, Redis stopped, the LLM failing, under steady load
  4 load     locust: the /classify knee, the realistic mix, the gateway-vs-direct tail
  5 soak     half the knee's throughput; RSS, descriptors and connections from /proc
  6 keys     the time to refuse a wrong key against the length of the matching prefix

Exit status: 0 when every judged check held, 1 when one failed (the report says which), 2 when
the stack could not be started.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.resilience import charts
from scripts.resilience.common import Section, say
from scripts.resilience.faults import faults_section
from scripts.resilience.fuzz import fuzz_section
from scripts.resilience.hostile import hostile_section
from scripts.resilience.keytiming import key_timing_section
from scripts.resilience.load import KNEE_P99_MS, Knee, load_section
from scripts.resilience.soak import soak_section
from scripts.resilience.stackup import ReportStack, report_stack
from scripts.stack import REPO_ROOT, StackError

PARTS = ("fuzz", "hostile", "faults", "load", "soak", "keys")
TITLES = {
    "fuzz": "1. Fuzzing from the merged OpenAPI document (schemathesis)",
    "hostile": "2. Hostile input the fuzzers miss",
    "faults": "3. Faults under steady load",
    "load": "4. Load (locust) and the gateway's tail at 32 clients",
    "soak": "5. Soak at half the knee",
    "keys": "6. Time to refuse a wrong key",
}

# (full run, --quick)
BOUNDS: dict[str, tuple[Any, Any]] = {
    "fuzz_examples": (300, 2),
    "fuzz_max_time": (300, 8),
    "trickle_s": (30.0, 5.0),
    "idle_connections": (200, 200),
    "idle_hold_s": (30.0, 3.0),
    "fault_hold_s": (10.0, 1.0),
    "knee_steps": ("1,2,4,8,16,24,32,48,64,96,128", "8,32"),
    "step_s": (20.0, 2.5),
    "mix_s": (60.0, 3.0),
    "bench_requests": (2000, 100),
    "soak_s": (600.0, 5.0),
    "sample_s": (5.0, 1.0),
    "key_samples": (2000, 150),
}
QUICK_STACK = {
    # Short deadlines, so that every fault and slow client fits in a minute.
    "GENAI_DEADLINE_S": "3",
    "BODY_READ_TIMEOUT_S": "2",
    "HEADER_READ_TIMEOUT_S": "2",
    "HEALTH_PROBE_INTERVAL_S": "1",
    "CIRCUIT_COOLDOWN_S": "1",
    "GENAI_MAX_CONCURRENCY": "8",
    "GENAI_MAX_QUEUED": "4",
    "GENAI_CACHE_RETRY_INTERVAL_S": "1",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/report-resilience",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="every part tiny: about a minute")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "resilience",
                        help="where the timestamped report folder goes")  # fmt: skip
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated parts to run (default all: {','.join(PARTS)})",
    )
    helps = {
        "fuzz_examples": "schemathesis --max-examples per operation and phase",
        "fuzz_max_time": "schemathesis --max-time, seconds per run (two runs)",
        "trickle_s": "seconds over which a body is sent byte by byte",
        "idle_connections": "idle keep-alive connections held open",
        "idle_hold_s": "seconds they are held",
        "fault_hold_s": "seconds each fault is held (at least until detected)",
        "knee_steps": "locust user counts, stepped up until /classify p99 passes 100 ms",
        "step_s": "seconds per knee step",
        "mix_s": "seconds of the realistic mix",
        "bench_requests": "requests per target and concurrency of bench-gateway",
        "soak_s": "seconds of the soak",
        "sample_s": "seconds between /proc samples in the soak",
        "key_samples": "wrong-key refusals timed per class",
    }
    for name, (full, quick) in BOUNDS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"), type=type(full), default=None,
            help=f"{helps[name]} (default {full}; --quick {quick})",
        )  # fmt: skip
    parser.add_argument("--hit-rate", type=float, default=0.8,
                        help="GenAI cache-hit rate of the realistic mix (default 0.8)")  # fmt: skip
    args = parser.parse_args(argv)
    for name, (full, quick) in BOUNDS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.parts = [p.strip() for p in str(args.parts).split(",") if p.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"--parts: unknown {', '.join(unknown)} (known: {', '.join(PARTS)})")
    try:
        args.knee_steps = [int(s) for s in str(args.knee_steps).split(",") if s.strip()]
    except ValueError:
        parser.error("--knee-steps must be comma-separated whole numbers")
    if not args.knee_steps or min(args.knee_steps) < 1:
        parser.error("--knee-steps must be positive")
    if not 0 <= args.hit_rate <= 1:
        parser.error("--hit-rate must be between 0 and 1")
    for name in BOUNDS:
        value = getattr(args, name)
        if isinstance(value, int | float) and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def guarded(key: str, part: Callable[[], Section]) -> Section:
    """Run one part; a part that breaks is a failed section saying how, never a silent gap."""
    started = time.monotonic()
    try:
        section = part()
    except Exception as exc:  # reported in the section, and the run fails
        section = Section(key, TITLES[key])
        trace = traceback.format_exc()[-4000:]
        section.add("This part did not complete:", "", "```", trace, "```")
        section.check(f"{key}: the part ran to the end", False, f"{type(exc).__name__}: {exc}")
    section.seconds = time.monotonic() - started
    say(f"{key}: done in {section.seconds:.0f} s")
    return section


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                               check=False)  # fmt: skip
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def run_parts(args: argparse.Namespace, rs: ReportStack, out: Path) -> list[Section]:
    sections: list[Section] = []
    knee: Knee | None = None
    if "fuzz" in args.parts:
        sections.append(guarded("fuzz", lambda: fuzz_section(
            rs, out, examples=args.fuzz_examples, max_time_s=args.fuzz_max_time)))  # fmt: skip
    if "hostile" in args.parts:
        sections.append(guarded("hostile", lambda: hostile_section(
            rs, trickle_s=args.trickle_s, idle_connections=args.idle_connections,
            idle_hold_s=args.idle_hold_s)))  # fmt: skip
    if "faults" in args.parts:

        def faults_part() -> Section:
            section = faults_section(rs, hold_s=args.fault_hold_s)
            section.charts.append(charts.faults_chart(section.data, out / "faults-latency.png"))
            return section

        sections.append(guarded("faults", faults_part))
    if "load" in args.parts:

        def load_part() -> Section:
            nonlocal knee
            section, knee = load_section(
                rs, out, steps=args.knee_steps, step_s=args.step_s, mix_s=args.mix_s,
                hit_rate=args.hit_rate, bench_requests=args.bench_requests,
                judge_speed=args.bench_requests >= 1000,
            )  # fmt: skip
            section.charts.append(
                charts.knee_chart(section.data["steps"], KNEE_P99_MS, out / "load-knee.png")
            )
            return section

        sections.append(guarded("load", load_part))
    if "soak" in args.parts:

        def soak_part() -> Section:
            base = knee.below or (knee.steps[0] if knee and knee.steps else None) if knee else None
            stats = base.route("/classify") if base is not None else None
            knee_rps = stats.rps if stats is not None else 100.0
            section, _series, history, _run = soak_section(
                rs, out, target_rps=max(2.0, knee_rps / 2), seconds=args.soak_s,
                sample_s=args.sample_s, hit_rate=args.hit_rate,
            )  # fmt: skip
            if stats is None:
                section.add("(No knee was measured in this run: the soak ran at 50 rps.)", "")
            section.charts.append(
                charts.soak_resources_chart(section.data["series"], out / "soak-resources.png")
            )
            if history:
                section.charts.append(charts.soak_latency_chart(history, out / "soak-latency.png"))
            return section

        sections.append(guarded("soak", soak_part))
    if "keys" in args.parts:
        sections.append(guarded("keys", lambda: key_timing_section(
            rs, samples=args.key_samples)))  # fmt: skip
    return sections


def render(
    args: argparse.Namespace,
    argv: list[str],
    sections: list[Section],
    rs_settings: dict[str, str],
    started: datetime,
    seconds: float,
) -> str:
    lines = [
        "# Resilience report",
        "",
        f"- run: {started.strftime('%Y-%m-%d %H:%M:%S')} UTC, {seconds / 60:.1f} minutes"
        f"{' (--quick)' if args.quick else ''}",
        f"- command: `{shlex.join(['scripts/report-resilience', *argv])}`",
        f"- commit: {git_commit()}",
        f"- machine: {platform.node()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {platform.platform()}",
        "- stack: scripts/stack.py on free loopback ports, a private redis-server, genai-service "
        "on the local fake LLM (tests/fakes/fake_openai.py, Azure URL scheme); settings: "
        + ", ".join(f"`{k}={v}`" for k, v in sorted(rs_settings.items()) if k != "REDIS_URL"),
        "",
        "## Checks",
        "",
        "| part | check | verdict | seen |",
        "|---|---|---|---|",
    ]
    for section in sections:
        for check in section.checks:
            verdict = f"**{check.verdict}**" if check.verdict == "FAILED" else check.verdict
            detail = check.detail.replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| {section.key} | {check.name} | {verdict} | {detail} |")
    missing = [p for p in PARTS if p not in {s.key for s in sections}]
    lines.append("")
    if missing:
        lines += [f"Parts not run (--parts): {', '.join(missing)}.", ""]
    for section in sections:
        lines += [f"## {section.title}", "", f"({section.seconds:.0f} s)", "", *section.body]
        for chart in section.charts:
            lines += [f"![{chart.stem}]({chart.name})", ""]
    for key in missing:
        lines += [f"## {TITLES[key]}", "", "Not run in this report (--parts).", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    started = datetime.now(UTC)
    out = Path(args.out) / started.strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    say(f"report: {out}")
    t0 = time.monotonic()
    try:
        with report_stack(out / "stack", QUICK_STACK if args.quick else {}) as rs:
            settings = dict(rs.settings)
            sections = run_parts(args, rs, out)
    except StackError as exc:
        say(f"error: the stack did not start: {exc}")
        (out / "REPORT.md").write_text(f"# Resilience report\n\nThe stack did not start:\n\n"
                                       f"```\n{exc}\n```\n")  # fmt: skip
        return 2
    seconds = time.monotonic() - t0
    report = out / "REPORT.md"
    report.write_text(render(args, raw, sections, settings, started, seconds))
    results = {
        "started": started.isoformat(),
        "seconds": round(seconds, 1),
        "quick": args.quick,
        "settings": settings,
        "checks": [
            {"part": s.key, "check": c.name, "verdict": c.verdict, "detail": c.detail}
            for s in sections
            for c in s.checks
        ],
        "parts": {s.key: s.data for s in sections},
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    failed = [c for s in sections for c in s.checks if c.verdict == "FAILED"]
    say(f"report written: {report} ({seconds:.0f} s); {len(failed)} checks failed")
    for check in failed:
        say(f"  FAILED {check.name}: {check.detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
