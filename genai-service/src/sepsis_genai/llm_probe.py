"""The active check behind `/genai-health`: one cheap chat completion, at most once a while.

The probe asks the configured model (Azure: the deployment) for one token, so it proves what
an assessment needs: the endpoint answers, the key is accepted, the model or deployment
exists, and TLS verifies with the configured CA bundle. A 400 still proves all of that (some
models refuse so small a limit). It costs a few prompt tokens, counted like any other call.
It runs only when nothing, neither an assessment nor an earlier probe, has said how the LLM is
doing for the configured interval, so under traffic it never runs at all.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import openai
from openai import AsyncOpenAI

from sepsis_genai.llm_retry import classify_status
from sepsis_genai.tokens import NO_TOKENS, TokenUsage

PROBE_MESSAGE: Final = "Reply with the single word OK."
PROBE_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe found."""

    at: datetime
    ok: bool
    latency_ms: float
    error_kind: str | None = None
    tokens: TokenUsage = NO_TOKENS


async def probe_llm(
    client: AsyncOpenAI, *, model: str, completion_tokens_param: bool, timeout_s: float
) -> ProbeResult:
    """One probe call; never raises for what the server or the network did."""
    started = time.perf_counter()
    kind: str | None = None
    tokens = NO_TOKENS
    try:
        async with asyncio.timeout(timeout_s):
            completion = await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": PROBE_MESSAGE}],
                max_tokens=openai.omit if completion_tokens_param else 1,
                max_completion_tokens=1 if completion_tokens_param else openai.omit,
                temperature=0,
            )
        if completion.usage is not None:
            tokens = TokenUsage(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    except openai.BadRequestError:
        pass  # it answered, authenticated, for this model: reachable
    except openai.APIStatusError as exc:
        kind, _ = classify_status(exc.status_code)
    except (TimeoutError, openai.APITimeoutError):
        kind = "upstream_timeout"
    except openai.APIConnectionError:
        kind = "connection_error"
    except (openai.OpenAIError, ValueError, TypeError, KeyError):
        kind = "client_error"
    return ProbeResult(
        at=datetime.now(UTC),
        ok=kind is None,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        error_kind=kind,
        tokens=tokens,
    )
