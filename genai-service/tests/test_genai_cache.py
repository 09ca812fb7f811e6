"""The Redis cache of LLM answers, on a real Redis (and a redis-server stopped mid-test)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
import redis

from sepsis_genai import pipeline
from sepsis_genai.cache import AnswerCache, cache_key, canonical_json
from sepsis_genai.guardrail import load_guardrail_config
from sepsis_genai.schemas import LLMAnswer
from sepsis_shared.assessment import Priority
from sepsis_shared.settings import CALLER_ROLE_HEADER

AS_ADMIN = {CALLER_ROLE_HEADER: "admin"}  # what the gateway adds for an admin key

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.fakes.fake_openai import FakeOpenAI

KEY_RE = re.compile(r"^(?P<ns>.+):v1:(?P<hash>[0-9a-f]{64})$")

SHOCK_PATIENT: dict[str, Any] = {
    "patient_id": "CACHE-SHOCK-1",
    "vitals": {
        "HR": 131,
        "SBP": [76, 84, 95],
        "MAP": 54,
        "Resp": 30,
        "Lactate": 6.2,
        "Vasopressors": 1,
        "GCS": 11,
    },
    "notes": "Mottled knees, cool peripheries, confused. Noradrenaline increased twice.",
}


def keys(redis_url: str, namespace: str) -> list[str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return sorted(client.scan_iter(match=f"{namespace}:*"))
    finally:
        client.close()


def test_key_is_namespaced_versioned_sha256_of_canonical_json() -> None:
    material = {"b": 1, "a": {"z": "é", "y": [1, 2]}}
    same_in_other_order = {"a": {"y": [1, 2], "z": "é"}, "b": 1}
    key = cache_key("sepsis:genai", material)
    assert key == cache_key("sepsis:genai", same_in_other_order)
    match = KEY_RE.match(key)
    assert match is not None
    assert match["ns"] == "sepsis:genai"
    assert canonical_json(material) == '{"a":{"y":[1,2],"z":"é"},"b":1}'
    assert key != cache_key("sepsis:genai", {**material, "b": 2})


async def test_miss_then_hit_with_ttl_and_no_patient_data_in_redis(
    fake_llm: FakeOpenAI,
    cached_llm_settings: Any,
    run_app: Any,
    redis_url: str,
    namespace: str,
    guide_request: dict[str, Any],
) -> None:
    async with run_app(cached_llm_settings(GENAI_CACHE_TTL_S=120)) as client:
        first = (await client.post("/genai-classify", json=guide_request)).json()
        second = (await client.post("/genai-classify", json=guide_request)).json()
        health = (await client.get("/genai-health")).json()
        perf = (await client.get("/performance")).json()
    assert fake_llm.calls == 1
    assert first["llm"]["status"] == "ok"
    assert first["llm"]["cached"] is False
    assert second["llm"]["status"] == "cached"
    assert second["llm"]["cached"] is True
    assert second["llm"]["attempts"] == 0
    assert second["degraded"] is False
    assert second["risk_score"] == first["risk_score"]
    assert second["rationale"] == first["rationale"]
    assert health["cache"] == {
        "state": "up",
        "hits": 1,
        "misses": 1,
        "errors": 0,
        "hit_rate": 0.5,
        "ttl_s": 120,
    }
    assert perf["cache"]["hit_rate"] == 0.5
    assert perf["cache"]["writes"] == 1

    [key] = keys(redis_url, namespace)
    assert KEY_RE.match(key)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        # the sync client's return types are a union with Awaitable; these are plain values
        ttl = cast("int", client.ttl(key))
        stored = cast("str | None", client.get(key))
    finally:
        client.close()
    assert 0 < ttl <= 120
    assert stored is not None
    for leak in ("TEST001", "mottled", "lethargic", "118"):
        assert leak not in key
    for leak in ("TEST001", "mottled", "lethargic"):
        assert leak not in stored
    # What is stored is the validated LLM answer, not the response.
    entry = json.loads(stored)
    assert set(entry["answer"]) == {
        "risk_score",
        "priority",
        "sepsis_probability_6h",
        "rationale",
        "key_findings",
        "recommended_actions",
    }
    assert "guardrail" not in entry


async def test_expired_entry_calls_the_llm_again(
    fake_llm: FakeOpenAI,
    cached_llm_settings: Any,
    run_app: Any,
    redis_url: str,
    namespace: str,
    guide_request: dict[str, Any],
) -> None:
    async with run_app(cached_llm_settings()) as client:
        await client.post("/genai-classify", json=guide_request)
        [key] = keys(redis_url, namespace)
        expirer = redis.Redis.from_url(redis_url)
        try:
            expirer.pexpire(key, 1)
            for _ in range(200):  # Redis expires lazily on access; bounded wait
                if not expirer.exists(key):
                    break
                await asyncio.sleep(0.005)
        finally:
            expirer.close()
        again = (await client.post("/genai-classify", json=guide_request)).json()
    assert again["llm"]["status"] == "ok"
    assert fake_llm.calls == 2


async def test_key_changes_with_model_and_prompt_version(
    fake_llm: FakeOpenAI,
    cached_llm_settings: Any,
    run_app: Any,
    redis_url: str,
    namespace: str,
    guide_request: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def status_with(**overrides: Any) -> str:
        async with run_app(cached_llm_settings(**overrides)) as client:
            body = (await client.post("/genai-classify", json=guide_request)).json()
        return str(body["llm"]["status"])

    assert await status_with() == "ok"
    assert await status_with() == "cached"
    assert await status_with(OPENAI_MODEL="gpt-other") == "ok"  # another model: new key
    assert await status_with(GENAI_TEMPERATURE=0.3) == "ok"  # another temperature: new key
    monkeypatch.setattr(pipeline, "PROMPT_VERSION", "test-next")
    assert await status_with() == "ok"  # another prompt version: new key
    monkeypatch.undo()
    assert await status_with() == "cached"  # the original entry is still there
    assert fake_llm.calls == 4
    assert len(keys(redis_url, namespace)) == 4


async def test_guardrail_runs_after_the_cache(
    fake_llm: FakeOpenAI,
    cached_llm_settings: Any,
    run_app: Any,
    tmp_path: Path,
    answer: Callable[..., dict[str, Any]],
) -> None:
    # A cached answer that under-calls shock is still raised, by the config in force now.
    config_path = tmp_path / "guardrail.json"
    config = load_guardrail_config().model_dump(mode="json", exclude_none=True)
    config_path.write_text(json.dumps(config))
    fake_llm.queue(
        {"kind": "answer", "answer": answer(risk=5, priority="Standard", probability=0.02)}
    )
    settings = cached_llm_settings(GUARDRAIL_CONFIG_PATH=str(config_path))
    async with run_app(settings) as client:
        first = (await client.post("/genai-classify", json=SHOCK_PATIENT)).json()
        config["version"] = "test-reloaded"
        config_path.write_text(json.dumps(config))
        reload = await client.post("/genai-guardrail/reload", headers=AS_ADMIN)
        second = (await client.post("/genai-classify", json=SHOCK_PATIENT)).json()
    assert reload.status_code == 200, reload.text
    assert first["llm"]["status"] == "ok"
    assert second["llm"]["status"] == "cached"
    for body in (first, second):
        assert body["priority"] == "Critical"
        assert body["guardrail"]["override"] is True
    assert first["guardrail"]["config_version"] != "test-reloaded"
    assert second["guardrail"]["config_version"] == "test-reloaded"
    assert fake_llm.calls == 1


async def test_offline_answers_are_not_cached(
    offline_settings: Any,
    run_app: Any,
    redis_url: str,
    namespace: str,
    guide_request: dict[str, Any],
) -> None:
    settings = offline_settings(
        GENAI_CACHE_ENABLED=True, REDIS_URL=redis_url, GENAI_CACHE_NAMESPACE=namespace
    )
    async with run_app(settings) as client:
        for _ in range(2):
            body = (await client.post("/genai-classify", json=guide_request)).json()
            assert body["llm"]["status"] == "offline"
            assert body["llm"]["cached"] is False
        health = (await client.get("/genai-health")).json()
    assert keys(redis_url, namespace) == []
    assert health["cache"]["hits"] == 0


async def test_redis_stopped_mid_test_serves_uncached_then_resumes(
    fake_llm: FakeOpenAI,
    llm_settings: Any,
    run_app: Any,
    own_redis: Any,
    guide_request: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = llm_settings(
        GENAI_CACHE_ENABLED=True, REDIS_URL=own_redis.url, GENAI_CACHE_NAMESPACE="outage"
    )
    caplog.set_level(logging.INFO, logger="sepsis_genai.cache")
    async with run_app(settings) as client:
        stored = (await client.post("/genai-classify", json=guide_request)).json()
        cached = (await client.post("/genai-classify", json=guide_request)).json()
        assert (stored["llm"]["status"], cached["llm"]["status"]) == ("ok", "cached")

        own_redis.stop()
        during = [(await client.post("/genai-classify", json=guide_request)) for _ in range(3)]
        health_down = (await client.get("/genai-health")).json()

        own_redis.start()  # same port, empty (no persistence)
        health_up = (await client.get("/genai-health")).json()
        refilled = (await client.post("/genai-classify", json=guide_request)).json()
        hit = (await client.post("/genai-classify", json=guide_request)).json()

    for response in during:
        assert response.status_code == 200
        body = response.json()
        assert body["llm"]["status"] == "ok"  # answered by the LLM, uncached
        assert body["degraded"] is False
    assert health_down["cache"]["state"] == "down"
    assert health_down["status"] == "degraded"
    assert "Redis" in health_down["reason"]
    assert health_up["cache"]["state"] == "up"
    assert health_up["status"] == "available"
    assert refilled["llm"]["status"] == "ok"
    assert hit["llm"]["status"] == "cached"
    assert fake_llm.calls == 5  # 1 + 3 during the outage + 1 refill

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage, not once per request
    assert "unavailable" in warnings[0].getMessage()
    assert any("caching resumed" in r.getMessage() for r in caplog.records)


async def test_unresponsive_redis_costs_only_the_short_timeout(
    fake_llm: FakeOpenAI, llm_settings: Any, run_app: Any, guide_request: dict[str, Any]
) -> None:
    # A server that accepts connections and never answers: the slow-Redis case.
    connections: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = llm_settings(
        GENAI_CACHE_ENABLED=True,
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        GENAI_REDIS_TIMEOUT_S=0.05,
        GENAI_CACHE_NAMESPACE="silent",
    )
    try:
        async with run_app(settings) as client:
            body = (await client.post("/genai-classify", json=guide_request)).json()
            health = (await client.get("/genai-health")).json()
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()
    assert body["llm"]["status"] == "ok"
    assert health["cache"]["state"] == "down"
    assert health["cache"]["errors"] >= 1
    assert fake_llm.calls == 1


async def test_cache_skips_redis_while_down_until_the_retry_interval() -> None:
    cache = AnswerCache(
        url="redis://127.0.0.1:9/0",  # discard port: nothing listens
        namespace="nowhere",
        ttl_s=60,
        timeout_s=0.05,
        retry_interval_s=3600,
    )
    try:
        assert await cache.get("nowhere:v1:" + "0" * 64) is None
        assert cache.state == "down"
        assert cache.errors == 1
        for _ in range(5):
            assert await cache.get("nowhere:v1:" + "0" * 64) is None
        assert cache.errors == 1  # not tried again within the interval
        assert (cache.hits, cache.misses) == (0, 0)  # an outage is neither a hit nor a miss
    finally:
        await cache.aclose()


async def test_writes_still_try_while_down_and_bring_the_cache_back(own_redis: Any) -> None:
    cache = AnswerCache(
        url=own_redis.url, namespace="writes", ttl_s=60, timeout_s=0.1, retry_interval_s=3600
    )
    answer = LLMAnswer(
        risk_score=42,
        priority=Priority.ELEVATED,
        sepsis_probability_6h=0.3,
        rationale="r",
        key_findings=[],
        recommended_actions=[],
    )
    key = cache.key({"narrative": "n"})
    try:
        own_redis.stop()
        assert await cache.get(key) is None
        assert cache.state == "down"
        own_redis.start()
        assert await cache.get(key) is None  # lookups skip Redis within the interval
        assert cache.state == "down"
        assert await cache.put(key, answer, model="m") is True  # a write still tries
        assert cache.state == "up"
        assert await cache.get(key) == answer
        assert (cache.hits, cache.misses) == (1, 0)
    finally:
        await cache.aclose()
