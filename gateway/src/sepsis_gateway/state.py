"""What the lifespan hands to the handlers (one frozen object), and the typed dependencies
that read it: the gateway itself and the caller's key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from sepsis_gateway.auth import API_KEY_HEADER, KeyRing, Principal, Role
from sepsis_gateway.config import GatewaySettings
from sepsis_gateway.metrics import Metrics
from sepsis_gateway.openapi import ApiDocs
from sepsis_gateway.ratelimit import RateLimiter
from sepsis_gateway.upstream import Upstream
from sepsis_shared.errors import Forbidden, RateLimited, Unauthorized

STATE_KEY = "gateway"


@dataclass(frozen=True, slots=True)
class Gateway:
    """Everything a request handler needs, opened by the lifespan."""

    settings: GatewaySettings
    version: str
    keys: KeyRing
    limiter: RateLimiter
    metrics: Metrics
    upstreams: Mapping[str, Upstream]
    docs: ApiDocs


async def get_gateway(request: Request) -> Gateway:
    """The lifespan's Gateway object."""
    gateway: Gateway = getattr(request.state, STATE_KEY)
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]

# auto_error=False: a missing key is answered in the shared envelope, not FastAPI's default.
api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="ApiKeyAuth",
    description="A client key (API_KEY / API_KEYS); the reload routes need an admin key.",
    auto_error=False,
)


def authorise(
    gateway: Gateway, presented: bytes | None, needed: Role, *, copies: int = 1
) -> Principal:
    """The caller's principal when its key is valid, has the role and is within its rate
    limit; else the 401, 403 or 429 to answer. `copies`: how many key headers were sent;
    more than one is refused whatever they hold (which one counts would be up to each proxy
    on the way)."""
    if copies > 1:
        raise Unauthorized(f"Send exactly one {API_KEY_HEADER} header ({copies} were sent).")
    principal = gateway.keys.identify(presented)
    if principal is None:
        if presented:
            raise Unauthorized(f"Invalid API key in {API_KEY_HEADER}.")
        raise Unauthorized(f"Missing API key: send it in the {API_KEY_HEADER} header.")
    if principal.role < needed:
        raise Forbidden("This route needs an admin key.")
    wait_s = gateway.limiter.acquire(principal.key_id)
    if wait_s > 0:
        raise RateLimited(
            "Too many requests for this API key; retry after the delay in Retry-After.",
            retry_after_s=RateLimiter.retry_after(wait_s),
        )
    return principal


async def require_client(
    request: Request,
    gateway: GatewayDep,
    presented: Annotated[str | None, Security(api_key_scheme)],
) -> Principal:
    """A valid client or admin key, within its rate limit."""
    return authorise(
        gateway,
        presented.encode() if presented else None,
        Role.CLIENT,
        copies=len(request.headers.getlist(API_KEY_HEADER)),
    )


ClientKey = Annotated[Principal, Depends(require_client)]
