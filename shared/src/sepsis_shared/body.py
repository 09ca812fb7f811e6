"""Request bodies as every route takes them: JSON only, within a size limit, decoded strictly.

One implementation for the gateway and both services, so that a body is refused the same way
whichever door it came through:

- a declared media type other than JSON (`application/json` or any `+json` type) is a 415; a
  body sent without a type is taken as JSON, as clients that send none mean it;
- past the size limit, a 413 as soon as it is known (declared length or bytes received);
- an empty body, or one that is not strict JSON (no NaN or Infinity literals, no lone
  surrogate escapes, at most the decoder's nesting depth), a 422 naming `body`.
"""

from __future__ import annotations

import pydantic_core
from fastapi import Request

from sepsis_shared.errors import FieldError, InvalidInput, PayloadTooLarge, UnsupportedMediaType


def check_json_media_type(content_type: str | None) -> None:
    """Raise UnsupportedMediaType unless the type is absent or a JSON type."""
    if content_type is None or not content_type.strip():
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise UnsupportedMediaType(
        f"Content-Type {media!r} is not accepted; send the body as application/json.",
        details={"content_type": media},
    )


def too_large(limit: int) -> PayloadTooLarge:
    """The 413 for a body past `limit` bytes."""
    return PayloadTooLarge(
        f"The request body exceeds {limit} bytes.", details={"max_body_bytes": limit}
    )


async def read_json_request(request: Request, limit: int) -> bytes:
    """The body of a JSON request as bytes (checked media type, at most `limit` bytes)."""
    check_json_media_type(request.headers.get("content-type"))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(body: bytes) -> object:
    """The body as JSON; a 422 naming `body` when it is empty or not strict JSON."""
    if not body.strip():
        message = "expected a JSON object, got an empty body"
    else:
        try:
            return pydantic_core.from_json(body, allow_inf_nan=False)
        except ValueError as exc:
            # The decoder's message says only what went wrong and where (line, column).
            message = f"the body is not valid JSON: {exc}"
    raise InvalidInput.for_fields([FieldError(field="body", message=message)])
