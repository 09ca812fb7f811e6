"""The LLM client: one structured chat completion per assessment, bounded in every way.

- Providers: Azure OpenAI (`AsyncAzureOpenAI`) and any OpenAI-compatible server (`AsyncOpenAI`
  with a `base_url`: OpenAI, vLLM, Ollama, llama.cpp).
- Structured output: `response_format` json_schema (strict); a server that rejects it gets
  json_object from then on (remembered per instance). The answer is validated with
  `LLMAnswer`; an invalid answer gets one repair turn, then the call fails as `invalid_output`.
- A deadline covers the whole call (queueing, retries and the repair turn included).
- Retries: bounded, only for 408/409/429/5xx and connection errors, with exponential backoff and
  full jitter; a `Retry-After` (or `retry-after-ms`) header is honoured, and a wait that would
  overrun the deadline ends the call instead.
- A semaphore bounds the calls in flight per instance; identical calls in flight (same cache
  key) are coalesced into one.
- Failures are reported as a status and a short `error_kind`, never as exception text.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import httpx
import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.shared_params import ResponseFormatJSONObject, ResponseFormatJSONSchema
from pydantic import ValidationError

from sepsis_genai.config import LLMTarget
from sepsis_genai.narrative import REPAIR_PROMPT, Prompt
from sepsis_genai.schemas import LLMAnswer, LLMStatus, answer_json_schema

logger = logging.getLogger("sepsis_genai.llm")

ResponseFormat = Literal["json_schema", "json_object"]
Sleep = Callable[[float], Awaitable[None]]

_RETRYABLE_STATUS: Final = frozenset({408, 409, 429})
_MAX_BAD_ANSWER_ECHO: Final = 4000
_SCHEMA_NAME: Final = "sepsis_assessment"


@dataclass(frozen=True, slots=True)
class LLMOutcome:
    """The result of one (possibly shared) LLM assessment call."""

    status: LLMStatus
    answer: LLMAnswer | None
    attempts: int
    latency_ms: float
    error_kind: str | None = None
    response_format: ResponseFormat | None = None
    coalesced: bool = False

    @property
    def ok(self) -> bool:
        return self.answer is not None and self.status is LLMStatus.OK


@dataclass
class LLMStats:
    """Counters for `/performance` and `/genai-health` (per instance, since start)."""

    assessments: int = 0
    http_calls: int = 0
    coalesced: int = 0
    retries: int = 0
    repairs: int = 0
    json_schema_fallbacks: int = 0
    in_flight: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_failure_kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "assessments": self.assessments,
            "http_calls": self.http_calls,
            "coalesced": self.coalesced,
            "retries": self.retries,
            "repairs": self.repairs,
            "json_schema_fallbacks": self.json_schema_fallbacks,
            "in_flight": self.in_flight,
            "by_status": dict(self.by_status),
            "last_success": _iso(self.last_success),
            "last_failure": _iso(self.last_failure),
            "last_failure_kind": self.last_failure_kind,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


class _Failure(Exception):
    """Internal: ends the call with a status and an error kind."""

    def __init__(self, status: LLMStatus, kind: str) -> None:
        super().__init__(kind)
        self.status = status
        self.kind = kind


class _Invalid(Exception):
    """Internal: the answer could not be used; `problem` is safe to show the model."""

    def __init__(self, problem: str, content: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.content = content


def build_openai_client(target: LLMTarget, *, max_connections: int) -> AsyncOpenAI:
    """The SDK client for a target, with our own retries (SDK retries off) and a pool sized to
    the concurrency limit."""
    http_client = openai.DefaultAsyncHttpxClient(
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
        ),
        timeout=httpx.Timeout(60.0, connect=5.0),
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
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self.target = target
        self.temperature = temperature
        self.max_output_tokens = max_output_tokens
        self.deadline_s = deadline_s
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._json_schema_supported = True
        # Newer (reasoning) models reject `max_tokens` and want `max_completion_tokens`; older
        # servers know only `max_tokens`. Start with the widely supported one, switch once.
        self._completion_tokens_param = False
        self._in_flight: dict[str, asyncio.Task[LLMOutcome]] = {}
        self.stats = LLMStats()

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
        for task in list(self._in_flight.values()):
            task.cancel()
        await self._client.close()

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
            return _replace_coalesced(outcome)
        task = asyncio.create_task(self._run(prompt, on_answer), name="llm-assess")
        self._in_flight[key] = task
        task.add_done_callback(lambda _t: self._in_flight.pop(key, None))
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
            )
            self.stats.last_success = datetime.now(UTC)
            self.stats.by_status[LLMStatus.OK.value] += 1
            if on_answer is not None:
                await on_answer(answer)
        finally:
            self.stats.in_flight -= 1
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
        )

    async def _call(self, prompt: Prompt, state: _CallState, started: float) -> LLMAnswer:
        messages = _messages(prompt)
        retries = 0
        repaired = False
        while True:
            state.response_format = "json_schema" if self._json_schema_supported else "json_object"
            try:
                content = await self._complete(messages, state)
                return _parse_answer(content)
            except _Invalid as invalid:
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
                kind, status = _classify_status(exc.status_code)
                retryable = exc.status_code in _RETRYABLE_STATUS or exc.status_code >= 500
                if not retryable or retries >= self.max_retries:
                    raise _Failure(status, kind) from None
                retries += 1
                self.stats.retries += 1
                await self._backoff(
                    retries, _retry_after_s(exc.response.headers), status, kind, started
                )
            except openai.APITimeoutError:
                if retries >= self.max_retries:
                    raise _Failure(LLMStatus.TIMEOUT, "upstream_timeout") from None
                retries += 1
                self.stats.retries += 1
                await self._backoff(retries, None, LLMStatus.TIMEOUT, "upstream_timeout", started)
            except openai.APIConnectionError:
                if retries >= self.max_retries:
                    raise _Failure(LLMStatus.FAILED, "connection_error") from None
                retries += 1
                self.stats.retries += 1
                await self._backoff(retries, None, LLMStatus.FAILED, "connection_error", started)

    async def _backoff(
        self,
        retry: int,
        retry_after: float | None,
        status: LLMStatus,
        kind: str,
        started: float,
    ) -> None:
        ceiling = min(self.retry_max_s, self.retry_base_s * 2 ** (retry - 1))
        delay = self._rng.uniform(0, ceiling)  # full jitter
        if retry_after is not None:
            # Honour the server: never earlier than it asked, a little jitter after.
            delay = retry_after + self._rng.uniform(0, min(1.0, 0.1 * retry_after + 0.05))
        remaining = self.deadline_s - (time.perf_counter() - started)
        if delay >= remaining:
            # Waiting would overrun the deadline: give up now, saying why.
            raise _Failure(status, kind)
        await self._sleep(delay)

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
        if not completion.choices:
            raise _Invalid("the reply held no choices", "")
        choice = completion.choices[0]
        content = choice.message.content or ""
        if choice.message.refusal:
            raise _Failure(LLMStatus.FAILED, "refusal")
        if choice.finish_reason == "content_filter":
            raise _Failure(LLMStatus.FAILED, "content_filter")
        if choice.finish_reason == "length":
            raise _Invalid("the answer was cut off at the length limit; be more concise", content)
        return content


@dataclass
class _CallState:
    attempts: int = 0
    response_format: ResponseFormat | None = None


def _messages(prompt: Prompt) -> list[ChatCompletionMessageParam]:
    return [
        ChatCompletionSystemMessageParam(role="system", content=prompt.system),
        ChatCompletionUserMessageParam(role="user", content=prompt.narrative),
    ]


def _replace_coalesced(outcome: LLMOutcome) -> LLMOutcome:
    return LLMOutcome(
        status=outcome.status,
        answer=outcome.answer,
        attempts=outcome.attempts,
        latency_ms=outcome.latency_ms,
        error_kind=outcome.error_kind,
        response_format=outcome.response_format,
        coalesced=True,
    )


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _strip_fences(content: str) -> str:
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def _parse_answer(content: str) -> LLMAnswer:
    text = _strip_fences(content)
    if not text:
        raise _Invalid("the answer was empty", content)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise _Invalid("the answer was not valid JSON", content) from None
    if not isinstance(data, dict):
        raise _Invalid("the answer was not a JSON object", content)
    try:
        return LLMAnswer.model_validate(data)
    except ValidationError as exc:
        # Field names and constraint messages only; they come from our schema, not from input.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)[:6]
        )
        raise _Invalid(f"fields out of the schema ({problems})", content) from None


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


def _classify_status(code: int) -> tuple[str, LLMStatus]:
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


def _retry_after_s(headers: httpx.Headers) -> float | None:
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
