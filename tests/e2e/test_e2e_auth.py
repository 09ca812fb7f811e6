"""API keys at the gateway: missing, wrong, rotated, client versus admin; the internal token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from scripts.stack import StackHandle

pytestmark = pytest.mark.e2e

PATIENT = {"HR": 88, "SBP": 122, "Temp": 37.0, "Resp": 16, "O2Sat": 98}
KEYED = (
    ("POST", "/classify"),
    ("POST", "/classify-batch"),
    ("GET", "/config/current"),
    ("POST", "/genai-classify"),
    ("POST", "/genai-classify-batch"),
    ("GET", "/genai-guardrail/thresholds"),
    ("GET", "/performance"),
)
ADMIN = (("POST", "/reload-config"), ("POST", "/genai-guardrail/reload"))
OPEN = ("/", "/health", "/docs", "/openapi.json", "/genai-health")


def envelope(response: httpx.Response, code: str) -> dict[str, Any]:
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(("method", "path"), KEYED + ADMIN)
def test_missing_key_is_401(gateway: httpx.Client, method: str, path: str) -> None:
    response = gateway.request(method, path, json=PATIENT)
    assert response.status_code == 401
    envelope(response, "unauthorized")


def test_wrong_key_is_401(gateway: httpx.Client, client_key: str) -> None:
    for wrong in ("not-a-key", client_key[:-1], client_key + "x"):
        response = gateway.post("/classify", json=PATIENT, headers={"X-API-Key": wrong})
        assert response.status_code == 401, wrong
        error = envelope(response, "unauthorized")
        assert client_key not in str(error)


def test_every_rotated_client_key_is_valid(gateway: httpx.Client, stack: StackHandle) -> None:
    keys = stack.config.client_keys
    assert len(keys) == 3  # API_KEY plus the two keys of API_KEYS
    for key in keys:
        response = gateway.post("/classify", json=PATIENT, headers={"X-API-Key": key})
        assert response.status_code == 200, response.text


def test_key_header_name_is_case_insensitive(gateway: httpx.Client, client_key: str) -> None:
    response = gateway.post("/classify", json=PATIENT, headers={"x-api-key": client_key})
    assert response.status_code == 200


@pytest.mark.parametrize(("method", "path"), ADMIN)
def test_client_key_on_admin_route_is_403(
    gateway: httpx.Client, client_key: str, method: str, path: str
) -> None:
    response = gateway.request(method, path, headers={"X-API-Key": client_key})
    assert response.status_code == 403
    envelope(response, "forbidden")


@pytest.mark.parametrize(("method", "path"), ADMIN)
def test_admin_key_reloads(gateway: httpx.Client, admin_key: str, method: str, path: str) -> None:
    response = gateway.request(method, path, headers={"X-API-Key": admin_key})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", OPEN)
def test_open_routes_need_no_key(gateway: httpx.Client, path: str) -> None:
    assert gateway.get(path).status_code == 200


def test_services_refuse_calls_that_bypass_the_gateway(stack: StackHandle) -> None:
    ml = stack.service_url("ml-service")
    if ml is None:
        pytest.skip("under compose the services publish no port at all")
    with httpx.Client(base_url=ml, timeout=10.0) as direct:
        refused = direct.post("/classify", json=PATIENT)
        assert refused.status_code == 401
        envelope(refused, "unauthorized")
        # Even a valid client key is no use there: only the internal token opens it.
        keyed = direct.post(
            "/classify", json=PATIENT, headers={"X-API-Key": stack.config.client_keys[0]}
        )
        assert keyed.status_code == 401
        token = direct.post(
            "/classify", json=PATIENT, headers={"X-Service-Token": stack.config.service_token}
        )
        assert token.status_code == 200
