"""`GET /genai-health`: LLM provider and its last outcomes, cache state, guardrail version."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from sepsis_genai.llm_probe import ProbeResult
from sepsis_genai.pipeline import pipeline_version
from sepsis_genai.routes.deps import Services, ServicesDep
from sepsis_genai.schemas import CacheHealth, GenAIHealth, HealthStatus, ProbeHealth

router = APIRouter(tags=["genai"])

NO_LLM_REASON = "no LLM configured"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _probe_view(probe: ProbeResult | None, services: Services) -> ProbeHealth:
    interval = services.settings.health_probe_interval_s
    if probe is None:
        return ProbeHealth(interval_s=interval, at=None, ok=None, error_kind=None, latency_ms=None)
    return ProbeHealth(
        interval_s=interval,
        at=_iso(probe.at),
        ok=probe.ok,
        error_kind=probe.error_kind,
        latency_ms=round(probe.latency_ms, 1),
    )


def health_of(services: Services) -> GenAIHealth:
    """The health document from the current state (no I/O)."""
    llm = services.llm
    cache = services.cache
    reasons: list[str] = []
    status: HealthStatus = "available"
    if llm is None:
        status = "degraded"
        reasons.append(NO_LLM_REASON + " (offline deterministic assessment)")
    else:
        latest = llm.stats.latest()  # the newest of the last call's outcome and the last probe
        if llm.budget.exhausted:
            status = "degraded"
            reasons.append("the daily LLM token budget is used up (offline rules answer)")
        elif latest is not None and not latest[1]:
            # Requests still get the guardrail assessment, unless configured to fail with 503.
            status = "unavailable" if services.settings.fail_on_llm_error else "degraded"
            what = "call" if latest[3] == "call" else "probe"
            reasons.append(f"the last LLM {what} failed ({latest[2]})")
    if cache.state == "down":
        if status == "available":
            status = "degraded"
        reasons.append("Redis cache unavailable; serving uncached")
    return GenAIHealth(
        status=status,
        pipeline_version=pipeline_version(),
        provider=services.pipeline.provider,
        model=services.pipeline.model_label,
        reason="; ".join(reasons) or None,
        last_llm_success=_iso(llm.stats.last_success) if llm else None,
        last_llm_failure=_iso(llm.stats.last_failure) if llm else None,
        last_llm_failure_kind=llm.stats.last_failure_kind if llm else None,
        llm_probe=_probe_view(llm.stats.last_probe, services) if llm else None,
        cache=CacheHealth(
            state=cache.state,
            hits=cache.hits,
            misses=cache.misses,
            errors=cache.errors,
            hit_rate=cache.hit_rate,
            ttl_s=cache.ttl_s if cache.enabled else None,
        ),
        guardrail_version=services.guardrail.config.version,
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
    )


@router.get("/genai-health", response_model=GenAIHealth)
async def genai_health(services: ServicesDep) -> GenAIHealth:
    """State of the GenAI pathway: provider, model, LLM reachability (last call or an active
    probe, at most once per GENAI_HEALTH_PROBE_INTERVAL_S), cache."""
    # A down cache is probed (within its short timeout) so that recovery shows here too.
    await services.cache.probe()
    if services.llm is not None:
        # An LLM not heard from for the probe interval is asked (one cheap call, shared).
        await services.llm.probe_if_stale(services.settings.health_probe_interval_s)
    return health_of(services)
