"""CDS Hooks 2.0 routes: discovery, the `sepsis-risk` service and its feedback endpoint.

Every call carries the CDS client's signed JWT (`jwt_auth`), not an API key; the client's
issuer has its own rate-limit bucket. Errors are the gateway's envelope with the statuses the
specification names (412 for missing prefetch).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from sepsis_gateway.assess import assess, read_json
from sepsis_gateway.cds_hooks import (
    SERVICE_ID,
    card_for,
    check_request,
    discovery,
    missing_prefetch,
    precondition_failed,
    prefetch_bundle,
    request_path,
)
from sepsis_gateway.cds_state import Cds, CdsDep
from sepsis_gateway.feedback import FeedbackRequest
from sepsis_gateway.fhir_fetch import allowed_server, fetch_missing
from sepsis_gateway.jwt_auth import CdsCaller
from sepsis_gateway.ratelimit import RateLimiter
from sepsis_gateway.routes.table import ML
from sepsis_gateway.state import Gateway, GatewayDep
from sepsis_shared.errors import ERROR_RESPONSES, InvalidInput, NotFound, NotReady, RateLimited

logger = logging.getLogger("sepsis.gateway.cds")

DISCOVERY_PATH = "/cds-services"
SERVICE_PATH = f"{DISCOVERY_PATH}/{SERVICE_ID}"
FEEDBACK_PATH = f"{SERVICE_PATH}/feedback"
ASSESSMENTS_PATH = f"{SERVICE_PATH}/assessments"
# CDS calls are answered in about half a second; a FHIR server gets this long per query.
FHIR_FETCH_TIMEOUT_S = 2.0

router = APIRouter(tags=["CDS Hooks"])

# auto_error=False: a missing token is answered in the shared envelope.
cds_jwt_scheme = HTTPBearer(
    scheme_name="CdsHooksJwt",
    bearerFormat="JWT",
    description="The CDS client's JWT (CDS Hooks 2.0): RS384 or ES384, iss allow-listed in "
    "CDS_CLIENTS, aud the URL called, exp, iat and a jti used once.",
    auto_error=False,
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(cds_jwt_scheme)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    k: v for k, v in ERROR_RESPONSES.items() if k in (401, 413, 422, 429, 503)
}


async def _caller(gateway: Gateway, cds: Cds, request: Request, path: str) -> CdsCaller:
    caller = await cds.verifier.verify(request.headers.get("authorization"), path=path)
    bucket = "cds-" + hashlib.sha256(caller.iss.encode()).hexdigest()[:12]
    wait_s = gateway.limiter.acquire(bucket)
    if wait_s > 0:
        raise RateLimited(
            "Too many requests from this CDS client; retry after the delay in Retry-After.",
            retry_after_s=RateLimiter.retry_after(wait_s),
        )
    return caller


@router.get(DISCOVERY_PATH, responses=_ERRORS)
async def cds_discovery(
    request: Request, gateway: GatewayDep, cds: CdsDep, _: Bearer
) -> dict[str, Any]:
    """CDS Hooks discovery: the `sepsis-risk` service on `patient-view` and its prefetch."""
    await _caller(gateway, cds, request, DISCOVERY_PATH)
    return discovery()


@router.post(
    SERVICE_PATH,
    response_model=None,
    responses={
        **_ERRORS,
        412: ERROR_RESPONSES[422]
        | {"description": "A required prefetch (patient, vitals, labs) is missing"},
    },
)
async def cds_sepsis_risk(
    request: Request, gateway: GatewayDep, cds: CdsDep, _: Bearer
) -> dict[str, Any] | Response:
    """CDS Hooks `patient-view`: the prefetched patient assessed; one card or none."""
    caller = await _caller(gateway, cds, request, SERVICE_PATH)
    hook = check_request(await read_json(request, limit=gateway.settings.max_body_bytes))
    missing = missing_prefetch(hook)
    if missing:
        hook = await _fetched(cds, caller, hook, missing)
    assembled = prefetch_bundle(hook)
    if assembled is None:
        return {"cards": []}
    bundle, origins = assembled
    try:
        conversion = await cds.convert(bundle)
    except InvalidInput as exc:
        details = exc.details if isinstance(exc.details, list) else []
        for item in details:
            item["field"] = request_path(str(item.get("field", "")), origins)
        if details:
            exc.message = f"Invalid prefetch: {details[0]['field']}: {details[0]['message']}"
        raise
    result = await assess(gateway, ML, conversion.request)
    if result.status != 200:
        # the pathway's envelope with its status; a field it names is given as the prefetch
        # element it came from
        error = result.body.get("error")
        passed = error.get("details") if isinstance(error, dict) else None
        for item in passed if isinstance(passed, list) else []:
            source = (
                conversion.sources.get(str(item.get("field"))) if isinstance(item, dict) else None
            )
            if source is not None:
                item["source"] = request_path(source, origins)
        headers = {} if result.retry_after is None else {"Retry-After": result.retry_after.decode()}
        return Response(
            json.dumps(result.body),
            status_code=result.status,
            media_type="application/json",
            headers=headers,
        )
    link = secrets.token_urlsafe(24)
    ttl_s = gateway.settings.cds_assessment_ttl_s
    url = f"{cds.public_url}{ASSESSMENTS_PATH}/{link}" if cds.public_url and ttl_s else None
    card = card_for(result.body, conversion.report, source_url=cds.public_url, assessment_url=url)
    if card is None:
        return {"cards": []}
    try:
        await cds.feedback.card_issued(card["uuid"], str(result.body.get("priority")))
        if url is not None:
            await cds.feedback.keep_assessment(
                link, {**result.body, "fhir": conversion.report}, ttl_s
            )
    except (redis.RedisError, OSError):
        # The card still goes out, without its link; feedback on it counts under `unknown`.
        logger.warning("card not recorded: feedback store unavailable")
        card.pop("links", None)
    return {"cards": [card]}


@router.get(
    f"{ASSESSMENTS_PATH}/{{link}}",
    responses={404: ERROR_RESPONSES[422] | {"description": "Unknown or expired link"}},
)
async def cds_assessment(link: str, cds: CdsDep) -> JSONResponse:
    """The full assessment a card links to (opened by the clinician; the random link is the
    key, and it expires after CDS_ASSESSMENT_TTL_S)."""
    try:
        found = await cds.feedback.assessment(link) if len(link) <= 64 else None
    except (redis.RedisError, OSError):
        raise NotReady("The assessment store (Redis) is unavailable; retry shortly.") from None
    if found is None:
        raise NotFound("No assessment behind this link: it is unknown or has expired.")
    return JSONResponse(
        found, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


async def _fetched(
    cds: Cds, caller: CdsCaller, hook: dict[str, Any], missing: list[str]
) -> dict[str, Any]:
    """The request with its missing prefetch fetched from the client's FHIR server, when the
    client gave one it is allowed to, with a token; else the 412."""
    auth = hook.get("fhirAuthorization")
    token = auth.get("access_token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token:
        raise precondition_failed(missing, "no fhirServer and fhirAuthorization were given.")
    server = allowed_server(hook.get("fhirServer"), cds.verifier.client(caller.iss).fhir_servers)
    if server is None:
        raise precondition_failed(
            missing, "the fhirServer given is not one configured for this client."
        )
    fetched = await fetch_missing(
        cds.session,
        server=server,
        token=token,
        keys=missing,
        context=hook["context"],
        timeout_s=FHIR_FETCH_TIMEOUT_S,
    )
    return {**hook, "prefetch": {**(hook.get("prefetch") or {}), **fetched}}


@router.post(FEEDBACK_PATH, responses=_ERRORS)
async def cds_feedback(
    request: Request, gateway: GatewayDep, cds: CdsDep, _: Bearer
) -> dict[str, Any]:
    """CDS Hooks feedback: accepted or overridden cards, with override reasons."""
    await _caller(gateway, cds, request, FEEDBACK_PATH)
    raw = await read_json(request, limit=gateway.settings.max_body_bytes)
    try:
        parsed = FeedbackRequest.model_validate(raw)
    except ValidationError as exc:
        fields = [
            {
                "field": ".".join(str(p) for p in e["loc"]) or "body",
                "message": e["msg"],
            }
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidInput(
            f"Invalid feedback: {fields[0]['field']}: {fields[0]['message']}", details=fields
        ) from None
    try:
        return await cds.feedback.record(parsed.feedback)
    except (redis.RedisError, OSError):
        raise NotReady("The feedback store (Redis) is unavailable; retry shortly.") from None
