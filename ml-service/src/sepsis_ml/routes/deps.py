"""What handlers receive: the frozen service state, and the raw body within its size limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sepsis_ml.runtime import ServiceState
from sepsis_shared.errors import NotReady, PayloadTooLarge

STATE_KEY = "ml"


async def get_state(request: Request) -> ServiceState:
    """The state the lifespan built (503 if the app runs without its lifespan).

    `async` although it awaits nothing: FastAPI runs a plain `def` dependency on a worker
    thread, which would cost every request a round trip to the thread pool."""
    state = getattr(request.state, STATE_KEY, None)
    if not isinstance(state, ServiceState):
        raise NotReady("ml-service is not started: the model is not loaded.")
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body as bytes; 413 as soon as it exceeds `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body exceeds {limit} bytes.", details={"max_body_bytes": limit}
    )
