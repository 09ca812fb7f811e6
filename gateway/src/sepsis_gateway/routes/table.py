"""The public routes of the API (DESIGN §4): who may call them and where they go."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Access(StrEnum):
    NONE = "none"
    KEY = "key"
    ADMIN = "admin"
    JWT = "jwt"  # a CDS client's signed JWT (CDS Hooks)


ML = "ml"
GENAI = "genai"

UPSTREAM_LABELS = {ML: "ml-service", GENAI: "genai-service"}


@dataclass(frozen=True, slots=True)
class PublicRoute:
    path: str
    method: str
    access: Access
    upstream: str | None  # None: answered by the gateway itself
    summary: str
    batch: bool = False

    @property
    def control(self) -> bool:
        """Health, configuration and admin calls: they go upstream over a pool of their own,
        never queued behind classification traffic."""
        return self.method == "GET" or self.access is Access.ADMIN


PUBLIC_ROUTES: tuple[PublicRoute, ...] = (
    PublicRoute("/", "GET", Access.NONE, None, "Name, version and the list of endpoints"),
    PublicRoute(
        "/health", "GET", Access.NONE, None, "Gateway liveness and each upstream's last state"
    ),
    PublicRoute("/docs", "GET", Access.NONE, None, "Swagger UI"),
    PublicRoute("/openapi.json", "GET", Access.NONE, None, "The merged OpenAPI document"),
    PublicRoute("/classify", "POST", Access.KEY, ML, "Assess one patient (hybrid ML)"),
    PublicRoute(
        "/classify-batch",
        "POST",
        Access.KEY,
        ML,
        "Assess many patients (hybrid ML, one model call)",
        batch=True,
    ),
    PublicRoute(
        "/config/current",
        "GET",
        Access.KEY,
        ML,
        "Active ML config: thresholds, blend weights, model version",
    ),
    PublicRoute(
        "/reload-config",
        "POST",
        Access.ADMIN,
        ML,
        "Re-read and validate the ML config (a bad file keeps the old one)",
    ),
    PublicRoute(
        "/genai-classify", "POST", Access.KEY, GENAI, "Assess one patient (LLM + guardrail)"
    ),
    PublicRoute(
        "/genai-classify-batch",
        "POST",
        Access.KEY,
        GENAI,
        "Assess many patients (LLM + guardrail, bounded concurrency)",
        batch=True,
    ),
    PublicRoute(
        "/genai-health",
        "GET",
        Access.NONE,
        GENAI,
        "GenAI pipeline version, LLM provider and reachability, cache state",
    ),
    PublicRoute(
        "/genai-guardrail/thresholds",
        "GET",
        Access.KEY,
        GENAI,
        "Active guardrail config and version",
    ),
    PublicRoute(
        "/genai-guardrail/reload",
        "POST",
        Access.ADMIN,
        GENAI,
        "Re-read and validate the guardrail config",
    ),
    PublicRoute(
        "/fhir/classify",
        "POST",
        Access.KEY,
        None,
        "Assess the patient of a FHIR R4 Bundle (hybrid ML)",
    ),
    PublicRoute(
        "/fhir/genai-classify",
        "POST",
        Access.KEY,
        None,
        "Assess the patient of a FHIR R4 Bundle (LLM + guardrail)",
    ),
    PublicRoute(
        "/cds-services", "GET", Access.JWT, None, "CDS Hooks discovery (the sepsis-risk service)"
    ),
    PublicRoute(
        "/cds-services/sepsis-risk",
        "POST",
        Access.JWT,
        None,
        "CDS Hooks patient-view: a sepsis risk card from the prefetched patient",
    ),
    PublicRoute(
        "/cds-services/sepsis-risk/feedback",
        "POST",
        Access.JWT,
        None,
        "CDS Hooks feedback: cards accepted or overridden, with reasons",
    ),
    PublicRoute(
        "/performance",
        "GET",
        Access.KEY,
        None,
        "Request counts, errors and latency percentiles per route, plus each upstream's",
    ),
)

ROUTES_BY_PATH = {route.path: route for route in PUBLIC_ROUTES}
