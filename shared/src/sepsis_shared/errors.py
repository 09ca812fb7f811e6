"""The exception tree and the error envelope shared by every service.

    ServiceError                      (500, internal_error)
     ├── InvalidInput                 (422, invalid_input)
     ├── Unauthorized                 (401, unauthorized)
     ├── Forbidden                    (403, forbidden)
     ├── NotFound                     (404, not_found)
     ├── PayloadTooLarge              (413, payload_too_large)
     ├── RateLimited                  (429, rate_limited)
     ├── NotReady                     (503, not_ready)
     ├── UpstreamUnavailable          (503, upstream_unavailable)
     ├── UpstreamTimeout              (504, upstream_timeout)
     └── UpstreamError                (502, upstream_error)

Every error leaves a service as one envelope::

    {"error": {"code": "...", "message": "...", "request_id": "...", "details": ...}}

Messages are written for the client; exception text of unknown errors is logged with its
traceback and never echoed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from sepsis_shared.requestid import REQUEST_ID_HEADER, current_request_id

logger = logging.getLogger("sepsis.errors")


class FieldError(BaseModel):
    """One problem with one input field."""

    field: str = Field(description="Dotted path of the offending field, e.g. `vitals.HR[2].val`.")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable snake_case error code.")
    message: str
    request_id: str | None = None
    details: Any = None


class ErrorEnvelope(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ServiceError(Exception):
    """Base of every error a service reports to its client."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers: dict[str, str] = dict(headers or {})


class InvalidInput(ServiceError):
    status = 422
    code = "invalid_input"

    @classmethod
    def for_fields(cls, errors: Sequence[FieldError]) -> InvalidInput:
        """One 422 naming every bad field."""
        names = ", ".join(e.field for e in errors[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        return cls(
            f"Invalid input: {names}{more}. {errors[0].message}" if errors else "Invalid input.",
            details=[e.model_dump() for e in errors],
        )


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"


class RequestTimeout(ServiceError):
    status = 408
    code = "request_timeout"


class RateLimited(ServiceError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, details: Any = None) -> None:
        super().__init__(
            message, details=details, headers={"Retry-After": str(max(1, retry_after_s))}
        )


class NotReady(ServiceError):
    status = 503
    code = "not_ready"


class UpstreamUnavailable(ServiceError):
    status = 503
    code = "upstream_unavailable"


class UpstreamTimeout(ServiceError):
    status = 504
    code = "upstream_timeout"


class UpstreamError(ServiceError):
    status = 502
    code = "upstream_error"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The envelope as a plain dict, stamped with the current request id."""
    return {
        "error": {
            "code": code,
            "message": message,
            "request_id": current_request_id(),
            "details": details,
        }
    }


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON response carrying the envelope."""
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def _loc_to_field(loc: Sequence[int | str]) -> str:
    parts: list[str] = []
    for item in loc:
        if item in ("body", "query", "path", "header"):
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts) or "body"


def validation_field_errors(errors: Sequence[Any]) -> list[FieldError]:
    """Pydantic/FastAPI validation errors as field errors with dotted paths."""
    out: list[FieldError] = []
    for err in errors:
        loc = err.get("loc", ()) if isinstance(err, Mapping) else ()
        msg = err.get("msg", "invalid value") if isinstance(err, Mapping) else str(err)
        out.append(FieldError(field=_loc_to_field(tuple(loc)), message=str(msg)))
    return out


async def _service_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if exc.status >= 500:
        logger.warning("request failed: %s (%s)", exc.code, exc.status)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    err = InvalidInput.for_fields(validation_field_errors(exc.errors()))
    return error_response(err.status, err.code, err.message, err.details)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _http_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), None, exc.headers)


async def _unhandled_handler(_: Request, exc: Exception) -> JSONResponse:
    # Starlette runs this outside every middleware, the request-id one included (which
    # leaves the id set on an exception): the header is added here.
    logger.error("unhandled error", exc_info=exc)
    rid = current_request_id()
    return error_response(
        500,
        "internal_error",
        "Internal error; see the server log.",
        headers={REQUEST_ID_HEADER: rid} if rid else None,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the envelope handlers on an app (no catch-all middleware)."""
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Exception, _unhandled_handler)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": desc}
    for status, desc in {
        401: "Missing or invalid API key",
        403: "The key lacks the admin role",
        413: "Body or batch too large",
        422: "Invalid input; `details` names each bad field",
        429: "Rate limited; see `Retry-After`",
        503: "Service not ready or upstream unavailable",
    }.items()
}
