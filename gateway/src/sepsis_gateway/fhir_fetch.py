"""Fetching what a CDS client did not prefetch from its own FHIR server.

CDS Hooks 2.0 lets a client give `fhirServer` and `fhirAuthorization` (a bearer token) instead
of prefetching; the service then runs its prefetch templates against that server itself. A
`fhirServer` is a URL from the request, so it is fetched only when it is one of the servers
configured for that client (`fhir_servers` in `CDS_CLIENTS`): the gateway never sends requests
where a caller points it. Each query has a timeout; one page is read (the templates ask for
the newest 200 resources). Any failure is a 412 naming the key, the specification's answer
when the service cannot obtain its data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from sepsis_gateway.cds_hooks import precondition_failed, prefetch_query

logger = logging.getLogger("sepsis.gateway.fhir_fetch")

FHIR_JSON = "application/fhir+json"


def allowed_server(server: object, allowed: Sequence[str]) -> str | None:
    """The FHIR base URL when it is (under) one of the allowed bases, else None."""
    if not isinstance(server, str):
        return None
    base = server.rstrip("/")
    for entry in allowed:
        root = entry.rstrip("/")
        if base == root or base.startswith(root + "/"):
            return base
    return None


async def fetch_missing(
    session: aiohttp.ClientSession,
    *,
    server: str,
    token: str,
    keys: Sequence[str],
    context: Mapping[str, Any],
    timeout_s: float,
) -> dict[str, Any]:
    """Each missing prefetch key run against `server` with `token`; 412 when one fails."""
    headers = {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON}
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def one(key: str) -> Any:
        url = f"{server}/{prefetch_query(key, context)}"
        async with session.get(url, headers=headers, timeout=timeout) as resp:
            if resp.status == 404 and key == "patient":
                return None
            if resp.status != 200:
                raise LookupError(f"the FHIR server answered {resp.status}")
            return await resp.json(content_type=None)

    results = await asyncio.gather(*(one(k) for k in keys), return_exceptions=True)
    fetched: dict[str, Any] = {}
    failed: list[str] = []
    for key, result in zip(keys, results, strict=True):
        if isinstance(result, BaseException):
            logger.warning("FHIR query for prefetch %s failed: %s", key, type(result).__name__)
            failed.append(key)
        elif result is not None and not isinstance(result, dict):
            failed.append(key)
        else:
            fetched[key] = result
    if failed:
        raise precondition_failed(failed, "the FHIR server given could not supply them.")
    return fetched
