"""One patient assessed by a pathway on behalf of the gateway's own routes (FHIR, CDS Hooks).

The forwarded routes pass bodies through untouched (`proxy.py`); these routes build the
patient request themselves, so they send it to the same upstream path (`/classify` or
`/genai-classify`) with the request id, and read the answer back: an assessment to augment,
or an error envelope to hand on with its status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from sepsis_gateway.state import Gateway
from sepsis_gateway.upstream import UpstreamReply
from sepsis_shared.errors import InvalidInput, PayloadTooLarge, UpstreamError
from sepsis_shared.requestid import REQUEST_ID_HEADER, current_request_id

PATHWAYS = {"ml": "/classify", "genai": "/genai-classify"}
"""Upstream name -> the path of its single-patient assessment."""


@dataclass(frozen=True, slots=True)
class Assessed:
    """A pathway's answer: its status, and the decoded body (an assessment when 200)."""

    status: int
    body: dict[str, Any]
    retry_after: bytes | None = None


async def read_json(request: Request, *, limit: int) -> object:
    """The request body decoded as JSON; 413 past `limit` bytes, 422 when not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"Request body of {declared} bytes exceeds the limit of {limit} bytes.",
            details={"limit_bytes": limit},
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"Request body exceeds the limit of {limit} bytes.", details={"limit_bytes": limit}
            )
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise InvalidInput(
            "The body is not valid JSON.", details=[{"field": "body", "message": "not JSON"}]
        ) from None


async def assess(gateway: Gateway, upstream: str, patient: dict[str, Any]) -> Assessed:
    """Send one patient request to `upstream`'s assessment path; raise what the upstream
    call raises (503/504/502) when there is no usable answer."""
    body = json.dumps(patient, separators=(",", ":")).encode()
    headers = {
        REQUEST_ID_HEADER: current_request_id() or "",
        "Content-Type": "application/json",
    }
    reply: UpstreamReply = await gateway.upstreams[upstream].call(
        "POST", PATHWAYS[upstream], body=body, headers=headers
    )
    try:
        decoded = json.loads(reply.body)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        raise UpstreamError(
            f"{gateway.upstreams[upstream].label} sent an answer that is not a JSON object.",
            details={"upstream": upstream, "upstream_status": reply.status},
        )
    return Assessed(reply.status, decoded, reply.retry_after)
