"""API keys (client, rotated, legacy, admin), startup refusal, size and rate limits."""

from __future__ import annotations

import pytest

from sepsis_gateway.app import create_app
from sepsis_gateway.auth import KeyRing, Role
from sepsis_gateway.config import GatewaySettings
from sepsis_shared.service import MissingConfiguration

KEYED = [
    ("POST", "/classify"),
    ("POST", "/classify-batch"),
    ("GET", "/config/current"),
    ("POST", "/genai-classify"),
    ("POST", "/genai-classify-batch"),
    ("GET", "/genai-guardrail/thresholds"),
    ("GET", "/performance"),
]
ADMIN = [("POST", "/reload-config"), ("POST", "/genai-guardrail/reload")]
OPEN = [("GET", "/"), ("GET", "/health"), ("GET", "/genai-health"), ("GET", "/openapi.json")]


@pytest.mark.parametrize(("method", "path"), KEYED + ADMIN)
async def test_missing_key_is_401_and_nothing_is_forwarded(stack, method, path):
    client = await stack.start()
    r = await client.request(method, path, content=b"{}" if method == "POST" else None)
    assert r.status_code == 401
    error = stack.envelope(r)
    assert error["code"] == "unauthorized"
    assert "X-API-Key" in error["message"]
    assert error["request_id"] == r.headers["x-request-id"]
    assert stack.ml.public_calls() == stack.genai.public_calls() == []


@pytest.mark.parametrize(("method", "path"), KEYED + ADMIN)
async def test_wrong_key_is_401(stack, method, path):
    client = await stack.start()
    r = await client.request(
        method,
        path,
        content=b"{}" if method == "POST" else None,
        headers={"X-API-Key": stack.client_key + "x"},
    )
    assert r.status_code == 401
    assert stack.envelope(r)["code"] == "unauthorized"
    assert stack.client_key not in r.text


@pytest.mark.parametrize(("method", "path"), OPEN)
async def test_open_routes_need_no_key(stack, method, path):
    client = await stack.start()
    r = await client.request(method, path)
    assert r.status_code == 200


@pytest.mark.parametrize("key_name", ["client_key", "rotated_key", "legacy_key", "admin_key"])
async def test_every_configured_key_works_on_client_routes(stack, key_name):
    client = await stack.start()
    r = await client.post(
        "/classify", content=b"{}", headers={"X-API-Key": getattr(stack, key_name)}
    )
    assert r.status_code == 200


async def test_key_header_name_is_case_insensitive(stack):
    client = await stack.start()
    for name in ("x-api-key", "X-API-KEY", "X-Api-Key"):
        r = await client.post("/classify", content=b"{}", headers={name: stack.client_key})
        assert r.status_code == 200, name


@pytest.mark.parametrize(("method", "path"), ADMIN)
async def test_client_key_on_admin_route_is_403(stack, method, path):
    client = await stack.start()
    r = await client.request(method, path, headers={"X-API-Key": stack.client_key})
    assert r.status_code == 403
    assert stack.envelope(r)["code"] == "forbidden"
    assert stack.ml.public_calls() == stack.genai.public_calls() == []


@pytest.mark.parametrize(("method", "path", "upstream"), [(*ADMIN[0], "ml"), (*ADMIN[1], "genai")])
async def test_admin_key_reaches_admin_route(stack, method, path, upstream):
    client = await stack.start()
    r = await client.request(method, path, headers={"X-API-Key": stack.admin_key})
    assert r.status_code == 200
    fake = stack.ml if upstream == "ml" else stack.genai
    (call,) = fake.public_calls()
    assert call.path == path
    assert "x-api-key" not in call.headers


async def test_only_api_keys_and_only_legacy_api_key_each_suffice(stack):
    only_new = await stack.start(
        api_key=None,
        api_keys="k-one-rotated-key-0123456789, k-two-rotated-key-0123456789",
        admin_api_keys=None,
    )
    assert (
        await only_new.get("/performance", headers={"X-API-Key": "k-two-rotated-key-0123456789"})
    ).status_code == 200
    legacy = await stack.start(
        api_key="the-old-key-0123456789abcdef", api_keys=None, admin_api_keys=None
    )
    r = await legacy.get("/performance", headers={"X-API-Key": "the-old-key-0123456789abcdef"})
    assert r.status_code == 200
    assert (
        await legacy.get("/performance", headers={"X-API-Key": "k-two-rotated-key-0123456789"})
    ).status_code == 401


def test_keys_come_from_the_original_environment_names(monkeypatch):
    monkeypatch.setenv("API_KEY", "from-env-legacy-0123456789")
    monkeypatch.setenv("API_KEYS", "from-env-a-0123456789abcdef,from-env-b-0123456789abcdef")
    monkeypatch.setenv("ADMIN_API_KEYS", "from-env-admin-0123456789ab")
    monkeypatch.setenv("SERVICE_TOKEN", "from-env-token-0123456789ab")
    settings = GatewaySettings()
    assert settings.client_keys() == (
        "from-env-legacy-0123456789",
        "from-env-a-0123456789abcdef",
        "from-env-b-0123456789abcdef",
    )
    assert settings.admin_keys() == ("from-env-admin-0123456789ab",)
    create_app(settings)


@pytest.mark.parametrize("blank", [None, "", " , "])
def test_no_client_key_refuses_to_start_and_says_what_to_set(stack, blank):
    settings = stack.settings(
        api_key=None, api_keys=blank, admin_api_keys="admin-only-key-0123456789ab"
    )
    with pytest.raises(MissingConfiguration, match=r"API_KEY.*API_KEYS"):
        create_app(settings)


def test_no_service_token_refuses_to_start(stack):
    with pytest.raises(MissingConfiguration, match="SERVICE_TOKEN"):
        create_app(stack.settings(service_token=None))


def test_keyring_tells_roles_apart_and_rejects_near_misses():
    ring = KeyRing(client_keys=("alpha", "beta"), admin_keys=("gamma",))
    a, b, g = (ring.identify(k) for k in (b"alpha", b"beta", b"gamma"))
    assert a is not None
    assert b is not None
    assert g is not None
    assert (a.role, b.role, g.role) == (Role.CLIENT, Role.CLIENT, Role.ADMIN)
    assert len({a.key_id, b.key_id, g.key_id}) == 3
    assert all(ring.identify(k) is None for k in (b"alph", b"alphaa", b"ALPHA", b"", None))
    # The key id is a digest prefix, never the key.
    assert "alpha" not in a.key_id


async def test_body_over_the_limit_is_413_before_reaching_upstream(stack):
    client = await stack.start(max_body_bytes=100)
    r = await client.post(
        "/classify", content=b"{" + b" " * 200 + b"}", headers={"X-API-Key": stack.client_key}
    )
    assert r.status_code == 413
    error = stack.envelope(r)
    assert error["code"] == "payload_too_large"
    assert error["details"] == {"limit_bytes": 100}
    assert stack.ml.public_calls() == []


async def test_streamed_body_without_length_is_cut_at_the_limit(stack):
    client = await stack.start(max_body_bytes=100)

    async def chunks():
        for _ in range(10):
            yield b"x" * 30

    r = await client.post("/classify", content=chunks(), headers={"X-API-Key": stack.client_key})
    assert r.status_code == 413
    assert stack.ml.public_calls() == []


async def test_batch_routes_have_their_own_byte_limit(stack):
    client = await stack.start(max_body_bytes=100, max_batch_body_bytes=1000)
    body = b"[" + b" " * 500 + b"]"
    headers = {"X-API-Key": stack.client_key}
    assert (await client.post("/classify-batch", content=body, headers=headers)).status_code == 200
    assert (await client.post("/classify", content=body, headers=headers)).status_code == 413
    big = b"[" + b" " * 1500 + b"]"
    r = await client.post("/genai-classify-batch", content=big, headers=headers)
    assert r.status_code == 413


async def test_rate_limit_is_429_with_retry_after_per_key(stack):
    client = await stack.start(rate_limit_per_minute=2)
    headers = {"X-API-Key": stack.client_key}
    codes = [(await client.get("/config/current", headers=headers)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = await client.get("/config/current", headers=headers)
    assert r.status_code == 429
    assert stack.envelope(r)["code"] == "rate_limited"
    # 2 a minute: the next token is about 30 s away.
    assert 1 <= int(r.headers["retry-after"]) <= 30
    assert len(stack.ml.public_calls()) == 2
    # Another key has its own bucket.
    other = await client.get("/config/current", headers={"X-API-Key": stack.rotated_key})
    assert other.status_code == 200


async def test_rate_limit_zero_disables_it(stack):
    client = await stack.start(rate_limit_per_minute=0)
    headers = {"X-API-Key": stack.client_key}
    for _ in range(20):
        assert (await client.get("/config/current", headers=headers)).status_code == 200


async def test_empty_key_header_counts_as_missing(stack):
    client = await stack.start()
    r = await client.post("/classify", content=b"{}", headers={"X-API-Key": ""})
    assert r.status_code == 401
    assert "Missing" in stack.envelope(r)["message"]
