"""The LLM client on its own: retry timing decisions, Retry-After, coalescing, cancellation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from sepsis_genai.config import LLMTarget
from sepsis_genai.llm import LLMClient, LLMOverloaded, build_openai_client
from sepsis_genai.llm_retry import retry_after_s
from sepsis_genai.narrative import SYSTEM_PROMPT, Prompt
from sepsis_genai.schemas import LLMAnswer, LLMStatus

if TYPE_CHECKING:
    from tests.fakes.fake_openai import FakeOpenAI

PROMPT = Prompt(system=SYSTEM_PROMPT, narrative="Patient: age 60 years.", notes_truncated=False)


class RecordingSleep:
    """Stands in for asyncio.sleep: records the delays asked for, waits no real time."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@asynccontextmanager
async def llm_client(fake: FakeOpenAI, **overrides: Any) -> AsyncIterator[LLMClient]:
    target = LLMTarget(
        provider="openai",
        model="gpt-test",
        model_label="gpt-test",
        api_key=fake.api_key,
        endpoint=fake.openai_base_url,
        api_version=None,
    )
    options: dict[str, Any] = {
        "temperature": 0.0,
        "max_output_tokens": 400,
        "deadline_s": 30.0,
        "max_retries": 2,
        "retry_base_s": 0.5,
        "retry_max_s": 8.0,
        "max_concurrency": 8,
        "rng": random.Random(7),
    }
    options.update(overrides)
    client = LLMClient(
        client=build_openai_client(target, max_connections=8), target=target, **options
    )
    try:
        yield client
    finally:
        await client.aclose()


async def test_retry_after_is_honoured(
    fake_llm: FakeOpenAI, answer: Callable[..., dict[str, Any]]
) -> None:
    fake_llm.queue(
        {"kind": "status", "status": 429, "retry_after": 2},
        {"kind": "answer", "answer": answer()},
    )
    sleep = RecordingSleep()
    async with llm_client(fake_llm, sleep=sleep) as client:
        outcome = await client.assess(PROMPT, key="k1")
    assert outcome.status is LLMStatus.OK
    assert outcome.attempts == 2
    [delay] = sleep.delays
    assert 2.0 <= delay <= 2.0 + 0.3  # never earlier than asked, a little jitter after


async def test_retry_after_beyond_the_deadline_gives_up_at_once(fake_llm: FakeOpenAI) -> None:
    fake_llm.queue({"kind": "status", "status": 429, "retry_after": 30})
    sleep = RecordingSleep()
    async with llm_client(fake_llm, sleep=sleep, deadline_s=5.0) as client:
        outcome = await client.assess(PROMPT, key="k2")
    assert outcome.status is LLMStatus.RATE_LIMITED
    assert outcome.error_kind == "rate_limited"
    assert outcome.attempts == 1
    assert sleep.delays == []
    assert fake_llm.calls == 1


async def test_backoff_is_exponential_with_full_jitter_and_bounded(fake_llm: FakeOpenAI) -> None:
    fake_llm.configure(default={"kind": "status", "status": 502})
    sleep = RecordingSleep()
    async with llm_client(fake_llm, sleep=sleep, max_retries=4, retry_max_s=1.5) as client:
        outcome = await client.assess(PROMPT, key="k3")
    assert outcome.status is LLMStatus.FAILED
    assert outcome.error_kind == "server_error"
    assert outcome.attempts == 5
    assert len(sleep.delays) == 4
    for n, delay in enumerate(sleep.delays, start=1):
        assert 0 <= delay <= min(1.5, 0.5 * 2 ** (n - 1))
    assert fake_llm.calls == 5


async def test_client_errors_are_not_retried(fake_llm: FakeOpenAI) -> None:
    fake_llm.queue({"kind": "status", "status": 400})
    sleep = RecordingSleep()
    async with llm_client(fake_llm, sleep=sleep) as client:
        outcome = await client.assess(PROMPT, key="k4")
    assert outcome.status is LLMStatus.FAILED
    assert outcome.error_kind == "bad_request"
    assert sleep.delays == []


async def test_unreachable_server_is_a_bounded_connection_failure() -> None:
    target = LLMTarget(
        provider="openai",
        model="m",
        model_label="m",
        api_key="k",
        endpoint="http://127.0.0.1:9/v1",  # discard port: nothing listens
        api_version=None,
    )
    sleep = RecordingSleep()
    client = LLMClient(
        client=build_openai_client(target, max_connections=2),
        target=target,
        temperature=0,
        max_output_tokens=100,
        deadline_s=10,
        max_retries=1,
        retry_base_s=0.01,
        retry_max_s=0.01,
        max_concurrency=2,
        sleep=sleep,
    )
    try:
        outcome = await client.assess(PROMPT, key="k5")
    finally:
        await client.aclose()
    assert outcome.status is LLMStatus.FAILED
    assert outcome.error_kind == "connection_error"
    assert outcome.attempts == 2
    assert client.stats.last_failure_kind == "connection_error"


async def test_a_cancelled_waiter_does_not_cancel_the_shared_call(
    fake_llm: FakeOpenAI, answer: Callable[..., dict[str, Any]]
) -> None:
    fake_llm.queue({"kind": "answer", "answer": answer(risk=55)})
    fake_llm.hold()
    stored: list[LLMAnswer] = []

    async def store(a: LLMAnswer) -> None:
        stored.append(a)

    async with llm_client(fake_llm) as client:
        first = asyncio.create_task(client.assess(PROMPT, key="same", on_answer=store))
        second = asyncio.create_task(client.assess(PROMPT, key="same", on_answer=store))
        for _ in range(500):
            if fake_llm.in_flight == 1 and client.stats.coalesced == 1:
                break
            await asyncio.sleep(0.01)
        first.cancel()
        fake_llm.release()
        outcome = await second
        with pytest.raises(asyncio.CancelledError):
            await first
    assert outcome.status is LLMStatus.OK
    assert outcome.coalesced is True
    assert outcome.answer is not None
    assert outcome.answer.risk_score == 55
    assert fake_llm.calls == 1
    assert len(stored) == 1  # the cache write runs once, inside the shared call


async def test_calls_past_the_slots_and_the_queue_are_shed_at_once_with_a_503(
    fake_llm: FakeOpenAI, answer: Callable[..., dict[str, Any]]
) -> None:
    fake_llm.configure(default={"kind": "answer", "answer": answer()})
    fake_llm.hold()  # an LLM that does not answer
    async with llm_client(fake_llm, max_concurrency=2, max_queued=1) as client:
        held = [asyncio.create_task(client.assess(PROMPT, key=f"k{i}")) for i in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(LLMOverloaded) as shed:
            await client.assess(PROMPT, key="one-too-many")
        # the same patient as a call in flight is not a new call: it shares that one
        same = asyncio.create_task(client.assess(PROMPT, key="k0"))
        await asyncio.sleep(0)
        fake_llm.release()
        outcomes = await asyncio.gather(*held, same)
    assert shed.value.status == 503
    assert shed.value.headers["Retry-After"] == "2"
    assert shed.value.details == {"max_concurrency": 2, "max_queued": 1}
    assert [o.status for o in outcomes] == [LLMStatus.OK] * 4
    assert client.stats.shed == 1
    assert fake_llm.calls == 3


async def test_different_keys_are_not_coalesced(fake_llm: FakeOpenAI) -> None:
    async with llm_client(fake_llm) as client:
        await asyncio.gather(client.assess(PROMPT, key="a"), client.assess(PROMPT, key="b"))
    assert fake_llm.calls == 2


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-4"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_forms(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(httpx2.Headers(headers)) == expected


async def test_fenced_markdown_json_is_accepted(fake_llm: FakeOpenAI) -> None:
    fake_llm.queue(
        {
            "kind": "content",
            "content": '```json\n{"risk_score": 30, "priority": "Elevated", '
            '"sepsis_probability_6h": 0.2, "rationale": "r", "key_findings": [], '
            '"recommended_actions": []}\n```',
        }
    )
    async with llm_client(fake_llm) as client:
        outcome = await client.assess(PROMPT, key="md")
    assert outcome.status is LLMStatus.OK
    assert outcome.attempts == 1
