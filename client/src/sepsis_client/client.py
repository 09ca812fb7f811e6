"""`SepsisClient` (sync) and `AsyncSepsisClient` (async) over httpx.

Both send the key in `X-API-Key`, apply a timeout to every call, turn an error answer into the
exception of its status (`sepsis_client.errors`) and retry, a bounded number of times, what is
worth retrying: a 429 or a 503 (waiting what `Retry-After` says, capped at `max_retry_wait_s`,
else a doubling back-off) and a connection that could not be made. Every operation of the API
is idempotent (an assessment is a function of the patient sent; a reload re-reads a file), so
retrying a POST repeats no side effect. `OPERATIONS` lists each public operation the client
covers; its tests compare that list with the gateway's OpenAPI document.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final, Self

import httpx

from sepsis_client.errors import SepsisError, error_for
from sepsis_client.models import (
    BatchResponse,
    FhirGenAIAssessment,
    FhirMLAssessment,
    GenAIAssessment,
    Health,
    MLAssessment,
    MLBatchResponse,
    Performance,
)

FHIR_JSON: Final = "application/fhir+json"
_RETRY_STATUSES: Final = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str


OPERATIONS: Final[Mapping[str, Operation]] = {
    "index": Operation("GET", "/"),
    "health": Operation("GET", "/health"),
    "classify": Operation("POST", "/classify"),
    "classify_batch": Operation("POST", "/classify-batch"),
    "genai_classify": Operation("POST", "/genai-classify"),
    "genai_classify_batch": Operation("POST", "/genai-classify-batch"),
    "fhir_classify": Operation("POST", "/fhir/classify"),
    "fhir_genai_classify": Operation("POST", "/fhir/genai-classify"),
    "config_current": Operation("GET", "/config/current"),
    "reload_config": Operation("POST", "/reload-config"),
    "genai_health": Operation("GET", "/genai-health"),
    "guardrail_thresholds": Operation("GET", "/genai-guardrail/thresholds"),
    "guardrail_reload": Operation("POST", "/genai-guardrail/reload"),
    "performance": Operation("GET", "/performance"),
}
"""Client method -> the operation it calls."""

NOT_COVERED: Final[Mapping[str, str]] = {
    "GET /docs": "Swagger UI, a page for people",
    "GET /openapi.json": "the document this client is checked against",
    "GET /cds-services": "CDS Hooks: called by an EHR with its own signed JWT",
    "POST /cds-services/sepsis-risk": "CDS Hooks: called by an EHR with its own signed JWT",
    "POST /cds-services/sepsis-risk/feedback": "CDS Hooks: called by an EHR with its JWT",
    "GET /cds-services/sepsis-risk/assessments/{link}": "the page a CDS card links to",
}
"""Public operations deliberately left out of the client, and why."""


def retry_delay(response: httpx.Response | None, attempt: int, *, cap_s: float) -> float:
    """How long to wait before attempt `attempt + 1`: `Retry-After` (seconds or an HTTP date)
    when the server sent one, else 0.5 s doubling; never more than `cap_s`."""
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        try:
            wait = float(header)
        except ValueError:
            try:
                wait = parsedate_to_datetime(header).timestamp() - time.time()
            except (TypeError, ValueError):
                wait = 0.5 * 2.0**attempt
        return max(0.0, min(wait, cap_s))
    return min(0.5 * 2.0**attempt, cap_s)


def _decode(response: httpx.Response) -> Any:
    if response.is_success:
        try:
            return response.json()
        except ValueError:
            raise SepsisError(
                response.status_code, "unexpected_answer", "the answer is not JSON"
            ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    retry_after = response.headers.get("retry-after")
    wait = float(retry_after) if retry_after and retry_after.isdigit() else None
    raise error_for(response.status_code, body, wait)


class _Base:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 3,
        max_retry_wait_s: float = 30.0,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required (the gateway's X-API-Key)")
        self.base_url = base_url.rstrip("/")
        self.headers = {"X-API-Key": api_key, "Accept": "application/json"}
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s

    def _request(
        self, op: str, body: Any, content_type: str | None
    ) -> tuple[str, str, dict[str, str], Any]:
        operation = OPERATIONS[op]
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        return operation.method, operation.path, headers, body


class SepsisClient(_Base):
    """The API, synchronously. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 3,
        max_retry_wait_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            max_retries=max_retries,
            max_retry_wait_s=max_retry_wait_s,
        )
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, op: str, body: Any = None, content_type: str | None = None) -> Any:
        method, path, headers, payload = self._request(op, body, content_type)
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, path, json=payload if payload is not None else None, headers=headers
                )
            except httpx.ConnectError:
                if attempt >= self.max_retries:
                    raise
                time.sleep(retry_delay(None, attempt, cap_s=self.max_retry_wait_s))
                attempt += 1
                continue
            if response.status_code in _RETRY_STATUSES and attempt < self.max_retries:
                time.sleep(retry_delay(response, attempt, cap_s=self.max_retry_wait_s))
                attempt += 1
                continue
            return _decode(response)

    def index(self) -> dict[str, Any]:
        """Name, version and the list of endpoints."""
        result: dict[str, Any] = self._call("index")
        return result

    def health(self) -> Health:
        """Gateway liveness and each service's last known state."""
        return Health.model_validate(self._call("health"))

    def classify(self, patient: Mapping[str, Any]) -> MLAssessment:
        """One patient through the hybrid ML pathway."""
        return MLAssessment.model_validate(self._call("classify", patient))

    def classify_batch(self, patients: Sequence[Mapping[str, Any]]) -> MLBatchResponse:
        """Many patients through the hybrid ML pathway, in order."""
        return MLBatchResponse.model_validate(
            self._call("classify_batch", {"patients": list(patients)})
        )

    def genai_classify(self, patient: Mapping[str, Any]) -> GenAIAssessment:
        """One patient through the GenAI pathway (LLM + guardrail)."""
        return GenAIAssessment.model_validate(self._call("genai_classify", patient))

    def genai_classify_batch(self, patients: Sequence[Mapping[str, Any]]) -> BatchResponse:
        """Many patients through the GenAI pathway, in order."""
        return BatchResponse.model_validate(
            self._call("genai_classify_batch", {"patients": list(patients)})
        )

    def fhir_classify(self, bundle: Mapping[str, Any]) -> FhirMLAssessment:
        """A FHIR R4 Bundle through the hybrid ML pathway."""
        return FhirMLAssessment.model_validate(self._call("fhir_classify", bundle, FHIR_JSON))

    def fhir_genai_classify(self, bundle: Mapping[str, Any]) -> FhirGenAIAssessment:
        """A FHIR R4 Bundle through the GenAI pathway."""
        return FhirGenAIAssessment.model_validate(
            self._call("fhir_genai_classify", bundle, FHIR_JSON)
        )

    def config_current(self) -> dict[str, Any]:
        """The active ML config."""
        result: dict[str, Any] = self._call("config_current")
        return result

    def reload_config(self) -> dict[str, Any]:
        """Re-read the ML config (needs an admin key)."""
        result: dict[str, Any] = self._call("reload_config")
        return result

    def genai_health(self) -> dict[str, Any]:
        """The GenAI pipeline, LLM provider and cache state."""
        result: dict[str, Any] = self._call("genai_health")
        return result

    def guardrail_thresholds(self) -> dict[str, Any]:
        """The active guardrail config."""
        result: dict[str, Any] = self._call("guardrail_thresholds")
        return result

    def guardrail_reload(self) -> dict[str, Any]:
        """Re-read the guardrail config (needs an admin key)."""
        result: dict[str, Any] = self._call("guardrail_reload")
        return result

    def performance(self) -> Performance:
        """Latency percentiles, counts and error rates; CDS Hooks feedback."""
        return Performance.model_validate(self._call("performance"))


class AsyncSepsisClient(_Base):
    """The API, asynchronously. Use as an async context manager, or await `aclose()`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 3,
        max_retry_wait_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            max_retries=max_retries,
            max_retry_wait_s=max_retry_wait_s,
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, op: str, body: Any = None, content_type: str | None = None) -> Any:
        method, path, headers, payload = self._request(op, body, content_type)
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method, path, json=payload if payload is not None else None, headers=headers
                )
            except httpx.ConnectError:
                if attempt >= self.max_retries:
                    raise
                await asyncio.sleep(retry_delay(None, attempt, cap_s=self.max_retry_wait_s))
                attempt += 1
                continue
            if response.status_code in _RETRY_STATUSES and attempt < self.max_retries:
                await asyncio.sleep(retry_delay(response, attempt, cap_s=self.max_retry_wait_s))
                attempt += 1
                continue
            return _decode(response)

    async def index(self) -> dict[str, Any]:
        """Name, version and the list of endpoints."""
        result: dict[str, Any] = await self._call("index")
        return result

    async def health(self) -> Health:
        """Gateway liveness and each service's last known state."""
        return Health.model_validate(await self._call("health"))

    async def classify(self, patient: Mapping[str, Any]) -> MLAssessment:
        """One patient through the hybrid ML pathway."""
        return MLAssessment.model_validate(await self._call("classify", patient))

    async def classify_batch(self, patients: Sequence[Mapping[str, Any]]) -> MLBatchResponse:
        """Many patients through the hybrid ML pathway, in order."""
        return MLBatchResponse.model_validate(
            await self._call("classify_batch", {"patients": list(patients)})
        )

    async def genai_classify(self, patient: Mapping[str, Any]) -> GenAIAssessment:
        """One patient through the GenAI pathway (LLM + guardrail)."""
        return GenAIAssessment.model_validate(await self._call("genai_classify", patient))

    async def genai_classify_batch(self, patients: Sequence[Mapping[str, Any]]) -> BatchResponse:
        """Many patients through the GenAI pathway, in order."""
        return BatchResponse.model_validate(
            await self._call("genai_classify_batch", {"patients": list(patients)})
        )

    async def fhir_classify(self, bundle: Mapping[str, Any]) -> FhirMLAssessment:
        """A FHIR R4 Bundle through the hybrid ML pathway."""
        return FhirMLAssessment.model_validate(await self._call("fhir_classify", bundle, FHIR_JSON))

    async def fhir_genai_classify(self, bundle: Mapping[str, Any]) -> FhirGenAIAssessment:
        """A FHIR R4 Bundle through the GenAI pathway."""
        return FhirGenAIAssessment.model_validate(
            await self._call("fhir_genai_classify", bundle, FHIR_JSON)
        )

    async def config_current(self) -> dict[str, Any]:
        """The active ML config."""
        result: dict[str, Any] = await self._call("config_current")
        return result

    async def reload_config(self) -> dict[str, Any]:
        """Re-read the ML config (needs an admin key)."""
        result: dict[str, Any] = await self._call("reload_config")
        return result

    async def genai_health(self) -> dict[str, Any]:
        """The GenAI pipeline, LLM provider and cache state."""
        result: dict[str, Any] = await self._call("genai_health")
        return result

    async def guardrail_thresholds(self) -> dict[str, Any]:
        """The active guardrail config."""
        result: dict[str, Any] = await self._call("guardrail_thresholds")
        return result

    async def guardrail_reload(self) -> dict[str, Any]:
        """Re-read the guardrail config (needs an admin key)."""
        result: dict[str, Any] = await self._call("guardrail_reload")
        return result

    async def performance(self) -> Performance:
        """Latency percentiles, counts and error rates; CDS Hooks feedback."""
        return Performance.model_validate(await self._call("performance"))
