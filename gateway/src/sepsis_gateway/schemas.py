"""Response models of the gateway's own routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from sepsis_shared.metrics import LatencySummary


class Endpoint(BaseModel):
    path: str
    method: str
    auth: Literal["none", "key", "admin", "jwt"]
    summary: str


class Index(BaseModel):
    name: str
    version: str
    docs: str = Field(description="Swagger UI.")
    openapi: str = Field(description="The merged OpenAPI document.")
    endpoints: list[Endpoint]


class UpstreamHealth(BaseModel):
    status: Literal["up", "down", "unknown"] = Field(
        description="Last known state: `unknown` until the first probe or call."
    )
    last_checked: str | None = Field(description="When that state was observed (ISO 8601).")
    circuit: Literal["closed", "open", "half_open"]
    reason: str | None = None


class Health(BaseModel):
    status: Literal["healthy"] = Field(
        description="The gateway itself answers; upstream states are reported beside it."
    )
    timestamp: str
    service: str
    version: str
    upstreams: dict[str, UpstreamHealth]
    unavailable: list[str] = Field(description="Upstreams not known to be up.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "status": "healthy",
                    "timestamp": "2026-02-07T18:30:00+00:00",
                    "service": "gateway",
                    "version": "0.1.0",
                    "upstreams": {
                        "ml": {
                            "status": "up",
                            "last_checked": "2026-02-07T18:29:58+00:00",
                            "circuit": "closed",
                        },
                        "genai": {
                            "status": "down",
                            "last_checked": "2026-02-07T18:29:58+00:00",
                            "circuit": "open",
                            "reason": "genai-service is unavailable (cannot connect).",
                        },
                    },
                    "unavailable": ["genai"],
                }
            ]
        }
    }


class Totals(BaseModel):
    count: int
    errors: int
    client_errors_4xx: int
    server_errors_5xx: int
    error_rate: float
    server_error_rate: float


class RouteFigures(Totals):
    latency_ms: LatencySummary


class Performance(BaseModel):
    service: str
    since: str = Field(description="Figures cover the time since this instant (process start).")
    uptime_s: float
    totals: Totals
    routes: dict[str, RouteFigures] = Field(description="Per public route, as seen by clients.")
    upstream_calls: dict[str, RouteFigures] = Field(
        description="Calls the gateway made to each upstream (no answer counts as a 5xx)."
    )
    upstreams: dict[str, Any] = Field(
        description='Each upstream\'s own figures, or `{"status": "unavailable"}` with why.'
    )
    cds_feedback: dict[str, Any] = Field(
        description="CDS Hooks cards issued and the feedback on them per priority: accepted, "
        "overridden, acceptance and override rates, override reasons; "
        '`{"status": "unavailable"}` when the store cannot be read.'
    )
