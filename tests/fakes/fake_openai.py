"""A local OpenAI-compatible chat-completions server for tests and benchmarks.

The real Azure OpenAI cannot be reached from the development machines, so the LLM path is
exercised against this server through the real `openai` SDK. It speaks the chat-completions
wire format on both URL shapes:

- OpenAI: ``POST /v1/chat/completions`` with ``Authorization: Bearer <key>``;
- Azure: ``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` with an
  ``api-key`` header.

What it answers is scripted per test, either in-process (``FakeOpenAI.script(...)``) or over
the admin endpoints by another process:

- ``POST /_admin/script``  ``{"behaviours": [...]}`` appends to the queue (one per call);
- ``POST /_admin/config``  ``{"default": {...}, "latency_s": 1.0, "reject_json_schema": true,
  "reject_params": ["max_tokens"]}``;
- ``POST /_admin/hold`` / ``POST /_admin/release``: park calls until released;
- ``POST /_admin/reset``; ``GET /_admin/stats``; ``GET /_admin/requests``.

A behaviour is a JSON object with ``kind`` one of ``computed`` (a valid answer derived from
the prompt), ``answer`` (``answer``: the JSON object to return), ``content`` (``content``: raw
text), ``invalid_json``, ``out_of_range``, ``status`` (``status``, optional ``retry_after``),
plus an optional ``latency_s``. When the queue is empty the default behaviour answers.

Run as a process::

    python tests/fakes/fake_openai.py --port 8900 --latency 1.0
    python -m tests.fakes.fake_openai --port 0      # prints the port it bound
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_API_KEY = "fake-llm-key"
PRIORITIES = ("Standard", "Elevated", "Urgent", "Critical")
_BEHAVIOUR_KINDS = frozenset(
    {"computed", "answer", "content", "invalid_json", "out_of_range", "status"}
)
_MAX_RECORDED = 2000


class BehaviourError(ValueError):
    """A scripted behaviour is malformed."""


@dataclass(frozen=True)
class Behaviour:
    """What the server does for one chat-completions call."""

    kind: str = "computed"
    answer: Mapping[str, Any] | None = None
    content: str | None = None
    status: int = 500
    retry_after: float | None = None
    latency_s: float | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Behaviour:
        kind = raw.get("kind", "computed")
        if kind not in _BEHAVIOUR_KINDS:
            raise BehaviourError(f"unknown behaviour kind {kind!r}")
        answer = raw.get("answer")
        if kind == "answer" and not isinstance(answer, Mapping):
            raise BehaviourError("kind 'answer' needs an 'answer' object")
        content = raw.get("content")
        if kind == "content" and not isinstance(content, str):
            raise BehaviourError("kind 'content' needs a 'content' string")
        latency = raw.get("latency_s")
        retry_after = raw.get("retry_after")
        return cls(
            kind=kind,
            answer=answer if isinstance(answer, Mapping) else None,
            content=content if isinstance(content, str) else None,
            status=int(raw.get("status", 500)),
            retry_after=float(retry_after) if retry_after is not None else None,
            latency_s=float(latency) if latency is not None else None,
        )

    @classmethod
    def answering(cls, answer: Mapping[str, Any], *, latency_s: float | None = None) -> Behaviour:
        return cls(kind="answer", answer=dict(answer), latency_s=latency_s)

    @classmethod
    def http_status(
        cls, status: int, *, retry_after: float | None = None, latency_s: float | None = None
    ) -> Behaviour:
        return cls(kind="status", status=status, retry_after=retry_after, latency_s=latency_s)


@dataclass
class RecordedRequest:
    """One chat-completions call as the server saw it."""

    shape: str  # "openai" or "azure"
    path: str
    deployment: str | None
    api_version: str | None
    body: dict[str, Any]
    answered_status: int = 200

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self.body.get("messages")
        return list(msgs) if isinstance(msgs, list) else []

    @property
    def prompt_text(self) -> str:
        """Every message's text, joined (what the model would read)."""
        parts: list[str] = []
        for msg in self.messages:
            content = msg.get("content") if isinstance(msg, Mapping) else None
            if isinstance(content, str):
                parts.append(content)
        return "\n".join(parts)

    @property
    def response_format_type(self) -> str | None:
        fmt = self.body.get("response_format")
        return fmt.get("type") if isinstance(fmt, Mapping) else None

    def as_json(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "path": self.path,
            "deployment": self.deployment,
            "api_version": self.api_version,
            "body": self.body,
            "answered_status": self.answered_status,
        }


@dataclass
class _State:
    queue: deque[Behaviour] = field(default_factory=deque)
    default: Behaviour = field(default_factory=Behaviour)
    latency_s: float = 0.0
    reject_json_schema: bool = False
    reject_params: frozenset[str] = frozenset()
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    requests: deque[RecordedRequest] = field(default_factory=lambda: deque(maxlen=_MAX_RECORDED))


def computed_answer(prompt: str) -> dict[str, Any]:
    """A valid, deterministic answer derived from the prompt text (distinct prompts differ)."""
    digest = hashlib.sha256(prompt.encode()).digest()
    risk = 10 + digest[0] % 60
    priority = "Urgent" if risk >= 55 else "Elevated" if risk >= 30 else "Standard"
    return {
        "risk_score": risk,
        "priority": priority,
        "sepsis_probability_6h": round(risk / 100, 2),
        "rationale": f"Scripted assessment {digest[:4].hex()} from the local test server.",
        "key_findings": ["finding derived from the prompt"],
        "recommended_actions": ["reassess vital signs"],
    }


OUT_OF_RANGE_ANSWER: dict[str, Any] = {
    "risk_score": 180,
    "priority": "Catastrophic",
    "sepsis_probability_6h": 1.7,
    "rationale": "Out of range on purpose.",
    "key_findings": [],
    "recommended_actions": [],
}


class FakeOpenAI:
    """The server; start it in-process with `start()` or run this file as a process."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        latency_s: float = 0.0,
        reject_json_schema: bool = False,
    ) -> None:
        self.api_key = api_key
        self._state = _State(latency_s=latency_s, reject_json_schema=reject_json_schema)
        self._gate = asyncio.Event()
        self._gate.set()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # ---- scripting (in-process) ------------------------------------------------------------
    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours, consumed one per call, in order."""
        self._state.queue.extend(behaviours)

    def queue(self, *raw: Mapping[str, Any]) -> None:
        """Queue behaviours given as JSON-like dicts (the admin endpoint's format)."""
        self.script(*(Behaviour.from_dict(item) for item in raw))

    def configure(
        self,
        *,
        default: Behaviour | Mapping[str, Any] | None = None,
        latency_s: float | None = None,
        reject_json_schema: bool | None = None,
        reject_params: Sequence[str] | None = None,
    ) -> None:
        """Set what answers when the queue is empty, the latency, structured-output support
        and request parameters to refuse as unsupported (e.g. `max_tokens`)."""
        if isinstance(default, Behaviour):
            self._state.default = default
        elif default is not None:
            self._state.default = Behaviour.from_dict(default)
        if latency_s is not None:
            self._state.latency_s = latency_s
        if reject_json_schema is not None:
            self._state.reject_json_schema = reject_json_schema
        if reject_params is not None:
            self._state.reject_params = frozenset(reject_params)

    def hold(self) -> None:
        """Park every call (after it is counted) until `release()`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def reset(self) -> None:
        """Forget calls, queue and scripting (the latency stays)."""
        latency = self._state.latency_s
        self._state = _State(latency_s=latency)
        self._gate.set()

    @property
    def calls(self) -> int:
        return self._state.calls

    @property
    def in_flight(self) -> int:
        return self._state.in_flight

    @property
    def max_in_flight(self) -> int:
        return self._state.max_in_flight

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self._state.requests)

    def stats(self) -> dict[str, Any]:
        return {
            "calls": self._state.calls,
            "in_flight": self._state.in_flight,
            "max_in_flight": self._state.max_in_flight,
            "queued": len(self._state.queue),
            "latency_s": self._state.latency_s,
            "reject_json_schema": self._state.reject_json_schema,
            "reject_params": sorted(self._state.reject_params),
            "held": not self._gate.is_set(),
        }

    # ---- URLs --------------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """What to pass as `base_url` to AsyncOpenAI (or OPENAI_BASE_URL)."""
        return f"{self.origin}/v1"

    @property
    def azure_endpoint(self) -> str:
        """What to pass as `azure_endpoint` (or AZURE_OPENAI_ENDPOINT)."""
        return self.origin

    # ---- lifecycle ---------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure_chat)
        app.router.add_post("/_admin/script", self._admin_script)
        app.router.add_post("/_admin/config", self._admin_config)
        app.router.add_post("/_admin/hold", self._admin_hold)
        app.router.add_post("/_admin/release", self._admin_release)
        app.router.add_post("/_admin/reset", self._admin_reset)
        app.router.add_get("/_admin/stats", self._admin_stats)
        app.router.add_get("/_admin/requests", self._admin_requests)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeOpenAI:
        self._runner = web.AppRunner(
            self.make_app(),
            access_log=None,
            handle_signals=False,
            # A client that gives up (deadline) ends its call here too; stopping never waits
            # long for calls still parked.
            handler_cancellation=True,
            shutdown_timeout=1.0,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        self.host = host
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        return self

    async def stop(self) -> None:
        self._gate.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # ---- the chat-completions endpoints ------------------------------------------------------
    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        return await self._chat(request, shape="openai", deployment=None, api_version=None)

    async def _azure_chat(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("api-key") != self.api_key:
            return _error(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint.",
                "invalid_request_error",
                "401",
            )
        api_version = request.query.get("api-version")
        if not api_version:
            return _error(404, "Resource not found", "invalid_request_error", "404")
        return await self._chat(
            request,
            shape="azure",
            deployment=request.match_info["deployment"],
            api_version=api_version,
        )

    async def _chat(
        self, request: web.Request, *, shape: str, deployment: str | None, api_version: str | None
    ) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(
                400,
                "We could not parse the JSON body of your request.",
                "invalid_request_error",
                None,
            )
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property", "invalid_request_error", None)
        if shape == "openai" and not isinstance(body.get("model"), str):
            return _error(400, "you must provide a model parameter", "invalid_request_error", None)
        if body.get("stream"):
            return _error(400, "streaming is not supported here", "invalid_request_error", None)

        state = self._state
        state.calls += 1
        record = RecordedRequest(
            shape=shape,
            path=request.path,
            deployment=deployment,
            api_version=api_version,
            body=body,
        )
        state.requests.append(record)
        behaviour = state.queue.popleft() if state.queue else state.default
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await self._gate.wait()
            latency = behaviour.latency_s if behaviour.latency_s is not None else state.latency_s
            if latency > 0:
                await asyncio.sleep(latency)
            response = self._respond(record, behaviour, model=deployment or body["model"])
        finally:
            state.in_flight -= 1
        record.answered_status = response.status
        return response

    def _respond(
        self, record: RecordedRequest, behaviour: Behaviour, *, model: str
    ) -> web.Response:
        fmt = record.body.get("response_format")
        for name in sorted(self._state.reject_params & record.body.keys()):
            return _error(
                400,
                f"Unsupported parameter: '{name}' is not supported with this model.",
                "invalid_request_error",
                "unsupported_parameter",
                param=name,
            )
        if self._state.reject_json_schema and record.response_format_type == "json_schema":
            return _error(
                400,
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported "
                "with this model.",
                "invalid_request_error",
                "invalid_parameter",
                param="response_format",
            )
        if behaviour.kind == "status":
            headers: dict[str, str] = {}
            if behaviour.retry_after is not None:
                headers["Retry-After"] = _format_seconds(behaviour.retry_after)
            kind = "rate_limit_exceeded" if behaviour.status == 429 else "server_error"
            message = (
                "Rate limit reached for requests. Please retry after the indicated time."
                if behaviour.status == 429
                else "The server had an error while processing your request."
            )
            return _error(behaviour.status, message, kind, None, headers=headers)
        if behaviour.kind == "answer":
            content = json.dumps(behaviour.answer)
        elif behaviour.kind == "content":
            content = behaviour.content or ""
        elif behaviour.kind == "invalid_json":
            content = "Assessment: the patient seems stable {risk_score: high"
        elif behaviour.kind == "out_of_range":
            content = json.dumps(OUT_OF_RANGE_ANSWER)
        else:
            content = json.dumps(computed_answer(record.prompt_text))
        if fmt is None:
            # Without a JSON response format a chat model tends to wrap JSON in prose.
            content = f"Here is my assessment: {content}"
        return web.json_response(self._completion(content, model=model, prompt=record.prompt_text))

    def _completion(self, content: str, *, model: str, prompt: str) -> dict[str, Any]:
        prompt_tokens = max(1, len(prompt) // 4)
        completion_tokens = max(1, len(content) // 4)
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    # ---- admin endpoints ---------------------------------------------------------------------
    async def _admin_script(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        raw = body.get("behaviours", [])
        if not isinstance(raw, list):
            return web.json_response({"error": "'behaviours' must be a list"}, status=400)
        try:
            behaviours = [Behaviour.from_dict(item) for item in raw if isinstance(item, Mapping)]
        except BehaviourError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.script(*behaviours)
        return web.json_response(self.stats())

    async def _admin_config(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        try:
            default = body.get("default")
            self.configure(
                default=Behaviour.from_dict(default) if isinstance(default, Mapping) else None,
                latency_s=float(body["latency_s"]) if "latency_s" in body else None,
                reject_json_schema=(
                    bool(body["reject_json_schema"]) if "reject_json_schema" in body else None
                ),
                reject_params=(
                    [str(p) for p in body["reject_params"]] if "reject_params" in body else None
                ),
            )
        except (BehaviourError, TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.stats())

    async def _admin_hold(self, _: web.Request) -> web.Response:
        self.hold()
        return web.json_response(self.stats())

    async def _admin_release(self, _: web.Request) -> web.Response:
        self.release()
        return web.json_response(self.stats())

    async def _admin_reset(self, _: web.Request) -> web.Response:
        self.reset()
        return web.json_response(self.stats())

    async def _admin_stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _admin_requests(self, _: web.Request) -> web.Response:
        return web.json_response([r.as_json() for r in self._state.requests])


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=dict(headers or {}))


async def _json_object(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


async def _serve(host: str, port: int, latency_s: float, api_key: str, reject: bool) -> None:
    server = FakeOpenAI(api_key=api_key, latency_s=latency_s, reject_json_schema=reject)
    await server.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # One line on stdout so a parent process can learn the port (useful with --port 0).
    sys.stdout.write(json.dumps({"listening": server.origin, "port": server.port}) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible test server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument(
        "--reject-json-schema",
        action="store_true",
        help="answer 400 to response_format json_schema (a server without structured output)",
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.latency, args.api_key, args.reject_json_schema))


if __name__ == "__main__":
    main()
