"""The background health probe: every few seconds, each upstream's `/readyz`.

It keeps `/health` current without client traffic, closes a circuit as soon as its upstream is
back, and refreshes an upstream's OpenAPI document when it comes back (or when the cached one is
older than its TTL).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from sepsis_gateway.openapi import ApiDocs
from sepsis_gateway.upstream import Upstream

logger = logging.getLogger("sepsis.gateway.monitor")


async def watch_upstreams(
    upstreams: Mapping[str, Upstream],
    docs: ApiDocs,
    *,
    interval_s: float,
    timeout_s: float,
) -> None:
    """Probe every upstream forever (until cancelled)."""
    while True:
        try:
            await asyncio.gather(*(u.probe(timeout_s=timeout_s) for u in upstreams.values()))
            await docs.refresh_due()
        except Exception:
            # The probe must outlive any single failure; the next round tries again.
            logger.exception("upstream probe round failed")
        await asyncio.sleep(interval_s)
