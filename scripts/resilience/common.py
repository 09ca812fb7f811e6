"""What every part of the report shares: figures, checks, sections and request bodies."""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sepsis_shared.patient import FLAT_EXAMPLE, STRUCTURED_EXAMPLE

Verdict = Literal["held", "FAILED", "not judged"]

CLASSIFY_BODY: dict[str, Any] = dict(FLAT_EXAMPLE)
"""The original deployment guide's /classify request (DESIGN §8)."""
GENAI_BODY: dict[str, Any] = dict(STRUCTURED_EXAMPLE)
"""The original deployment guide's /genai-classify request (DESIGN §8)."""


def genai_patient(tag: str) -> dict[str, Any]:
    """The guide's GenAI patient with a note that makes it unique (a cache miss: an LLM call)."""
    body = dict(GENAI_BODY)
    body["notes"] = f"{GENAI_BODY['notes']}; bed round {tag}"
    return body


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def spread(values: Sequence[float]) -> dict[str, float]:
    """Count, median, quartiles, p95, p99 and max of some values."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p25": percentile(values, 25),
        "p50": statistics.median(values),
        "p75": percentile(values, 75),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
    }


def ms(value: float | None, digits: int = 1) -> str:
    """A duration in milliseconds for a table cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def secs(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.2f} s"


@dataclass(frozen=True)
class Check:
    """One promise of the system, as this run saw it."""

    name: str
    verdict: Verdict
    detail: str = ""


@dataclass
class Section:
    """One part of the report: its Markdown, its checks, its raw figures and its charts."""

    key: str
    title: str
    body: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    charts: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, *lines: str) -> None:
        self.body.extend(lines)

    def check(self, name: str, ok: bool | None, detail: str = "") -> bool:
        """Record a check (None: not judged) and return whether it held."""
        verdict: Verdict = "not judged" if ok is None else "held" if ok else "FAILED"
        self.checks.append(Check(name, verdict, detail))
        return bool(ok)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header))
        for row in rows:
            cells = [str(c).replace("|", "\\|").replace("\n", " ") for c in row]
            self.add("| " + " | ".join(cells) + " |")
        self.add("")


def wait_until(probe: Callable[[], bool], *, within_s: float, every_s: float = 0.1) -> bool:
    """Poll `probe` until it is true; False when `within_s` passes first."""
    deadline = time.monotonic() + within_s
    while True:
        if probe():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)


def say(text: str) -> None:
    """Progress on stderr (the report is the output)."""
    print(text, file=sys.stderr, flush=True)  # noqa: T201
