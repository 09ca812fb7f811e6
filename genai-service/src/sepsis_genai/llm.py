"""The LLM client: one structured chat completion per assessment, bounded in every way.

- Providers: Azure OpenAI (`AsyncAzureOpenAI`) and any OpenAI-compatible server (`AsyncOpenAI`
  with a `base_url`: OpenAI, vLLM, Ollama, llama.cpp).
- Structured output: `response_format` json_schema (strict); a server that rejects it gets
  json_object from then on (remembered per instance). The answer is validated with
  `LLMAnswer`; an invalid answer gets one repair turn, then the call fails as `invalid_output`.
- A deadline covers the whole call (queueing, retries and the repair turn included).
- Retries: bounded, only for 408/409/429/5xx and connection errors, with exponential backoff and
  full jitter; a `Retry-After` (or `retry-after-ms`) header is honoured, and a wait that would
  overrun the deadline ends the call instead (policy: `sepsis_genai.llm_retry`).
- At most `max_concurrency` calls in flight per instance and `max_queued` more waiting for a
  slot; identical calls in flight (same cache key) are coalesced into one
  (`sepsis_genai.coalesce`). A new call past both is shed at once with a 503 (`LLMOverloaded`,
  with Retry-After): behind a hanging LLM an unbounded queue would hold every connection the
  gateway has to this service until the deadlines.
- Failures are reported as a status and a short `error_kind`, never as exception text.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

import httpx2
import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.shared_params import ResponseFormatJSONObject, ResponseFormatJSONSchema

from sepsis_genai.coalesce import InFlight
from sepsis_genai.config import LLMTarget
from sepsis_genai.llm_answer import InvalidAnswer, parse_answer
from sepsis_genai.llm_outcome import LLMOutcome, LLMStats, ResponseFormat
from sepsis_genai.llm_probe import PROBE_TIMEOUT_S, probe_llm
from sepsis_genai.llm_retry import Backoff, classify_status, is_retryable, retry_after_s
from sepsis_genai.narrative import REPAIR_PROMPT, Prompt
from sepsis_genai.schemas import LLMAnswer, LLMStatus, answer_json_schema
from sepsis_genai.tokens import NO_TOKENS, TokenBudget, TokenUsage
from sepsis_shared.errors import ServiceError

logger = logging.getLogger("sepsis_genai.llm")

Sleep = Callable[[float], Awaitable[None]]

_MAX_BAD_ANSWER_ECHO: Final = 4000
_SCHEMA_NAME: Final = "sepsis_assessment"
OVERLOAD_RETRY_AFTER_S: Final = 2


class LLMOverloaded(ServiceError):
    """Every LLM call slot of this instance is taken: the request is shed, not queued."""

    status = 503
    code = "llm_overloaded"


class _Failure(Exception):
    """Internal: ends the call with a status and an error kind."""

    def __init__(self, status: LLMStatus, kind: str) -> None:
        super().__init__(kind)
        self.status = status
        self.kind = kind


def build_openai_client(
    target: LLMTarget, *, max_connections: int, read_timeout_s: float = 60.0
) -> AsyncOpenAI:
    """The SDK client for a target, with our own retries (SDK retries off), a pool sized to
    the concurrency limit and, for a server with a certificate of the hospital's own CA, that
    CA bundle as the only trust roots. The read timeout should not be below the call's
    deadline: a slow server's answer still counts until then."""
    verify: ssl.SSLContext | bool = True
    if target.ca_bundle is not None:
        verify = ssl.create_default_context(cafile=str(target.ca_bundle))
    # Not the SDK's aiohttp transport: it saves about 1.3 ms of client CPU per call (100
    # concurrent calls, openai 3.60), but reports a refused connection as a timeout.
    http_client = openai.DefaultAsyncHttpxClient(
        verify=verify,
        limits=httpx2.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
        ),
        timeout=httpx2.Timeout(read_timeout_s, connect=5.0),
    )
    if target.provider == "azure":
        assert target.endpoint is not None
        return AsyncAzureOpenAI(
            api_key=target.api_key,
            azure_endpoint=target.endpoint,
            api_version=target.api_version,
            max_retries=0,
            http_client=http_client,
        )
    return AsyncOpenAI(
        api_key=target.api_key,
        base_url=target.endpoint,
        max_retries=0,
        http_client=http_client,
    )


class LLMClient:
    """Asks the LLM for a structured assessment; see the module docstring for the policy."""

    def __init__(
        self,
        *,
        client: AsyncOpenAI,
        target: LLMTarget,
        temperature: float,
        max_output_tokens: int,
        deadline_s: float,
        max_retries: int,
        retry_base_s: float,
        retry_max_s: float,
        max_concurrency: int,
        max_queued: int = 0,
        budget: TokenBudget | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self.target = target
        self.temperature = temperature
        self.max_output_tokens = max_output_tokens
        self.deadline_s = deadline_s
        self.max_retries = max_retries
        self._backoff = Backoff(base_s=retry_base_s, max_s=retry_max_s, rng=rng or random.Random())
        self.max_concurrency = max_concurrency
        self.max_queued = max_queued
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._sleep = sleep
        self._json_schema_supported = True
        # Newer (reasoning) models reject `max_tokens` and want `max_completion_tokens`; older
        # servers know only `max_tokens`. Start with the widely supported one, switch once.
        self._completion_tokens_param = False
        self._in_flight: InFlight[LLMOutcome] = InFlight()
        self.stats = LLMStats()
        self.budget = budget or TokenBudget(None)
        self._probe_task: asyncio.Task[None] | None = None

    @property
    def provider(self) -> Literal["azure", "openai"]:
        return self.target.provider

    @property
    def model_label(self) -> str:
        return self.target.model_label

    def fingerprint(self) -> dict[str, Any]:
        """Everything about this client that shapes an answer (part of the cache key)."""
        return {
            "provider": self.target.provider,
            "model": self.target.model,
            "model_label": self.target.model_label,
            "api_version": self.target.api_version,
            "temperature": self.temperature,
        }

    async def warm_up(self) -> None:
        """Load the SDK's lazily imported resources in a thread before the first request (the
        first `client.chat` access imports hundreds of modules, which would block the loop)."""
        await asyncio.to_thread(lambda: self._client.chat.completions)

    async def aclose(self) -> None:
        self._in_flight.cancel_all()
        if self._probe_task is not None:
            self._probe_task.cancel()
        await self._client.close()

    # ---- health ----------------------------------------------------------------------------
    async def probe_if_stale(self, max_age_s: float) -> None:
        """Probe the LLM (`sepsis_genai.llm_probe`) when nothing has said how it is doing for
        `max_age_s` seconds (0: never). Concurrent callers share one probe; a used-up token
        budget is not spent on probes."""
        if max_age_s <= 0 or self.budget.exhausted:
            return
        latest = self.stats.latest()
        if latest is not None and (datetime.now(UTC) - latest[0]).total_seconds() < max_age_s:
            return
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = asyncio.create_task(self._probe(), name="llm-probe")
        await asyncio.shield(self._probe_task)

    async def _probe(self) -> None:
        result = await probe_llm(
            self._client,
            model=self.target.model,
            completion_tokens_param=self._completion_tokens_param,
            timeout_s=min(PROBE_TIMEOUT_S, self.deadline_s),
        )
        self.stats.probes += 1
        self.stats.last_probe = result
        self.stats.prompt_tokens += result.tokens.prompt
        self.stats.completion_tokens += result.tokens.completion
        self.budget.record(result.tokens)
        logger.log(
            logging.INFO if result.ok else logging.WARNING,
            "llm probe %s",
            "ok" if result.ok else "failed",
            extra={
                "llm_error_kind": result.error_kind,
                "llm_latency_ms": round(result.latency_ms, 1),
            },
        )

    # ---- coalescing ------------------------------------------------------------------------
    async def assess(
        self,
        prompt: Prompt,
        *,
        key: str,
        on_answer: Callable[[LLMAnswer], Awaitable[None]] | None = None,
    ) -> LLMOutcome:
        """The assessment for `prompt`; concurrent calls with the same `key` share one LLM call.

        `on_answer` runs once, inside the shared call, when a valid answer arrives (the cache
        write). The shared call survives the cancellation of any one waiter.
        """
        task = self._in_flight.get(key)
        if task is not None:
            self.stats.coalesced += 1
            outcome = await asyncio.shield(task)
            # The shared call's tokens are counted once, on the answer that made it.
            return replace(outcome, coalesced=True, tokens=NO_TOKENS)
        if self.budget.exhausted:
            self.budget.offline_answers += 1
            self.stats.by_status[LLMStatus.BUDGET_EXHAUSTED.value] += 1
            return LLMOutcome(
                status=LLMStatus.BUDGET_EXHAUSTED,
                answer=None,
                attempts=0,
                latency_ms=0.0,
                error_kind="daily_token_budget",
            )
        if len(self._in_flight) >= self.max_concurrency + self.max_queued:
            self.stats.shed += 1
            raise LLMOverloaded(
                f"All {self.max_concurrency} language-model calls of this instance are in use "
                f"and {self.max_queued} more are waiting; retry after the delay in Retry-After "
                "(POST /classify answers meanwhile).",
                details={"max_concurrency": self.max_concurrency, "max_queued": self.max_queued},
                headers={"Retry-After": str(OVERLOAD_RETRY_AFTER_S)},
            )
        task = self._in_flight.start(key, self._run(prompt, on_answer), name="llm-assess")
        return await asyncio.shield(task)

    # ---- one call --------------------------------------------------------------------------
    async def _run(
        self, prompt: Prompt, on_answer: Callable[[LLMAnswer], Awaitable[None]] | None
    ) -> LLMOutcome:
        self.stats.assessments += 1
        self.stats.in_flight += 1
        started = time.perf_counter()
        state = _CallState()
        try:
            async with asyncio.timeout(self.deadline_s):
                answer = await self._call(prompt, state, started)
        except TimeoutError:
            outcome = self._failed(LLMStatus.TIMEOUT, "deadline_exceeded", state, started)
        except _Failure as failure:
            outcome = self._failed(failure.status, failure.kind, state, started)
        except (openai.OpenAIError, ValueError, TypeError, KeyError) as exc:
            # Anything else the SDK or a malformed reply throws is a failed call, not a 500.
            # Only the type is logged: the message may quote the completion.
            logger.error("unexpected LLM client error: %s", type(exc).__name__)
            outcome = self._failed(LLMStatus.FAILED, "client_error", state, started)
        else:
            outcome = LLMOutcome(
                status=LLMStatus.OK,
                answer=answer,
                attempts=state.attempts,
                latency_ms=_ms_since(started),
                response_format=state.response_format,
                tokens=state.tokens,
            )
            self.stats.last_success = datetime.now(UTC)
            self.stats.by_status[LLMStatus.OK.value] += 1
            if on_answer is not None:
                await on_answer(answer)
        finally:
            self.stats.in_flight -= 1
            self.stats.prompt_tokens += state.tokens.prompt
            self.stats.completion_tokens += state.tokens.completion
            self.budget.record(state.tokens)
        logger.log(
            logging.INFO if outcome.status is LLMStatus.OK else logging.WARNING,
            "llm call %s",
            outcome.status.value,
            extra={
                "llm_status": outcome.status.value,
                "llm_error_kind": outcome.error_kind,
                "llm_attempts": outcome.attempts,
                "llm_latency_ms": round(outcome.latency_ms, 1),
                "llm_response_format": outcome.response_format,
                "llm_prompt_tokens": outcome.tokens.prompt,
                "llm_completion_tokens": outcome.tokens.completion,
            },
        )
        return outcome

    def _failed(
        self, status: LLMStatus, kind: str, state: _CallState, started: float
    ) -> LLMOutcome:
        self.stats.last_failure = datetime.now(UTC)
        self.stats.last_failure_kind = kind
        self.stats.by_status[status.value] += 1
        return LLMOutcome(
            status=status,
            answer=None,
            attempts=state.attempts,
            latency_ms=_ms_since(started),
            error_kind=kind,
            response_format=state.response_format,
            tokens=state.tokens,
        )

    async def _call(self, prompt: Prompt, state: _CallState, started: float) -> LLMAnswer:
        messages = _messages(prompt)
        retries = 0
        repaired = False
        while True:
            state.response_format = "json_schema" if self._json_schema_supported else "json_object"
            try:
                content = await self._complete(messages, state)
                return parse_answer(content)
            except InvalidAnswer as invalid:
                if repaired:
                    raise _Failure(LLMStatus.INVALID_OUTPUT, "invalid_output") from None
                repaired = True
                self.stats.repairs += 1
                messages = [
                    *_messages(prompt),
                    ChatCompletionAssistantMessageParam(
                        role="assistant", content=invalid.content[:_MAX_BAD_ANSWER_ECHO]
                    ),
                    ChatCompletionUserMessageParam(
                        role="user", content=REPAIR_PROMPT.format(problem=invalid.problem)
                    ),
                ]
            except openai.BadRequestError as exc:
                if not self._completion_tokens_param and _rejects_param(exc, "max_tokens"):
                    self._completion_tokens_param = True
                    logger.warning("LLM server rejects max_tokens; using max_completion_tokens")
                    continue
                if state.response_format == "json_schema" and _rejects_json_schema(exc):
                    # Structured output unsupported here (older Azure API versions, many local
                    # servers): json_object for the rest of this instance's life.
                    self._json_schema_supported = False
                    self.stats.json_schema_fallbacks += 1
                    logger.warning("LLM server rejects json_schema; falling back to json_object")
                    continue
                raise _Failure(LLMStatus.FAILED, "bad_request") from None
            except openai.APIStatusError as exc:
                kind, status = classify_status(exc.status_code)
                if not is_retryable(exc.status_code):
                    raise _Failure(status, kind) from None
                wait_s = retry_after_s(exc.response.headers)
                retries = await self._retry(retries, wait_s, status, kind, started)
            except openai.APITimeoutError:
                status, kind = LLMStatus.TIMEOUT, "upstream_timeout"
                retries = await self._retry(retries, None, status, kind, started)
            except openai.APIConnectionError:
                status, kind = LLMStatus.FAILED, "connection_error"
                retries = await self._retry(retries, None, status, kind, started)

    async def _retry(
        self,
        retries: int,
        retry_after: float | None,
        status: LLMStatus,
        kind: str,
        started: float,
    ) -> int:
        """Wait before the next try and return the retries made so far; or end the call with
        `status` and `kind` when the retries are used up or the wait would overrun the
        deadline."""
        if retries >= self.max_retries:
            raise _Failure(status, kind) from None
        retries += 1
        self.stats.retries += 1
        delay = self._backoff.delay(retries, retry_after)
        remaining = self.deadline_s - (time.perf_counter() - started)
        if delay >= remaining:
            # Waiting would overrun the deadline: give up now, saying why.
            raise _Failure(status, kind)
        await self._sleep(delay)
        return retries

    async def _complete(self, messages: list[ChatCompletionMessageParam], state: _CallState) -> str:
        fmt: ResponseFormatJSONSchema | ResponseFormatJSONObject
        if state.response_format == "json_schema":
            fmt = {
                "type": "json_schema",
                "json_schema": {
                    "name": _SCHEMA_NAME,
                    "strict": True,
                    "schema": answer_json_schema(),
                },
            }
        else:
            fmt = {"type": "json_object"}
        async with self._semaphore:
            state.attempts += 1
            self.stats.http_calls += 1
            completion = await self._client.chat.completions.create(
                model=self.target.model,
                messages=messages,
                temperature=self.temperature,
                max_tokens=openai.omit if self._completion_tokens_param else self.max_output_tokens,
                max_completion_tokens=(
                    self.max_output_tokens if self._completion_tokens_param else openai.omit
                ),
                response_format=fmt,
            )
        usage = completion.usage
        if usage is not None:
            state.tokens += TokenUsage(usage.prompt_tokens, usage.completion_tokens)
        if not completion.choices:
            raise InvalidAnswer("the reply held no choices", "")
        choice = completion.choices[0]
        content = choice.message.content or ""
        if choice.message.refusal:
            raise _Failure(LLMStatus.FAILED, "refusal")
        if choice.finish_reason == "content_filter":
            raise _Failure(LLMStatus.FAILED, "content_filter")
        if choice.finish_reason == "length":
            raise InvalidAnswer(
                "the answer was cut off at the length limit; be more concise", content
            )
        return content


@dataclass
class _CallState:
    attempts: int = 0
    response_format: ResponseFormat | None = None
    tokens: TokenUsage = NO_TOKENS


def _messages(prompt: Prompt) -> list[ChatCompletionMessageParam]:
    return [
        ChatCompletionSystemMessageParam(role="system", content=prompt.system),
        ChatCompletionUserMessageParam(role="user", content=prompt.narrative),
    ]


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _rejects_param(exc: openai.BadRequestError, name: str) -> bool:
    body = exc.body
    param = body.get("param") if isinstance(body, Mapping) else None
    if param == name:
        return True
    text = str(exc.message).lower()
    return f"'{name}'" in text and "unsupported" in text


def _rejects_json_schema(exc: openai.BadRequestError) -> bool:
    text = str(exc.message).lower()
    body = exc.body
    if isinstance(body, Mapping):
        param = body.get("param")
        if isinstance(param, str) and "response_format" in param:
            return True
        text += " " + str(body.get("message", "")).lower()
    return "response_format" in text or "json_schema" in text
