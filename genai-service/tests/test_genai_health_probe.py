"""`/genai-health` asks an idle LLM itself: one cheap call, at most once per interval."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.fake_openai import FakeOpenAI


async def test_an_idle_llm_is_probed_once_per_interval(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any
) -> None:
    async with run_app(llm_settings(GENAI_HEALTH_PROBE_INTERVAL_S=60)) as client:
        first = (await client.get("/genai-health")).json()
        second = (await client.get("/genai-health")).json()
        performance = (await client.get("/performance")).json()
    assert fake_llm.calls == 1
    probe = fake_llm.requests[0].body
    assert probe["max_tokens"] == 1
    assert "response_format" not in probe
    assert first["status"] == "available"
    assert first["llm_probe"]["ok"] is True
    assert first["llm_probe"]["interval_s"] == 60
    assert second["llm_probe"]["at"] == first["llm_probe"]["at"]
    # A probe is no assessment, but its tokens are spent all the same.
    assert performance["llm"]["assessments"] == 0
    assert performance["llm"]["probes"] == 1
    assert performance["llm"]["prompt_tokens"] > 0


async def test_a_failing_probe_degrades_health_and_a_later_one_recovers_it(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any
) -> None:
    fake_llm.configure(default={"kind": "status", "status": 401})
    async with run_app(llm_settings(GENAI_HEALTH_PROBE_INTERVAL_S=0.05)) as client:
        failing = (await client.get("/genai-health")).json()
        fake_llm.configure(default={"kind": "computed"})
        await asyncio.sleep(0.1)
        recovered = (await client.get("/genai-health")).json()
    assert failing["status"] == "degraded"
    assert failing["reason"] == "the last LLM probe failed (auth_error)"
    assert failing["llm_probe"]["error_kind"] == "auth_error"
    assert recovered["status"] == "available"
    assert recovered["llm_probe"]["ok"] is True
    assert fake_llm.calls == 2


async def test_a_probe_unanswered_within_its_timeout_is_a_failure(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any
) -> None:
    fake_llm.hold()
    async with run_app(llm_settings(GENAI_DEADLINE_S=0.3)) as client:
        health = (await client.get("/genai-health")).json()
    assert health["status"] == "degraded"
    assert health["llm_probe"]["error_kind"] == "upstream_timeout"
    assert health["llm_probe"]["latency_ms"] < 2000


async def test_recent_assessments_need_no_probe(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any, guide_request: dict[str, Any]
) -> None:
    async with run_app(llm_settings(GENAI_HEALTH_PROBE_INTERVAL_S=60)) as client:
        await client.post("/genai-classify", json=guide_request)
        health = (await client.get("/genai-health")).json()
    assert fake_llm.calls == 1  # the assessment only
    assert health["status"] == "available"
    assert health["llm_probe"]["at"] is None


async def test_probing_can_be_switched_off(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any
) -> None:
    async with run_app(llm_settings(GENAI_HEALTH_PROBE_INTERVAL_S=0)) as client:
        health = (await client.get("/genai-health")).json()
    assert fake_llm.calls == 0
    assert health["llm_probe"] == {
        "interval_s": 0,
        "at": None,
        "ok": None,
        "error_kind": None,
        "latency_ms": None,
    }


async def test_concurrent_health_checks_share_one_probe(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any
) -> None:
    fake_llm.configure(latency_s=0.2)
    async with run_app(llm_settings(GENAI_HEALTH_PROBE_INTERVAL_S=60)) as client:
        bodies = await asyncio.gather(*(client.get("/genai-health") for _ in range(5)))
    assert fake_llm.calls == 1
    assert {b.json()["status"] for b in bodies} == {"available"}
