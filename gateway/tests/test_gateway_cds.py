"""CDS Hooks through the real gateway app: discovery, the sepsis-risk service as an EHR calls
it, 412 on missing prefetch, cards, feedback in real Redis summarised in /performance, and the
signed-JWT rules (RS384/ES384, iss, aud, exp, jti replay)."""

from __future__ import annotations

import copy
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISS = "https://ehr.hospital.test"
OTHER_ISS = "https://rogue.test"
PUBLIC = "https://cds.gateway.test"
WARD = json.loads((Path(__file__).parent / "data" / "fhir-sepsis-bundle.json").read_text())
CRITICAL = {
    "risk_score": 84.0,
    "priority": "Critical",
    "alert": {"level": "Critical", "colour": "red", "action": "Immediate review by a clinician."},
    "drivers": ["qSOFA 2/3: RR 24, SBP 88", "Lactate 3.1 mmol/L (>= 2)"],
    "clinical_scores": {
        "qsofa": {"score": 2, "max_score": 3, "missing": []},
        "sirs": {"score": 4, "max_score": 4, "missing": []},
        "news2": {"score": 9, "max_score": 20, "missing": []},
        "sofa": {"score": 5, "max_score": 24, "missing": ["PaO2"]},
    },
    "confidence": {"level": "medium", "summary": "Most inputs present.", "reasons": ["no PaO2"]},
    "data_quality": [{"field": "vitals.SBP[1]", "reason": "left out"}],
    "model": {"name": "sepsis-lgbm", "version": "2.0.0"},
}


# ---- Redis ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """The machine's Redis (a test database), else a private redis-server."""
    url = "redis://127.0.0.1:6379/13"
    if _answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis on 127.0.0.1:6379 and redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _answers(url):
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=5)


# ---- keys and tokens -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    ec_key = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    return {
        "ec": ec_key,
        "rsa": rsa_key,
        "jwks": {"keys": [ec_jwk | {"kid": "ec-1", "use": "sig"}, rsa_jwk | {"kid": "rsa-1"}]},
    }


def token(keys: dict[str, Any], path: str, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISS,
        "aud": PUBLIC + path,
        "exp": now + 120,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "tenant": "ward-7",
    }
    alg = changes.pop("alg", "ES384")
    kid = changes.pop("kid", "ec-1" if alg == "ES384" else "rsa-1")
    signer = changes.pop("key", keys["ec"] if alg == "ES384" else keys["rsa"])
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, signer, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
async def cds(stack, keys, redis_url):
    """A started gateway with one CDS client configured and a Redis namespace of its own."""
    client = await stack.start(
        cds_public_url=PUBLIC,
        cds_clients=json.dumps({ISS: {"jwks": keys["jwks"]}}),
        redis_url=redis_url,
        gateway_redis_namespace=f"test-cds:{uuid.uuid4().hex}",
    )
    return client


# ---- an EHR's patient-view call ----------------------------------------------------------------


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"https://ehr.hospital.test/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def hook_request(**prefetch_changes: Any) -> dict[str, Any]:
    resources = [copy.deepcopy(e["resource"]) for e in WARD["entry"]]

    def category(r: dict[str, Any]) -> str | None:
        for concept in r.get("category", []):
            for coding in concept.get("coding", []):
                return str(coding["code"])
        return None

    observations = [r for r in resources if r["resourceType"] == "Observation"]
    prefetch: dict[str, Any] = {
        "patient": next(r for r in resources if r["resourceType"] == "Patient"),
        "vitals": searchset([r for r in observations if category(r) != "laboratory"]),
        "labs": searchset([r for r in observations if category(r) == "laboratory"]),
        "conditions": searchset([r for r in resources if r["resourceType"] == "Condition"]),
        "medications": searchset(
            [r for r in resources if r["resourceType"] == "MedicationAdministration"]
        ),
        "notes": searchset([r for r in resources if r["resourceType"] == "DocumentReference"]),
    }
    for key, value in prefetch_changes.items():
        if value is ...:
            del prefetch[key]
        else:
            prefetch[key] = value
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "https://ehr.hospital.test/fhir",
        "context": {"userId": "Practitioner/example", "patientId": "pat-7"},
        "prefetch": prefetch,
    }


SERVICE = "/cds-services/sepsis-risk"


async def call(client, keys, body: dict[str, Any]):
    return await client.post(SERVICE, json=body, headers=bearer(token(keys, SERVICE)))


# ---- discovery and tokens ----------------------------------------------------------------------


async def test_discovery_lists_sepsis_risk_on_patient_view_with_prefetch(cds, keys):
    r = await cds.get("/cds-services", headers=bearer(token(keys, "/cds-services")))
    assert r.status_code == 200, r.text
    [service] = r.json()["services"]
    assert (service["id"], service["hook"]) == ("sepsis-risk", "patient-view")
    assert service["description"]
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert "category=vital-signs" in service["prefetch"]["vitals"]
    assert "category=laboratory" in service["prefetch"]["labs"]


async def test_rs384_is_accepted_too(cds, keys):
    signed = token(keys, "/cds-services", alg="RS384")
    assert (await cds.get("/cds-services", headers=bearer(signed))).status_code == 200


async def test_no_token_is_401_in_the_envelope(stack, cds):
    r = await cds.get("/cds-services")
    assert r.status_code == 401
    assert "Bearer" in stack.envelope(r)["message"]


async def test_api_key_is_not_a_cds_credential(stack, cds):
    r = await cds.get("/cds-services", headers={"X-API-Key": stack.client_key})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"aud": PUBLIC + "/cds-services/other"}, "aud"),
        ({"iss": OTHER_ISS}, "iss"),
        ({"exp": int(time.time()) - 600}, "expired"),
        ({"exp": int(time.time()) + 3600}, "exp"),
        ({"jti": None}, "jti"),
        ({"kid": "unknown-kid"}, "kid"),
    ],
)
async def test_token_breaking_a_rule_is_401_saying_which(stack, cds, keys, changes, says):
    r = await cds.get("/cds-services", headers=bearer(token(keys, "/cds-services", **changes)))
    assert r.status_code == 401, r.text
    assert says in stack.envelope(r)["message"]


async def test_symmetric_and_unsigned_tokens_are_refused(stack, cds):
    now = int(time.time())
    claims = {"iss": ISS, "aud": PUBLIC + "/cds-services", "exp": now + 60, "iat": now, "jti": "x"}
    hs = jwt.encode(
        claims, "a-shared-secret-of-at-least-48-bytes-for-hs384-0123", algorithm="HS384"
    )
    for signed in (hs, jwt.encode(claims, None, algorithm="none")):
        r = await cds.get("/cds-services", headers=bearer(signed))
        assert r.status_code == 401
        assert "RS384 or ES384" in stack.envelope(r)["message"]


async def test_token_signed_by_another_key_is_refused(cds, keys):
    stranger = ec.generate_private_key(ec.SECP384R1())
    r = await cds.get("/cds-services", headers=bearer(token(keys, "/cds-services", key=stranger)))
    assert r.status_code == 401


async def test_replayed_jti_is_refused(stack, cds, keys):
    signed = token(keys, "/cds-services")
    assert (await cds.get("/cds-services", headers=bearer(signed))).status_code == 200
    again = await cds.get("/cds-services", headers=bearer(signed))
    assert again.status_code == 401
    assert "replay" in stack.envelope(again)["message"]


@pytest.fixture
async def jwks_server(keys):
    """The EHR's JWK Set served over HTTP, counting the fetches."""
    fetches: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        fetches.append(request.path)
        return web.json_response(keys["jwks"])

    app = web.Application()
    app.router.add_get("/jwks", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/jwks", fetches
    await runner.cleanup()


async def test_keys_fetched_from_the_clients_jwks_url_and_jku_checked(
    stack, keys, redis_url, jwks_server
):
    url, fetches = jwks_server
    client = await stack.start(
        cds_public_url=PUBLIC,
        cds_clients=json.dumps({ISS: {"jwks_url": url}}),
        redis_url=redis_url,
        gateway_redis_namespace=f"test-cds:{uuid.uuid4().hex}",
    )
    for _ in range(2):
        r = await client.get("/cds-services", headers=bearer(token(keys, "/cds-services")))
        assert r.status_code == 200, r.text
    assert fetches == ["/jwks"]  # fetched once, then cached
    now = int(time.time())
    claims = {"iss": ISS, "aud": PUBLIC + "/cds-services", "exp": now + 60, "iat": now}
    for jku, status in ((url, 200), ("https://elsewhere.test/jwks", 401)):
        signed = jwt.encode(
            claims | {"jti": str(uuid.uuid4())},
            keys["ec"],
            algorithm="ES384",
            headers={"kid": "ec-1", "typ": "JWT", "jku": jku},
        )
        r = await client.get("/cds-services", headers=bearer(signed))
        assert r.status_code == status, r.text


async def test_unreachable_jwks_url_is_503_not_a_refusal(stack, keys, redis_url):
    client = await stack.start(
        cds_public_url=PUBLIC,
        cds_clients=json.dumps({ISS: {"jwks_url": f"http://127.0.0.1:{_free_port()}/jwks"}}),
        redis_url=redis_url,
    )
    r = await client.get("/cds-services", headers=bearer(token(keys, "/cds-services")))
    assert r.status_code == 503
    assert "JWK Set" in stack.envelope(r)["message"]


async def test_cds_unconfigured_is_503_naming_the_settings(stack, redis_url):
    client = await stack.start(redis_url=redis_url)
    r = await client.get("/cds-services", headers=bearer("x.y.z"))
    assert r.status_code == 503
    assert "CDS_CLIENTS" in stack.envelope(r)["message"]


async def test_replay_check_without_redis_is_503_not_a_pass(stack, keys):
    client = await stack.start(
        cds_public_url=PUBLIC,
        cds_clients=json.dumps({ISS: {"jwks": keys["jwks"]}}),
        redis_url=f"redis://127.0.0.1:{_free_port()}/0",
    )
    r = await client.get("/cds-services", headers=bearer(token(keys, "/cds-services")))
    assert r.status_code == 503


async def test_api_key_routes_keep_working(stack, cds):
    r = await cds.post("/classify", json={"HR": 90}, headers={"X-API-Key": stack.client_key})
    assert r.status_code == 200


# ---- the service call ------------------------------------------------------------------------


async def test_patient_view_gives_a_critical_card(stack, cds, keys):
    stack.ml.canned["/classify"] = stack.canned(body=json.dumps(CRITICAL).encode())
    r = await call(cds, keys, hook_request())
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert card["indicator"] == "critical"
    assert len(card["summary"]) < 140
    uuid.UUID(card["uuid"])
    assert card["source"]["label"]
    assert card["source"]["topic"]["code"] == "sepsis-risk"
    assert "| qSOFA | 2/3 |" in card["detail"]
    assert "Lactate 3.1 mmol/L" in card["detail"]
    assert "Confidence: medium" in card["detail"]
    assert card["selectionBehavior"] == "at-most-one"
    assert all(reason["display"] for reason in card["overrideReasons"])
    [sent] = stack.ml.public_calls()
    patient = json.loads(sent.body)
    assert [p["val"] for p in patient["vitals"]["HR"]] == [96.0, 108.0, 118.0]
    assert patient["Age"] == 67


async def test_card_links_to_the_full_assessment(stack, cds, keys):
    stack.ml.canned["/classify"] = stack.canned(body=json.dumps(CRITICAL).encode())
    [card] = (await call(cds, keys, hook_request())).json()["cards"]
    [link] = card["links"]
    assert link["type"] == "absolute"
    assert link["url"].startswith(PUBLIC + "/cds-services/sepsis-risk/assessments/")
    r = await cds.get(link["url"].removeprefix(PUBLIC))
    assert r.status_code == 200
    assert r.json()["risk_score"] == 84.0
    assert "Observation/hr-err" in {e["resource"] for e in r.json()["fhir"]["not_used"]}
    assert r.headers["cache-control"] == "no-store"


async def test_unknown_assessment_link_is_404(stack, cds):
    r = await cds.get("/cds-services/sepsis-risk/assessments/not-a-link-we-issued")
    assert r.status_code == 404
    assert stack.envelope(r)["code"] == "not_found"


async def test_links_off_when_the_ttl_is_zero(stack, keys, redis_url):
    stack.ml.canned["/classify"] = stack.canned(body=json.dumps(CRITICAL).encode())
    client = await stack.start(
        cds_public_url=PUBLIC,
        cds_clients=json.dumps({ISS: {"jwks": keys["jwks"]}}),
        redis_url=redis_url,
        cds_assessment_ttl_s=0,
    )
    [card] = (await call(client, keys, hook_request())).json()["cards"]
    assert "links" not in card


@pytest.mark.parametrize(("priority", "indicator"), [("Urgent", "warning"), ("Elevated", "info")])
async def test_indicator_follows_priority(stack, cds, keys, priority, indicator):
    answer = CRITICAL | {"priority": priority}
    stack.ml.canned["/classify"] = stack.canned(body=json.dumps(answer).encode())
    [card] = (await call(cds, keys, hook_request())).json()["cards"]
    assert card["indicator"] == indicator


async def test_standard_priority_has_nothing_to_say(stack, cds, keys):
    answer = CRITICAL | {"priority": "Standard"}
    stack.ml.canned["/classify"] = stack.canned(body=json.dumps(answer).encode())
    r = await call(cds, keys, hook_request())
    assert r.json() == {"cards": []}


async def test_vitals_prefetched_as_null_means_no_data_and_no_card(stack, cds, keys):
    r = await call(cds, keys, hook_request(vitals=None))
    assert r.status_code == 200
    assert r.json() == {"cards": []}
    assert stack.ml.public_calls() == []


@pytest.mark.parametrize("missing", ["patient", "vitals", "labs"])
async def test_missing_required_prefetch_is_412(stack, cds, keys, missing):
    r = await call(cds, keys, hook_request(**{missing: ...}))
    assert r.status_code == 412
    error = stack.envelope(r)
    assert error["code"] == "precondition_failed"
    assert error["details"]["missing_prefetch"] == [missing]


async def test_failed_prefetch_operation_outcome_is_412(cds, keys):
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    r = await call(cds, keys, hook_request(labs=outcome))
    assert r.status_code == 412


async def test_bad_prefetch_unit_is_422_naming_the_prefetch_element(stack, cds, keys):
    body = hook_request()
    body["prefetch"]["vitals"]["entry"][0]["resource"]["valueQuantity"]["code"] = "Hz"
    r = await call(cds, keys, body)
    assert r.status_code == 422
    error = stack.envelope(r)
    field = error["details"][0]["field"]
    assert field == "prefetch.vitals.entry[0].resource.valueQuantity.code"
    assert field in error["message"]


async def test_request_breaking_the_spec_is_422(stack, cds, keys):
    body = hook_request()
    body["hook"] = "order-sign"
    del body["hookInstance"]
    r = await call(cds, keys, body)
    assert r.status_code == 422
    fields = {d["field"] for d in stack.envelope(r)["details"]}
    assert fields == {"hook", "hookInstance"}


# ---- feedback ------------------------------------------------------------------------------


FEEDBACK = "/cds-services/sepsis-risk/feedback"


async def send_feedback(client, keys, *entries: dict[str, Any]):
    return await client.post(
        FEEDBACK, json={"feedback": list(entries)}, headers=bearer(token(keys, FEEDBACK))
    )


async def issued_card(stack, client, keys, priority: str) -> dict[str, Any]:
    stack.ml.canned["/classify"] = stack.canned(
        body=json.dumps(CRITICAL | {"priority": priority}).encode()
    )
    r = await call(client, keys, hook_request())
    assert r.status_code == 200, r.text
    card: dict[str, Any] = r.json()["cards"][0]
    return card


async def test_feedback_is_summarised_per_priority_in_performance(stack, cds, keys):
    critical = await issued_card(stack, cds, keys, "Critical")
    urgent_1 = await issued_card(stack, cds, keys, "Urgent")
    urgent_2 = await issued_card(stack, cds, keys, "Urgent")
    accepted = {
        "card": critical["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": critical["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": "2026-02-07T18:40:00Z",
    }
    reason = critical["overrideReasons"][0]
    overridden = {
        "card": urgent_1["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": reason, "userComment": "on antibiotics since noon"},
        "outcomeTimestamp": "2026-02-07T18:41:00Z",
    }
    bare = {
        "card": urgent_2["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-02-07T18:42:00Z",
    }
    r = await send_feedback(cds, keys, accepted, overridden, bare)
    assert r.status_code == 200, r.text
    assert r.json()["recorded"] == 3
    again = await send_feedback(cds, keys, overridden)
    assert again.json() == {"recorded": 0, "duplicates": 1, "unknown_cards": []}

    figures = (await cds.get("/performance", headers={"X-API-Key": stack.client_key})).json()
    per = figures["cds_feedback"]["per_priority"]
    assert per["Critical"] | {"override_reasons": {}} == {
        "cards": 1,
        "feedback": 1,
        "accepted": 1,
        "overridden": 0,
        "acceptance_rate": 1.0,
        "override_rate": 0.0,
        "override_reasons": {},
    }
    assert (per["Urgent"]["cards"], per["Urgent"]["overridden"]) == (2, 2)
    assert per["Urgent"]["override_rate"] == 1.0
    assert per["Urgent"]["override_reasons"] == {
        f"{reason['system']}|{reason['code']}": 1,
        "(no reason given)": 1,
    }
    assert figures["cds_feedback"]["totals"]["acceptance_rate"] == round(1 / 3, 4)


async def test_feedback_on_an_unknown_card_is_counted_as_unknown(cds, keys):
    entry = {
        "card": str(uuid.uuid4()),
        "outcome": "overridden",
        "outcomeTimestamp": "2026-02-07T18:00:00Z",
    }
    r = await send_feedback(cds, keys, entry)
    assert r.json()["unknown_cards"] == [entry["card"]]


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (
            {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-02-07T18:00:00Z"},
            "feedback.0",
        ),
        (
            {"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-02-07T18:00:00Z"},
            "feedback.0.outcome",
        ),
        (
            {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-02-07T18:00"},
            "feedback.0.outcomeTimestamp",
        ),
    ],
)
async def test_bad_feedback_is_422_naming_the_field(stack, cds, keys, entry, field):
    r = await send_feedback(cds, keys, entry)
    assert r.status_code == 422
    assert stack.envelope(r)["details"][0]["field"] == field


async def test_feedback_needs_the_jwt(stack, cds):
    r = await cds.post(FEEDBACK, json={"feedback": []}, headers={"X-API-Key": stack.client_key})
    assert r.status_code == 401


async def test_openapi_documents_cds_routes_with_the_jwt_scheme(cds):
    doc = (await cds.get("/openapi.json")).json()
    assert {"/cds-services", SERVICE, FEEDBACK} <= set(doc["paths"])
    assert doc["components"]["securitySchemes"]["CdsHooksJwt"]["scheme"] == "bearer"
    assert "412" in doc["paths"][SERVICE]["post"]["responses"]


# ---- data the client did not prefetch, from its FHIR server ------------------------------------


@pytest.fixture
async def fhir_server():
    """The EHR's FHIR server: answers the prefetch queries from the ward Bundle."""
    seen: list[tuple[str, str, str]] = []
    failing: set[str] = set()
    resources = [copy.deepcopy(e["resource"]) for e in WARD["entry"]]

    async def patient(request: web.Request) -> web.Response:
        seen.append((request.path, request.query_string, request.headers.get("Authorization", "")))
        found = [r for r in resources if r["resourceType"] == "Patient"]
        return web.json_response(found[0], content_type="application/fhir+json")

    async def observations(request: web.Request) -> web.Response:
        seen.append((request.path, request.query_string, request.headers.get("Authorization", "")))
        wanted = request.query.get("category")
        if wanted in failing:
            return web.json_response({"resourceType": "OperationOutcome"}, status=500)
        found = [
            r
            for r in resources
            if r["resourceType"] == "Observation"
            and r.get("subject", {}).get("reference") == f"Patient/{request.query['patient']}"
            and any(c.get("code") == wanted for cat in r.get("category", []) for c in cat["coding"])
        ]
        return web.json_response(searchset(found))

    app = web.Application()
    app.router.add_get("/fhir/Patient/{id}", patient)
    app.router.add_get("/fhir/Observation", observations)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/fhir", seen, failing
    await runner.cleanup()


async def fetching_gateway(stack, keys, redis_url, server: str):
    return await stack.start(
        cds_public_url=PUBLIC,
        cds_clients=json.dumps({ISS: {"jwks": keys["jwks"], "fhir_servers": [server]}}),
        redis_url=redis_url,
        gateway_redis_namespace=f"test-cds:{uuid.uuid4().hex}",
    )


def without_prefetch(server: str) -> dict[str, Any]:
    body = hook_request()
    del body["prefetch"]
    body["fhirServer"] = server
    body["fhirAuthorization"] = {
        "access_token": "ehr-access-token-for-cds",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Patient.read patient/Observation.read",
        "subject": "sepsis-cds",
    }
    return body


async def test_missing_prefetch_is_fetched_from_the_clients_fhir_server(
    stack, keys, redis_url, fhir_server
):
    server, seen, _ = fhir_server
    stack.ml.canned["/classify"] = stack.canned(body=json.dumps(CRITICAL).encode())
    client = await fetching_gateway(stack, keys, redis_url, server)
    r = await call(client, keys, without_prefetch(server))
    assert r.status_code == 200, r.text
    assert r.json()["cards"][0]["indicator"] == "critical"
    assert {path for path, _, _ in seen} == {"/fhir/Patient/pat-7", "/fhir/Observation"}
    assert {auth for _, _, auth in seen} == {"Bearer ehr-access-token-for-cds"}
    [sent] = stack.ml.public_calls()
    patient = json.loads(sent.body)
    assert [p["val"] for p in patient["vitals"]["HR"]] == [96.0, 108.0, 118.0]
    assert patient["vitals"]["Lactate"][0]["val"] == 3.1


async def test_fhir_server_not_configured_for_the_client_is_412_and_not_called(
    stack, keys, redis_url, fhir_server
):
    server, seen, _ = fhir_server
    client = await fetching_gateway(stack, keys, redis_url, "https://other-ehr.test/fhir")
    r = await call(client, keys, without_prefetch(server))
    assert r.status_code == 412
    assert "not one configured" in stack.envelope(r)["message"]
    assert seen == []


async def test_fhir_server_failing_a_query_is_412_naming_the_key(
    stack, keys, redis_url, fhir_server
):
    server, _, failing = fhir_server
    failing.add("laboratory")
    client = await fetching_gateway(stack, keys, redis_url, server)
    r = await call(client, keys, without_prefetch(server))
    assert r.status_code == 412
    assert stack.envelope(r)["details"]["missing_prefetch"] == ["labs"]
