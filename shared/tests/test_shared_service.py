"""What every service shares: the error envelope, request ids, the service token, health."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel

from sepsis_shared.errors import FieldError, InvalidInput, RateLimited
from sepsis_shared.patient import parse_patient
from sepsis_shared.requestid import REQUEST_ID_HEADER, current_request_id
from sepsis_shared.service import MissingConfiguration, health_router, setup_service_app
from sepsis_shared.settings import SERVICE_TOKEN_HEADER, InternalServiceSettings

TOKEN = "internal-test-token-shared-service"
HEX_ID = re.compile(r"^[0-9a-f]{32}$")


class Echo(BaseModel):
    count: int


def make_app(*, ready_reason: list[str | None] | None = None) -> FastAPI:
    settings = InternalServiceSettings(SERVICE_TOKEN=TOKEN, LOG_FORMAT="text")
    app = FastAPI()
    setup_service_app(app, service="test-service", settings=settings)
    reasons = ready_reason if ready_reason is not None else [None]
    app.include_router(
        health_router(service="test-service", version="9.9", readiness=lambda: reasons[0])
    )

    @app.get("/whoami")
    async def whoami() -> dict[str, str | None]:
        return {"request_id": current_request_id()}

    @app.post("/patient")
    async def patient() -> dict[str, str]:
        parse_patient({"vitals": {"HR": "fast"}})
        return {}

    @app.post("/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @app.get("/limited")
    async def limited() -> dict[str, str]:
        raise RateLimited("Too many requests.", retry_after_s=7)

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("secret patient detail")

    return app


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=make_app(), raise_app_exceptions=False)
    async with AsyncClient(
        transport=transport, base_url="http://svc", headers={SERVICE_TOKEN_HEADER: TOKEN}
    ) as c:
        yield c


async def test_service_error_becomes_the_envelope_with_the_request_id(client: AsyncClient) -> None:
    response = await client.post("/patient", headers={REQUEST_ID_HEADER: "req-42"})
    assert response.status_code == 422
    assert response.headers[REQUEST_ID_HEADER] == "req-42"
    assert response.json() == {
        "error": {
            "code": "invalid_input",
            "message": "Invalid input: vitals.HR. expected a number for HR, got a string",
            "request_id": "req-42",
            "details": [
                {"field": "vitals.HR", "message": "expected a number for HR, got a string"}
            ],
        }
    }


async def test_request_validation_errors_use_the_envelope(client: AsyncClient) -> None:
    response = await client.post("/echo", json={"count": "many"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert [d["field"] for d in error["details"]] == ["count"]


async def test_request_id_is_echoed_or_created(client: AsyncClient) -> None:
    given = await client.get("/whoami", headers={REQUEST_ID_HEADER: "abc-123"})
    assert given.headers[REQUEST_ID_HEADER] == "abc-123"
    assert given.json() == {"request_id": "abc-123"}
    created = await client.get("/whoami")
    assert HEX_ID.match(created.headers[REQUEST_ID_HEADER])
    assert created.json()["request_id"] == created.headers[REQUEST_ID_HEADER]
    # an id with unsafe characters is replaced, never echoed into headers and logs
    unsafe = await client.get("/whoami", headers={REQUEST_ID_HEADER: "bad id\t<script>"})
    assert HEX_ID.match(unsafe.headers[REQUEST_ID_HEADER])


async def test_service_token_is_required_except_for_health() -> None:
    transport = ASGITransport(app=make_app())
    async with AsyncClient(transport=transport, base_url="http://svc") as anonymous:
        missing = await anonymous.get("/whoami")
        wrong = await anonymous.get("/whoami", headers={SERVICE_TOKEN_HEADER: "guess"})
        health = await anonymous.get("/healthz")
        ready = await anonymous.get("/readyz")
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        # refused calls still carry a request id
        assert refused.json()["error"]["request_id"] == refused.headers[REQUEST_ID_HEADER]
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "service": "test-service",
        "version": "9.9",
        "reason": None,
    }
    assert ready.status_code == 200


def test_a_service_without_a_token_refuses_to_start() -> None:
    with pytest.raises(MissingConfiguration, match="SERVICE_TOKEN"):
        setup_service_app(
            FastAPI(), service="test-service", settings=InternalServiceSettings(SERVICE_TOKEN="")
        )


async def test_readyz_is_503_with_the_reason_until_ready() -> None:
    reason: list[str | None] = ["model not loaded"]
    transport = ASGITransport(app=make_app(ready_reason=reason))
    async with AsyncClient(transport=transport, base_url="http://svc") as c:
        not_ready = await c.get("/readyz")
        reason[0] = None
        ready = await c.get("/readyz")
    assert not_ready.status_code == 503
    body = not_ready.json()
    assert body["error"]["code"] == "not_ready"
    assert body["status"] == "not_ready"
    assert body["reason"] == "model not loaded"
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_rate_limit_carries_retry_after(client: AsyncClient) -> None:
    response = await client.get("/limited")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"]["code"] == "rate_limited"


async def test_unknown_errors_are_500_without_their_text(client: AsyncClient) -> None:
    response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "secret" not in response.text


async def test_a_500_carries_its_request_id_in_the_envelope_and_the_header(
    client: AsyncClient,
) -> None:
    given = await client.get("/boom", headers={REQUEST_ID_HEADER: "req-500"})
    assert (given.json()["error"]["request_id"], given.headers[REQUEST_ID_HEADER]) == (
        "req-500",
        "req-500",
    )
    created = await client.get("/boom")
    assert created.json()["error"]["request_id"] == created.headers[REQUEST_ID_HEADER]
    assert HEX_ID.match(created.headers[REQUEST_ID_HEADER])


async def test_unknown_route_is_a_404_envelope(client: AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_invalid_input_message_names_the_first_five_fields() -> None:
    errors = [FieldError(field=f"vitals.HR[{i}]", message="bad") for i in range(7)]
    err = InvalidInput.for_fields(errors)
    assert err.message.startswith("Invalid input: vitals.HR[0], vitals.HR[1],")
    assert "vitals.HR[4] and 2 more. bad" in err.message
    assert len(err.details) == 7
