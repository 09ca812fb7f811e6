"""What assessments cost: tokens per answer, summed in /performance, and the daily budget."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import TYPE_CHECKING, Any

from sepsis_genai.offline import OFFLINE_MODEL_NAME
from sepsis_genai.tokens import TokenBudget, TokenUsage

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.fakes.fake_openai import FakeOpenAI


def fake_tokens(text: str) -> int:
    """The local server's count: a token per four characters."""
    return max(1, len(text) // 4)


async def test_tokens_of_every_turn_are_reported_and_summed(
    fake_llm: FakeOpenAI,
    llm_settings: Any,
    run_app: Any,
    guide_request: dict[str, Any],
    answer: Callable[..., dict[str, Any]],
) -> None:
    fake_llm.queue({"kind": "invalid_json"}, {"kind": "answer", "answer": answer(risk=77)})
    other = {**guide_request, "vitals": {**guide_request["vitals"], "HR": 131}}
    async with run_app(llm_settings()) as client:
        repaired = (await client.post("/genai-classify", json=guide_request)).json()
        plain = (await client.post("/genai-classify", json=other)).json()
        performance = (await client.get("/performance")).json()
    first, repair, third = fake_llm.requests
    # The bad answer's turn costs too: both turns are on the repaired answer.
    assert repaired["llm"]["attempts"] == 2
    assert repaired["llm"]["prompt_tokens"] == fake_tokens(first.prompt_text) + fake_tokens(
        repair.prompt_text
    )
    assert plain["llm"]["prompt_tokens"] == fake_tokens(third.prompt_text)
    assert plain["llm"]["completion_tokens"] > 0
    llm = performance["llm"]
    assert llm["prompt_tokens"] == repaired["llm"]["prompt_tokens"] + plain["llm"]["prompt_tokens"]
    assert llm["completion_tokens"] == (
        repaired["llm"]["completion_tokens"] + plain["llm"]["completion_tokens"]
    )
    assert llm["prompt_tokens_per_assessment"] == round(llm["prompt_tokens"] / 2, 1)
    assert llm["token_budget"]["used_today"] == llm["prompt_tokens"] + llm["completion_tokens"]
    assert llm["token_budget"]["daily_limit"] is None


async def test_a_shared_call_is_counted_once(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any, guide_request: dict[str, Any]
) -> None:
    fake_llm.hold()
    async with run_app(llm_settings()) as client:
        tasks = [
            asyncio.create_task(client.post("/genai-classify", json=guide_request))
            for _ in range(3)
        ]
        # Released once all three wait on the one call (bounded wait).
        for _ in range(1000):
            if (await client.get("/performance")).json()["llm"]["coalesced"] == 2:
                break
            await asyncio.sleep(0.01)
        fake_llm.release()
        bodies = [r.json() for r in await asyncio.gather(*tasks)]
        performance = (await client.get("/performance")).json()
    spent = [b["llm"]["prompt_tokens"] for b in bodies]
    assert sorted(b["llm"]["coalesced"] for b in bodies) == [False, True, True]
    assert sorted(spent)[:2] == [0, 0]
    assert performance["llm"]["prompt_tokens"] == max(spent) > 0


async def test_past_the_daily_budget_the_offline_rules_answer_and_say_so(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any, guide_request: dict[str, Any]
) -> None:
    other = {**guide_request, "vitals": {**guide_request["vitals"], "HR": 131}}
    # Set to fail on LLM errors: a used-up budget is not one, so still no 503.
    settings = llm_settings(GENAI_DAILY_TOKEN_BUDGET=50, GENAI_FAIL_ON_LLM_ERROR=True)
    async with run_app(settings) as client:
        first = await client.post("/genai-classify", json=guide_request)
        second = await client.post("/genai-classify", json=other)
        health = (await client.get("/genai-health")).json()
        performance = (await client.get("/performance")).json()
    assert first.json()["llm"]["status"] == "ok"
    assert first.json()["llm"]["prompt_tokens"] > 50  # the first call used the day's budget up
    assert second.status_code == 200
    body = second.json()
    assert fake_llm.calls == 1
    assert body["llm"]["status"] == "budget_exhausted"
    assert body["llm"]["attempts"] == 0
    assert body["llm"]["prompt_tokens"] == 0
    assert body["degraded"] is True
    assert body["probability_source"] == "not_estimated"
    assert "daily token budget is used up" in body["rationale"]
    assert body["model"]["name"] == OFFLINE_MODEL_NAME
    assert health["status"] == "degraded"
    assert "token budget" in (health["reason"] or "")
    budget = performance["llm"]["token_budget"]
    assert budget["exhausted"] is True
    assert budget["daily_limit"] == 50
    assert budget["offline_answers"] == 1


async def test_a_cached_answer_costs_nothing_and_is_served_past_the_budget(
    fake_llm: FakeOpenAI, cached_llm_settings: Any, run_app: Any, guide_request: dict[str, Any]
) -> None:
    async with run_app(cached_llm_settings(GENAI_DAILY_TOKEN_BUDGET=50)) as client:
        await client.post("/genai-classify", json=guide_request)
        again = (await client.post("/genai-classify", json=guide_request)).json()
    assert again["llm"]["status"] == "cached"
    assert again["llm"]["prompt_tokens"] == 0
    assert fake_llm.calls == 1


def test_the_budget_starts_again_each_utc_day() -> None:
    day = [date(2026, 12, 3)]
    budget = TokenBudget(100, today=lambda: day[0])
    budget.record(TokenUsage(prompt=80, completion=30))
    on_the_day = (budget.exhausted, budget.used_today)
    day[0] = date(2026, 12, 4)
    assert on_the_day == (True, 110)
    assert (budget.exhausted, budget.used_today) == (False, 0)


def test_no_limit_is_never_exhausted() -> None:
    budget = TokenBudget(None)
    budget.record(TokenUsage(prompt=10**9, completion=10**9))
    assert not budget.exhausted
