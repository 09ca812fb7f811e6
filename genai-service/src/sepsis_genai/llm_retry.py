"""When a failed LLM call is tried again, and how long to wait first.

Only 408, 409, 429 and 5xx answers, timeouts and connection errors are retried, a bounded
number of times. The wait is exponential backoff with full jitter; a server's `Retry-After`
(or `retry-after-ms`) header wins over it, with a little jitter after. Whether the wait still
fits the call's deadline is for the caller to decide.
"""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import httpx2

from sepsis_genai.schemas import LLMStatus

RETRYABLE_STATUS: Final = frozenset({408, 409, 429})
"""4xx answers worth another try (every 5xx is)."""


def is_retryable(code: int) -> bool:
    """Whether an HTTP error answer may succeed when asked again."""
    return code in RETRYABLE_STATUS or code >= 500


def classify_status(code: int) -> tuple[str, LLMStatus]:
    """The error kind and the call status an HTTP error answer is reported as."""
    if code == 429:
        return "rate_limited", LLMStatus.RATE_LIMITED
    if code in (401, 403):
        return "auth_error", LLMStatus.FAILED
    if code == 404:
        return "not_found", LLMStatus.FAILED
    if code == 408:
        return "upstream_timeout", LLMStatus.TIMEOUT
    if code >= 500:
        return "server_error", LLMStatus.FAILED
    return f"http_{code}", LLMStatus.FAILED


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter, capped, deferring to the server's own ask."""

    base_s: float
    max_s: float
    rng: random.Random

    def delay(self, retry: int, retry_after_s: float | None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first)."""
        ceiling = min(self.max_s, self.base_s * 2 ** (retry - 1))
        delay = self.rng.uniform(0, ceiling)  # full jitter
        if retry_after_s is not None:
            # Honour the server: never earlier than it asked, a little jitter after.
            delay = retry_after_s + self.rng.uniform(0, min(1.0, 0.1 * retry_after_s + 0.05))
        return delay


def retry_after_s(headers: httpx2.Headers) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `retry-after` seconds or date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return max(0.0, (parsed - datetime.now(UTC)).total_seconds())
    return value if math.isfinite(value) and value >= 0 else None
