"""The upstream services: one pooled aiohttp session each, timeouts, a circuit breaker and the
last known state.

Failures are mapped to the shared envelope within the upstream's timeout and name the upstream,
never an exception's text:

    connection refused, connect timeout, circuit open  -> 503 upstream_unavailable
    no answer within the total timeout                 -> 504 upstream_timeout
    a broken answer (bad HTTP, truncated, not JSON)    -> 502 upstream_error

The circuit breaker opens after `threshold` consecutive connection failures or timeouts, fails
fast while open, lets a single call through as a probe once the cool-down has passed
(half-open), and closes again on the first answer. The background health probe of `/readyz`
feeds the same breaker, so a service that comes back closes it without waiting for traffic.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aiohttp

from sepsis_gateway.metrics import Metrics
from sepsis_shared.errors import ServiceError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from sepsis_shared.requestid import REQUEST_ID_HEADER
from sepsis_shared.settings import SERVICE_TOKEN_HEADER

logger = logging.getLogger("sepsis.gateway.upstream")

# uvicorn drops idle keep-alive connections after 5 s; giving them up first avoids sending a
# request down a connection the server is closing.
KEEPALIVE_S = 4.0
CONTROL_MAX_CONNECTIONS = 8
"""The pool of each upstream's control calls (health probe, configuration, admin, documents):
apart from the traffic pool, so that calls stuck behind a hanging dependency cannot starve
them."""


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a single half-open probe."""

    def __init__(
        self, *, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.state = CircuitState.CLOSED
        self.failures = 0
        self._opened_at = 0.0
        self._probing = False

    def view(self) -> CircuitState:
        """The state as the next call would find it (open turns half-open after the cool-down)."""
        if self.state is CircuitState.OPEN and self.clock() - self._opened_at >= self.cooldown_s:
            return CircuitState.HALF_OPEN
        return self.state

    def allow(self) -> bool:
        """Whether a call may go out now (taking the probe slot when half-open)."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if self.clock() - self._opened_at < self.cooldown_s:
                return False
            self.state = CircuitState.HALF_OPEN
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        """The upstream answered: close the circuit."""
        if self.state is not CircuitState.CLOSED:
            logger.info("circuit closed")
        self.state = CircuitState.CLOSED
        self.failures = 0
        self._probing = False

    def record_failure(self) -> None:
        """A connection failure or timeout: count it, open the circuit at the threshold."""
        self.failures += 1
        self._probing = False
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.threshold:
            if self.state is not CircuitState.OPEN:
                logger.warning("circuit opened after %d consecutive failures", self.failures)
            self.state = CircuitState.OPEN
            self._opened_at = self.clock()

    def release(self) -> None:
        """A call ended without a verdict (cancelled, or not a connection matter)."""
        self._probing = False

    def retry_after_s(self) -> int:
        """Whole seconds until the next probe may go out."""
        remaining = self.cooldown_s - (self.clock() - self._opened_at)
        return max(1, math.ceil(remaining))


class UpstreamStatus(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """An upstream's answer, body untouched."""

    status: int
    body: bytes
    content_type: bytes
    retry_after: bytes | None = None


@dataclass(frozen=True, slots=True)
class _Failure:
    error: ServiceError
    counts: bool  # whether it is a connection failure/timeout for the breaker
    retry: bool  # whether one more attempt on a fresh connection is safe and useful


def open_session(*, max_connections: int, token: str) -> aiohttp.ClientSession:
    """A pooled session for one upstream; every call carries the internal service token."""
    connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=KEEPALIVE_S)
    return aiohttp.ClientSession(
        connector=connector,
        headers={SERVICE_TOKEN_HEADER: token},
        # Bodies pass through as bytes: no Accept-Encoding is offered, so nothing comes back
        # compressed and there is nothing to decompress; the services set no cookies.
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
    )


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


class Upstream:
    """One upstream service as seen from the gateway."""

    def __init__(
        self,
        *,
        name: str,
        label: str,
        base_url: str,
        session: aiohttp.ClientSession,
        control_session: aiohttp.ClientSession,
        connect_timeout_s: float,
        total_timeout_s: float,
        breaker: CircuitBreaker,
        metrics: Metrics,
    ) -> None:
        self.name = name
        self.label = label
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.control_session = control_session
        self.connect_timeout_s = connect_timeout_s
        self.total_timeout_s = total_timeout_s
        self.timeout = aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=connect_timeout_s)
        self.breaker = breaker
        self.metrics = metrics
        self.status = UpstreamStatus.UNKNOWN
        self.last_checked: float | None = None
        self.reason: str | None = None
        self.up_since: float | None = None
        """Monotonic time the upstream last came (back) up."""

    # -- state ---------------------------------------------------------------------------

    def _mark(self, status: UpstreamStatus, reason: str | None = None) -> None:
        if status is not self.status:
            logger.info("upstream %s is %s", self.name, status.value, extra={"upstream": self.name})
            if status is UpstreamStatus.UP:
                self.up_since = time.monotonic()
        self.status = status
        self.reason = reason
        self.last_checked = time.time()

    def health(self) -> dict[str, Any]:
        """Last known state, as `/health` reports it."""
        checked = (
            None
            if self.last_checked is None
            else datetime.fromtimestamp(self.last_checked, UTC).isoformat(timespec="seconds")
        )
        out: dict[str, Any] = {
            "status": self.status.value,
            "last_checked": checked,
            "circuit": self.breaker.view().value,
        }
        if self.reason:
            out["reason"] = self.reason
        return out

    # -- calls ---------------------------------------------------------------------------

    def _unavailable_circuit(self) -> UpstreamUnavailable:
        wait = self.breaker.retry_after_s()
        return UpstreamUnavailable(
            f"{self.label} is unavailable; the gateway stopped calling it after repeated "
            f"failures and will try again in {wait} s.",
            details={"upstream": self.name, "circuit": "open"},
            headers={"Retry-After": str(wait)},
        )

    def _failure(self, exc: BaseException, timeout: aiohttp.ClientTimeout) -> _Failure:
        details = {"upstream": self.name}
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return _Failure(
                UpstreamUnavailable(
                    f"{self.label} did not accept a connection within {timeout.sock_connect:g} s.",
                    details=details,
                ),
                counts=True,
                retry=False,
            )
        if isinstance(exc, TimeoutError):
            return _Failure(
                UpstreamTimeout(
                    f"{self.label} did not answer within {timeout.total:g} s.", details=details
                ),
                counts=True,
                retry=False,
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return _Failure(
                UpstreamUnavailable(
                    f"{self.label} is unavailable (cannot connect).", details=details
                ),
                counts=True,
                retry=False,
            )
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            # Most often a pooled connection the server had just closed: one fresh attempt.
            return _Failure(
                UpstreamError(
                    f"{self.label} closed the connection without answering.", details=details
                ),
                counts=True,
                retry=True,
            )
        if isinstance(exc, aiohttp.ClientOSError):
            return _Failure(
                UpstreamError(f"{self.label} dropped the connection.", details=details),
                counts=True,
                retry=False,
            )
        return _Failure(
            UpstreamError(f"{self.label} sent a malformed answer.", details=details),
            counts=False,
            retry=False,
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
        measured: bool = True,
        control: bool = False,
    ) -> UpstreamReply:
        """Send one request through the breaker; raise a ServiceError when no usable answer.

        Any HTTP answer (even a 5xx) counts as the upstream being reachable; its status and
        body are returned untouched. `measured=False` keeps the gateway's own housekeeping
        calls (documents, figures) out of the per-upstream call figures; `control=True` sends
        the call over the control pool.
        """
        if not self.breaker.allow():
            raise self._unavailable_circuit()
        budget = timeout = client_timeout or self.timeout
        url = self.base_url + path
        started = time.perf_counter()
        attempts = 2
        try:
            while True:
                attempts -= 1
                try:
                    session = self.control_session if control else self.session
                    async with session.request(
                        method, url, data=body, headers=headers, timeout=timeout
                    ) as resp:
                        payload = await resp.read()
                        status = resp.status
                        raw_headers = resp.raw_headers
                    break
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failure = self._failure(exc, budget)
                    left_s = (budget.total or 0.0) - (time.perf_counter() - started)
                    if failure.retry and attempts > 0 and left_s > 0.05:
                        # The retry gets what is left of the budget, never a fresh one.
                        timeout = aiohttp.ClientTimeout(
                            total=left_s, sock_connect=timeout.sock_connect
                        )
                        continue
                    if measured:
                        ms = (time.perf_counter() - started) * 1000
                        self.metrics.record_upstream(self.name, 0, ms)
                    if failure.counts:
                        self.breaker.record_failure()
                        self._mark(UpstreamStatus.DOWN, failure.error.message)
                    else:
                        self.breaker.release()
                    logger.warning(
                        "upstream call failed: %s",
                        failure.error.code,
                        extra={"upstream": self.name, "error_type": type(exc).__name__},
                    )
                    raise failure.error from None
        except BaseException:
            # Cancelled (client went away) or failed above: free the half-open probe slot.
            self.breaker.release()
            raise
        if measured:
            ms = (time.perf_counter() - started) * 1000
            self.metrics.record_upstream(self.name, status, ms)
        self.breaker.record_success()
        if self.status is not UpstreamStatus.UP:
            self._mark(UpstreamStatus.UP)
        else:
            self.last_checked = time.time()
        content_type: bytes | None = None
        retry_after: bytes | None = None
        for name, value in raw_headers:
            lowered = name.lower()
            if lowered == b"content-type":
                content_type = value
            elif lowered == b"retry-after":
                retry_after = value
        if content_type is None or not _is_json(content_type):
            raise UpstreamError(
                f"{self.label} sent an answer that is not JSON.",
                details={"upstream": self.name, "upstream_status": status},
            )
        return UpstreamReply(status, payload, content_type, retry_after)

    async def get_json(self, path: str, *, timeout_s: float, request_id: str | None) -> Any:
        """GET a JSON document (service OpenAPI, performance figures) with a short timeout."""
        timeout = aiohttp.ClientTimeout(
            total=min(timeout_s, self.total_timeout_s), sock_connect=self.connect_timeout_s
        )
        headers = {REQUEST_ID_HEADER: request_id} if request_id else None
        reply = await self.call(
            "GET", path, headers=headers, client_timeout=timeout, measured=False, control=True
        )
        if reply.status != 200:
            raise UpstreamError(
                f"{self.label} answered {reply.status} on {path}.",
                details={"upstream": self.name, "upstream_status": reply.status},
            )
        try:
            return json.loads(reply.body)
        except ValueError:
            raise UpstreamError(
                f"{self.label} sent malformed JSON on {path}.", details={"upstream": self.name}
            ) from None

    async def probe(self, *, timeout_s: float) -> bool:
        """Check `/readyz` (bypassing the breaker) and update the state; True when ready."""
        timeout = aiohttp.ClientTimeout(
            total=timeout_s, sock_connect=min(timeout_s, self.connect_timeout_s)
        )
        try:
            async with self.control_session.get(self.base_url + "/readyz", timeout=timeout) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = self._failure(exc, timeout)
            if failure.counts:
                self.breaker.record_failure()
            self._mark(UpstreamStatus.DOWN, failure.error.message)
            return False
        if status == 200:
            self.breaker.record_success()
            self._mark(UpstreamStatus.UP)
            return True
        # Reachable but not ready (loading, misconfigured): down, breaker left as it is.
        self._mark(UpstreamStatus.DOWN, f"{self.label} is not ready (readyz answered {status}).")
        return False
