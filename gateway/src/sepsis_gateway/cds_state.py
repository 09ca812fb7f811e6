"""What the CDS Hooks routes need, opened by the gateway's lifespan: the JWT verifier (with
its session for fetching JWK Sets), the Redis client behind the replay check and the
feedback store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import aiohttp
import redis.asyncio as aioredis
from fastapi import Depends, Request

from sepsis_gateway.config import GatewaySettings
from sepsis_gateway.feedback import FeedbackStore
from sepsis_gateway.jwt_auth import JwtVerifier, RedisReplay, parse_clients

CDS_STATE_KEY = "cds"


@dataclass(frozen=True, slots=True)
class Cds:
    verifier: JwtVerifier
    feedback: FeedbackStore
    public_url: str | None
    session: aiohttp.ClientSession
    """Outbound calls of CDS Hooks: CDS clients' JWK Sets and FHIR servers."""


@asynccontextmanager
async def open_cds(settings: GatewaySettings) -> AsyncIterator[Cds]:
    """The CDS Hooks state for the lifespan; Redis is connected lazily, on first use."""
    timeout = settings.gateway_redis_timeout_s
    client = aioredis.Redis.from_url(
        settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    namespace = settings.gateway_redis_namespace
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        try:
            yield Cds(
                verifier=JwtVerifier(
                    clients=parse_clients(settings.cds_clients),
                    public_url=settings.cds_public_url,
                    replay=RedisReplay(client, namespace=namespace),
                    session=session,
                    max_lifetime_s=settings.cds_jwt_max_lifetime_s,
                ),
                feedback=FeedbackStore(
                    client, namespace=namespace, ttl_s=settings.cds_feedback_ttl_s
                ),
                public_url=settings.cds_public_url.rstrip("/") if settings.cds_public_url else None,
                session=session,
            )
        finally:
            await client.aclose()


async def get_cds(request: Request) -> Cds:
    """The lifespan's CDS Hooks state."""
    cds: Cds = getattr(request.state, CDS_STATE_KEY)
    return cds


CdsDep = Annotated[Cds, Depends(get_cds)]
