"""What the hospital interfaces (FHIR input, CDS Hooks) need, opened by the gateway's
lifespan: the JWT verifier (with its session for fetching JWK Sets and FHIR servers), the
Redis client behind the replay check and the feedback store, and the small thread pool that
reads FHIR Bundles off the event loop (validating a Bundle with fhir.resources takes about
0.5 ms per resource: 17 ms for a 33-entry Bundle, 220 ms for 513 entries, which would hold
every other request of the gateway if run on the loop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import aiohttp
import redis.asyncio as aioredis
from fastapi import Depends, Request

from sepsis_gateway.config import GatewaySettings
from sepsis_gateway.feedback import FeedbackStore
from sepsis_gateway.fhir import FhirConversion, bundle_to_patient
from sepsis_gateway.jwt_auth import JwtVerifier, RedisReplay, parse_clients

CDS_STATE_KEY = "cds"
FHIR_THREADS = 2  # the machines have 2 cores; more threads would only contend for the GIL


@dataclass(frozen=True, slots=True)
class Cds:
    verifier: JwtVerifier
    feedback: FeedbackStore
    public_url: str | None
    session: aiohttp.ClientSession
    """Outbound calls of CDS Hooks: CDS clients' JWK Sets and FHIR servers."""
    fhir_pool: Executor
    """Where FHIR Bundles are converted (`fhir.bundle_to_patient`)."""

    async def convert(self, bundle: object) -> FhirConversion:
        """`fhir.bundle_to_patient` on the FHIR pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.fhir_pool, bundle_to_patient, bundle)


@asynccontextmanager
async def open_cds(settings: GatewaySettings) -> AsyncIterator[Cds]:
    """The CDS Hooks state for the lifespan; Redis is connected lazily, on first use."""
    timeout = settings.gateway_redis_timeout_s
    client = aioredis.Redis.from_url(
        settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    namespace = settings.gateway_redis_namespace
    pool = ThreadPoolExecutor(max_workers=FHIR_THREADS, thread_name_prefix="gateway-fhir")
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
                fhir_pool=pool,
            )
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            await client.aclose()


async def get_cds(request: Request) -> Cds:
    """The lifespan's CDS Hooks state."""
    cds: Cds = getattr(request.state, CDS_STATE_KEY)
    return cds


CdsDep = Annotated[Cds, Depends(get_cds)]
