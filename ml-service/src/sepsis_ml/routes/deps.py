"""What handlers receive: the frozen service state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sepsis_ml.runtime import ServiceState
from sepsis_shared.errors import NotReady

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
