"""The API's error envelope as exceptions, one class per status the API documents.

    SepsisError                    any error answer (or a broken one)
     ├── BadRequest         400    ├── RateLimited          429 (retry_after_s)
     ├── Unauthorized       401    ├── UpstreamError        502
     ├── Forbidden          403    ├── UpstreamUnavailable  503 (retry_after_s)
     ├── NotFound           404    ├── UpstreamTimeout      504
     ├── PayloadTooLarge    413    └── ServerError          other 5xx
     ├── UnsupportedMediaType 415
     └── InvalidInput       422 (fields: every bad field named by the API)

Each carries the envelope's `code`, `message`, `request_id` and `details` as sent.
"""

from __future__ import annotations

from typing import Any


class SepsisError(Exception):
    """An error answer of the API: its HTTP status and the envelope's members."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        details: Any = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details = details
        self.retry_after_s = retry_after_s


class BadRequest(SepsisError):
    pass


class Unauthorized(SepsisError):
    pass


class Forbidden(SepsisError):
    pass


class NotFound(SepsisError):
    pass


class PayloadTooLarge(SepsisError):
    pass


class UnsupportedMediaType(SepsisError):
    pass


class InvalidInput(SepsisError):
    @property
    def fields(self) -> list[str]:
        """The names of the bad fields (`vitals.HR[0].ts`, `Bundle.entry[3]...`)."""
        if isinstance(self.details, list):
            return [str(d.get("field")) for d in self.details if isinstance(d, dict)]
        return []


class RateLimited(SepsisError):
    pass


class UpstreamError(SepsisError):
    pass


class UpstreamUnavailable(SepsisError):
    pass


class UpstreamTimeout(SepsisError):
    pass


class ServerError(SepsisError):
    pass


BY_STATUS: dict[int, type[SepsisError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    429: RateLimited,
    502: UpstreamError,
    503: UpstreamUnavailable,
    504: UpstreamTimeout,
}


def error_for(status: int, body: Any, retry_after_s: float | None) -> SepsisError:
    """The exception of an error answer (an envelope, or whatever else came back)."""
    cls = BY_STATUS.get(status, ServerError if status >= 500 else SepsisError)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return cls(
            status,
            str(error.get("code") or "error"),
            str(error.get("message") or ""),
            request_id=error.get("request_id"),
            details=error.get("details"),
            retry_after_s=retry_after_s,
        )
    return cls(
        status,
        "unexpected_answer",
        f"HTTP {status} without the API's error envelope",
        retry_after_s=retry_after_s,
    )
