"""Part 1: schemathesis over the merged OpenAPI document, with an admin key and without one,
every phase, counted per operation from its NDJSON event stream.

It runs the same command line as the bounded fuzz test of the suite
(`tests/e2e/test_e2e_fuzz.py`, with `tests/e2e/schemathesis.toml` and its exceptions), with more
examples and a time budget."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.resilience.common import Section, say
from scripts.resilience.stackup import ReportStack
from scripts.stack import REPO_ROOT

CONFIG = REPO_ROOT / "tests" / "e2e" / "schemathesis.toml"
PHASES = "examples,coverage,fuzzing,stateful"
# The CDS Hooks routes answer 503 (not configured) on a stack without CDS_CLIENTS, as this one
# is; their own tests fuzz them with signed tokens (as the suite's fuzz test says).
EXCLUDED_PATHS = "^/cds-services"


@dataclass
class OperationCount:
    """Cases and failures of one operation in one run."""

    cases: int = 0
    failed_cases: int = 0
    server_errors: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    failed_checks: Counter[str] = field(default_factory=Counter)
    phases: set[str] = field(default_factory=set)


@dataclass
class FuzzRun:
    name: str
    returncode: int
    seconds: float
    operations: dict[str, OperationCount]
    summary_lines: list[str]
    examples: list[str]
    tool_errors: list[str] = field(default_factory=list)
    """Errors of the fuzzer itself (an operation it could not finish), as `label: type: message`."""

    @property
    def cases(self) -> int:
        return sum(op.cases for op in self.operations.values())

    @property
    def failed(self) -> int:
        return sum(op.failed_cases for op in self.operations.values())

    @property
    def server_errors(self) -> int:
        return sum(op.server_errors for op in self.operations.values())


def read_tool_errors(path: Path) -> list[str]:
    """The fuzzer's own errors in its NDJSON events (NonFatalError: an exception inside
    schemathesis or Hypothesis while generating, not an answer of the API)."""
    out: list[str] = []
    for line in path.read_text().splitlines():
        error = json.loads(line).get("NonFatalError")
        if isinstance(error, dict):
            value = error.get("value") or {}
            out.append(f"{error.get('label', '?')}: {value.get('type')}: {value.get('message')}")
    return out


def read_events(path: Path) -> tuple[dict[str, OperationCount], list[str]]:
    """Per-operation counts from schemathesis's NDJSON events (one ScenarioFinished per
    operation and phase; each case's request, response and checks are in its recorder)."""
    operations: dict[str, OperationCount] = defaultdict(OperationCount)
    examples: list[str] = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not isinstance(finished, dict):
            continue
        recorder = finished.get("recorder") or {}
        label = str(recorder.get("label", "?"))
        op = operations[label]
        op.phases.add(str(finished.get("phase", "?")))
        checks: dict[str, list[dict[str, Any]]] = recorder.get("checks") or {}
        for case_id, interaction in (recorder.get("interactions") or {}).items():
            op.cases += 1
            response = interaction.get("response") or {}
            status = str(response.get("status_code", "no answer"))
            op.statuses[status] += 1
            if status.startswith("5"):
                op.server_errors += 1
            failing = [c["name"] for c in checks.get(case_id, []) if c.get("status") == "failure"]
            if failing:
                op.failed_cases += 1
                op.failed_checks.update(failing)
                if len(examples) < 10:
                    request = interaction.get("request") or {}
                    body = (request.get("body") or {}).get("$base64")
                    sent = base64.b64decode(body)[:300].decode(errors="replace") if body else ""
                    examples.append(
                        f"{label} -> {status}: {', '.join(sorted(set(failing)))}; sent {sent!r}"
                    )
    return dict(operations), examples


def run_fuzz(
    rs: ReportStack, out_dir: Path, *, name: str, key: str | None, examples: int, max_time_s: int
) -> FuzzRun:
    report_dir = out_dir / f"schemathesis-{name}"
    events = report_dir / "events.ndjson"
    argv = [
        sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file", str(CONFIG),
        "run", f"{rs.gateway_url}/openapi.json",
        "--phases", PHASES,
        "--max-examples", str(examples),
        "--max-time", str(max_time_s),
        "--exclude-path-regex", EXCLUDED_PATHS,
        "--workers", "2",
        "--request-timeout", "60",
        "--seed", "2019",
        "--report", "ndjson", "--report-dir", str(report_dir),
        "--report-ndjson-path", str(events),
    ]  # fmt: skip
    if key is not None:
        argv += ["-H", f"X-API-Key: {key}"]
    started = time.monotonic()
    # The budget is schemathesis's own (--max-time); this bound only catches a hung run.
    run = subprocess.run(
        argv, capture_output=True, text=True, timeout=max_time_s * 4 + 300, check=False
    )
    seconds = time.monotonic() - started
    (report_dir / "output.txt").write_text(run.stdout + "\n" + run.stderr)
    operations, failures = read_events(events) if events.is_file() else ({}, [])
    tool_errors = read_tool_errors(events) if events.is_file() else []
    tail = run.stdout.split("SUMMARY")[-1].strip().splitlines()
    summary = [ln.strip() for ln in tail if ln.strip() and not ln.startswith("=")][:30]
    return FuzzRun(name, run.returncode, seconds, operations, summary, failures, tool_errors)


def fuzz_section(rs: ReportStack, out_dir: Path, *, examples: int, max_time_s: int) -> Section:
    section = Section("fuzz", "1. Fuzzing from the merged OpenAPI document (schemathesis)")
    say(f"fuzz: with and without a key at once, {examples} examples per operation and phase")
    # The two runs at once: they share nothing but the stack.
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(
            pool.map(
                lambda named: run_fuzz(
                    rs, out_dir, name=named[0], key=named[1], examples=examples,
                    max_time_s=max_time_s,
                ),
                (("admin-key", rs.admin_key), ("no-key", None)),
            )
        )  # fmt: skip
    section.add(
        f"`python -m schemathesis.cli run` with `tests/e2e/schemathesis.toml`, phases {PHASES}, "
        f"`--max-examples {examples}`, `--max-time {max_time_s}`, seed 2019, every operation "
        f"but `{EXCLUDED_PATHS}` (CDS Hooks needs signed JWTs), with an admin key and without a "
        "key (the two runs at once). A case is one request; a failed case is one with any "
        "failed check.",
        "",
    )
    rows: list[list[object]] = []
    for run in runs:
        for label in sorted(run.operations):
            op = run.operations[label]
            statuses = ", ".join(f"{s}: {n}" for s, n in sorted(op.statuses.items()))
            failed = ", ".join(f"{c} x{n}" for c, n in op.failed_checks.most_common()) or "-"
            rows.append([run.name, label, op.cases, op.failed_cases, op.server_errors, statuses,
                         failed])  # fmt: skip
    section.table(["key", "operation", "cases", "failed", "5xx", "statuses", "failed checks"], rows)
    for run in runs:
        section.add(
            f"- {run.name}: {run.cases:,} cases over {len(run.operations)} operations in "
            f"{run.seconds:.0f} s, {run.failed} failed, {run.server_errors} answered 5xx; "
            f"schemathesis exit status {run.returncode}."
        )
        for example in run.examples:
            section.add(f"  - {example}")
    section.add("")
    section.data = {
        run.name: {
            "returncode": run.returncode,
            "seconds": round(run.seconds, 1),
            "cases": run.cases,
            "failed": run.failed,
            "server_errors": run.server_errors,
            "operations": {
                label: {
                    "cases": op.cases,
                    "failed": op.failed_cases,
                    "5xx": op.server_errors,
                    "statuses": dict(op.statuses),
                    "failed_checks": dict(op.failed_checks),
                    "phases": sorted(op.phases),
                }
                for label, op in run.operations.items()
            },
            "summary": run.summary_lines,
        }
        for run in runs
    }
    for run in runs:
        section.check(f"fuzzing ({run.name}): cases ran", run.cases > 0, f"{run.cases:,} cases")
        section.check(
            f"fuzzing ({run.name}): no 5xx", run.server_errors == 0, f"{run.server_errors} 5xx"
        )
        # A non-zero exit with no failed case and only the fuzzer's own errors is not an answer
        # of the API: those operations are reported as not fully fuzzed, with the error, rather
        # than as failed (seen: CPython 3.11.7's "AST constructor recursion depth mismatch"
        # SystemError inside Hypothesis).
        explained = run.returncode == 0 or (run.failed == 0 and bool(run.tool_errors))
        detail = f"{run.failed} failed cases, exit status {run.returncode}"
        if run.tool_errors:
            detail += (
                f"; {len(run.tool_errors)} operation(s) not fully fuzzed, the fuzzer's own "
                f"error: {run.tool_errors[0]}"
            )
        section.check(
            f"fuzzing ({run.name}): every check of every case held",
            run.failed == 0 and explained,
            detail,
        )
    return section
