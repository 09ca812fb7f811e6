"""The Redis cache of validated LLM answers.

Keys are ``{namespace}:v1:{sha256}`` over the canonical JSON (sorted keys, no whitespace) of
everything that shapes the answer: provider, model or deployment, API version, prompt version,
temperature, answer schema version and the de-identified narrative. No patient data goes into a
key (only the hash) or into a log line. Every entry carries a TTL.

What is cached is the validated `LLMAnswer`, never the final response: the guardrail runs after
the cache, so a reloaded guardrail applies to cached answers at once. Offline answers are not
cached: they are computed in well under a millisecond, cheaper than a Redis round trip.

Redis down or slow: every call has a short socket timeout; a failure marks the cache down,
logs one warning for the outage, and requests proceed uncached. While down, lookups skip Redis
for `retry_interval_s`, then try again (writes always try); the first success logs the
recovery.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import ValidationError
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from sepsis_genai.schemas import LLMAnswer

logger = logging.getLogger("sepsis_genai.cache")

KEY_VERSION: Final = "v1"
CacheState = Literal["up", "down", "disabled"]


def canonical_json(value: Mapping[str, Any]) -> str:
    """Sorted keys, no insignificant whitespace, UTF-8 kept: one text per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(namespace: str, material: Mapping[str, Any]) -> str:
    """The namespaced, versioned SHA-256 key of the answer-shaping material."""
    digest = hashlib.sha256(canonical_json(material).encode("utf-8")).hexdigest()
    return f"{namespace}:{KEY_VERSION}:{digest}"


class AnswerCache:
    """Validated LLM answers in Redis, with outage handling; see the module docstring."""

    def __init__(
        self,
        *,
        url: str | None,
        namespace: str,
        ttl_s: int,
        timeout_s: float,
        retry_interval_s: float,
    ) -> None:
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.retry_interval_s = retry_interval_s
        self._redis: Redis | None = None
        if url is not None:
            # No client-side retries: a retry with backoff would turn a short timeout into a
            # long stall; the cache is optional, the request is not.
            pool = ConnectionPool.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
            )
            self._redis = Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
        self._down_since: float | None = None
        self._next_try = 0.0
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.writes = 0

    @property
    def enabled(self) -> bool:
        return self._redis is not None

    @property
    def state(self) -> CacheState:
        if self._redis is None:
            return "disabled"
        return "down" if self._down_since is not None else "up"

    @property
    def hit_rate(self) -> float | None:
        lookups = self.hits + self.misses
        return round(self.hits / lookups, 4) if lookups else None

    def key(self, material: Mapping[str, Any]) -> str:
        return cache_key(self.namespace, material)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)

    # ---- operations ------------------------------------------------------------------------
    async def get(self, key: str) -> LLMAnswer | None:
        """The cached answer, None on a miss or when Redis is unavailable (not counted)."""
        raw = await self._call("get", key)
        if raw is _UNAVAILABLE:
            return None
        if raw is None:
            self.misses += 1
            return None
        try:
            envelope = json.loads(raw)
            answer = LLMAnswer.model_validate(envelope["answer"])
        except (ValueError, KeyError, TypeError, ValidationError):
            # An entry we cannot read (older layout, corruption) is a miss, replaced on write.
            logger.warning("unreadable cache entry ignored", extra={"cache_key_hash": key[-12:]})
            self.misses += 1
            return None
        self.hits += 1
        return answer

    async def put(self, key: str, answer: LLMAnswer, *, model: str) -> bool:
        """Store an answer with the TTL; False when Redis is unavailable."""
        envelope = {"answer": answer.model_dump(mode="json"), "model": model, "stored": time.time()}
        # Writes are tried even while Redis is marked down: they follow an LLM call of a second
        # or more, so the short timeout costs little, and a spurious outage (a timeout under a
        # burst of load) must not lose the answers of the burst.
        done = await self._call("set", key, canonical_json(envelope), skip_while_down=False)
        if done is _UNAVAILABLE:
            return False
        self.writes += 1
        return True

    async def ttl(self, key: str) -> int | None:
        """Seconds left on an entry (None when absent or Redis is unavailable)."""
        left = await self._call("ttl", key)
        if left is _UNAVAILABLE or not isinstance(left, int) or left < 0:
            return None
        return left

    async def check(self) -> CacheState:
        """Ping Redis now, whatever the state (startup); the state after."""
        self._next_try = 0.0
        await self._call("ping")
        return self.state

    async def probe(self) -> CacheState:
        """Ping Redis when it is due for a retry (health checks call this); the state after."""
        if self._redis is not None and self._down_since is not None:
            await self._call("ping")
        return self.state

    async def _call(self, op: str, *args: str, skip_while_down: bool = True) -> Any:
        redis = self._redis
        if redis is None:
            return _UNAVAILABLE
        if skip_while_down and self._down_since is not None and time.monotonic() < self._next_try:
            return _UNAVAILABLE
        try:
            # The socket timeouts bound each read and connect; this bounds the whole call
            # (DNS, pool checkout) as well.
            async with asyncio.timeout(self.timeout_s * 3):
                if op == "get":
                    result: Any = await redis.get(args[0])
                elif op == "set":
                    result = await redis.set(args[0], args[1], ex=self.ttl_s)
                elif op == "ttl":
                    result = await redis.ttl(args[0])
                else:
                    result = await redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            self.errors += 1
            self._mark_down(exc)
            return _UNAVAILABLE
        self._mark_up()
        return result

    def _mark_down(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._next_try = now + self.retry_interval_s
        if self._down_since is None:
            self._down_since = now
            # Once per outage; the class name is enough to tell timeout from refusal.
            logger.warning(
                "Redis cache unavailable (%s); serving uncached until it returns",
                type(exc).__name__,
            )

    def _mark_up(self) -> None:
        if self._down_since is not None:
            outage_s = time.monotonic() - self._down_since
            self._down_since = None
            logger.info("Redis cache back after %.1f s; caching resumed", outage_s)


class _Unavailable:
    """Sentinel: Redis could not be asked."""


_UNAVAILABLE: Final = _Unavailable()
