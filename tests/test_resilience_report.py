"""The resilience report command (`scripts/report-resilience`): run end to end in --quick mode
it starts its own stack, runs every part and writes REPORT.md with every section, its charts
and results.json; and the judgements it rests on (growth against noise, silent 200s, the
wrong keys it times) are right on data made here."""

from __future__ import annotations

import importlib
import json
import math
import os
import random
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ROOT / "scripts" / "report-resilience"
SECTIONS = (
    "## 1. Fuzzing from the merged OpenAPI document (schemathesis)",
    "## 2. Hostile input the fuzzers miss",
    "## 3. Faults under steady load",
    "## 4. Load (locust) and the gateway's tail at 32 clients",
    "## 5. Soak at half the knee",
    "## 6. Time to refuse a wrong key",
)
CHARTS = ("faults-latency.png", "load-knee.png", "soak-resources.png", "soak-latency.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _module(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    """A module of the report's package (scripts/ is not installed; it runs from the root)."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module(name)


@pytest.mark.e2e
@pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="the report stops and restarts a Redis of its own: needs redis-server "
    "(Debian/Ubuntu: apt-get install redis-server)",
)
def test_quick_report_runs_every_part_and_writes_every_section(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_OPENAI_", "OPENAI_"))}
    run = subprocess.run(
        [str(COMMAND), "--quick", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reports = list(tmp_path.glob("*/REPORT.md"))
    assert len(reports) == 1, run.stderr[-5000:]
    folder = reports[0].parent
    text = reports[0].read_text()
    assert run.returncode == 0, text[:6000] + run.stderr[-3000:]
    for title in SECTIONS:
        assert title in text
    assert "FAILED" not in text
    assert "did not complete" not in text
    for chart in CHARTS:
        assert (folder / chart).read_bytes()[:8] == PNG_MAGIC, chart
        assert f"]({chart})" in text

    results = json.loads((folder / "results.json").read_text())
    parts = results["parts"]
    assert set(parts) == {"fuzz", "hostile", "faults", "load", "soak", "keys"}
    for name in ("admin-key", "no-key"):
        assert parts["fuzz"][name]["cases"] > 0
        assert parts["fuzz"][name]["operations"]
    assert {c["path"] for c in parts["hostile"]["cases"]} >= {"/classify", "/genai-classify"}
    assert parts["hostile"]["trickle"]["status"] == 408
    faults = parts["faults"]["faults"]
    assert len(faults) == 7
    assert all(f["detect_s"] is not None and f["recover_s"] is not None for f in faults)
    assert parts["load"]["steps"]
    assert parts["load"]["bench_gateway"]["runs"]["gateway"]["32"]["requests"] > 0
    assert len(parts["soak"]["series"]["t"]) >= 3
    assert set(parts["soak"]["series"]["rss_mib"]) >= {"gateway", "ml-service", "genai-service"}
    assert parts["keys"]["median_us"]
    assert all(c["verdict"] in ("held", "not judged") for c in results["checks"])


def test_growth_is_flagged_past_the_noise_and_not_within_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    soak = _module(monkeypatch, "scripts.resilience.soak")
    rng = random.Random(7)
    flat = [200 + rng.uniform(-3, 3) for _ in range(120)]
    leaking = [200 + i * 0.5 + rng.uniform(-3, 3) for i in range(120)]
    assert soak.growth_of(flat, floor=8.0).flagged is False
    grown = soak.growth_of(leaking, floor=8.0)
    assert grown.flagged is True
    assert grown.growth > 30
    assert soak.growth_of(flat[:5], floor=8.0).flagged is None  # too few samples to judge


def test_a_failure_passed_off_as_a_200_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    faults = _module(monkeypatch, "scripts.resilience.faults")
    judge = faults.judge_answer
    failed_llm = {"llm": {"status": "failed"}, "degraded": False, "risk_score": 50}
    assert judge("/genai-classify", 200, failed_llm, 1)[0] == "silent"
    assert judge("/genai-classify", 200, failed_llm | {"degraded": True}, 1)[0] == "degraded"
    assert judge("/genai-classify", 200, {"llm": {"status": "ok"}, "degraded": False}, 1)[0] == "ok"
    envelope = {"error": {"code": "upstream_unavailable", "request_id": "x"}}
    assert judge("/classify", 503, envelope, 1) == ("error", "upstream_unavailable")
    assert judge("/classify", 503, {"detail": "down"}, 1)[0] == "malformed"
    # A batch that drops an item, or answers one with neither a result nor an error, is silent.
    answered = {"risk_score": 40.0, "index": 0}
    assert judge("/classify-batch", 200, {"results": [answered]}, 2)[0] == "silent"
    assert judge("/classify-batch", 200, {"results": [answered, {"index": 1}]}, 2)[0] == "silent"
    item = {"index": 1, "error": {"code": "invalid_input", "message": "bad"}}
    assert judge("/classify-batch", 200, {"results": [answered, item]}, 2)[0] == "ok"
    genai_items = [{"ok": True, "assessment": failed_llm}, {"ok": False, "error": {"code": "x"}}]
    assert judge("/genai-classify-batch", 200, {"results": genai_items}, 2)[0] == "silent"


def test_the_wrong_keys_share_exactly_the_prefix_they_are_meant_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = _module(monkeypatch, "scripts.resilience.keytiming")
    rng = random.Random(3)
    valid = "k" * 10 + "Q" * 33
    for shared in (0, len(valid) // 2, len(valid) - 1):
        wrong = keys.wrong_key(valid, shared, rng)
        assert len(wrong) == len(valid)
        assert wrong[:shared] == valid[:shared]
        assert wrong[shared] != valid[shared]
    same = [100.0 + rng.gauss(0, 5) for _ in range(400)]
    other = [100.0 + rng.gauss(0, 5) for _ in range(400)]
    shifted = [v + 20.0 for v in other]
    assert keys.permutation_p(same, other, rounds=500, rng=rng) > 0.01
    assert keys.permutation_p(same, shifted, rounds=500, rng=rng) < 0.01
    assert math.isclose(keys.median_gap([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]), 3.0)
