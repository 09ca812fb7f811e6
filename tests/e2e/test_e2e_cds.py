"""CDS Hooks over the real stack: an EHR's signed patient-view call answered with a card from the
real ML pathway, its feedback summarised in /performance, and a missing prefetch refused.

The stack's own gateway has no CDS client configured, so this module starts a second gateway
process, configured with one CDS client (an ES384 key made here), in front of the same
ml-service and genai-service, with the stack's Redis.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

if TYPE_CHECKING:
    from scripts.stack import StackHandle

pytestmark = pytest.mark.e2e

ISS = "https://ehr.e2e.test"
WARD = json.loads(
    (
        Path(__file__).parents[2] / "gateway" / "tests" / "data" / "fhir-sepsis-bundle.json"
    ).read_text()
)
SERVICE = "/cds-services/sepsis-risk"
FEEDBACK = f"{SERVICE}/feedback"


class CdsGateway:
    def __init__(self, url: str, key: ec.EllipticCurvePrivateKey, api_key: str) -> None:
        self.url = url
        self.key = key
        self.api_key = api_key

    def bearer(self, path: str) -> dict[str, str]:
        now = int(time.time())
        claims = {
            "iss": ISS,
            "aud": self.url + path,
            "exp": now + 60,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        signed = jwt.encode(
            claims, self.key, algorithm="ES384", headers={"kid": "e2e-1", "typ": "JWT"}
        )
        return {"Authorization": f"Bearer {signed}"}


@pytest.fixture(scope="module")
def cds_gateway(stack: StackHandle, stack_launcher: ModuleType) -> Iterator[CdsGateway]:
    if os.environ.get("STACK", "local") != "local":
        pytest.skip("the second gateway reaches the services on their local ports")
    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    port = stack_launcher.free_port()
    url = f"http://127.0.0.1:{port}"
    config = stack.config
    redis = getattr(stack, "redis", None)
    api_key = stack_launcher.new_secret()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AZURE_OPENAI_", "OPENAI_", "API_KEY", "ADMIN_API_KEYS"))
    }
    env.update(
        API_KEYS=api_key,
        SERVICE_TOKEN=config.service_token,
        ML_SERVICE_URL=f"http://127.0.0.1:{config.ml_port}",
        GENAI_SERVICE_URL=f"http://127.0.0.1:{config.genai_port}",
        CDS_PUBLIC_URL=url,
        CDS_CLIENTS=json.dumps({ISS: {"jwks": {"keys": [public | {"kid": "e2e-1"}]}}}),
        REDIS_URL=redis.url if redis is not None else "redis://127.0.0.1:6379/0",
        GATEWAY_REDIS_NAMESPACE=f"sepsis-e2e-cds-{secrets.token_hex(4)}",
        LOG_FORMAT="json",
        HEALTH_PROBE_INTERVAL_S="0.5",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "sepsis_gateway.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(url + "/health", timeout=2).json()
                if not health["unavailable"]:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the CDS gateway did not start")
            time.sleep(0.2)
        yield CdsGateway(url, key, api_key)
    finally:
        process.terminate()
        process.wait(timeout=20)


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def _hook(**changes: Any) -> dict[str, Any]:
    resources = [copy.deepcopy(e["resource"]) for e in WARD["entry"]]

    def lab(r: dict[str, Any]) -> bool:
        return any(
            c.get("code") == "laboratory" for cat in r.get("category", []) for c in cat["coding"]
        )

    observations = [r for r in resources if r["resourceType"] == "Observation"]
    prefetch: dict[str, Any] = {
        "patient": next(r for r in resources if r["resourceType"] == "Patient"),
        "vitals": _searchset([r for r in observations if not lab(r)]),
        "labs": _searchset([r for r in observations if lab(r)]),
        "medications": _searchset(
            [r for r in resources if r["resourceType"] == "MedicationAdministration"]
        ),
        "notes": _searchset([r for r in resources if r["resourceType"] == "DocumentReference"]),
    }
    for key, value in changes.items():
        if value is ...:
            del prefetch[key]
        else:
            prefetch[key] = value
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/e2e", "patientId": "pat-7"},
        "prefetch": prefetch,
    }


def test_patient_view_card_from_the_real_ml_pathway_and_its_feedback(
    cds_gateway: CdsGateway,
) -> None:
    with httpx.Client(base_url=cds_gateway.url, timeout=30) as http:
        discovery = http.get("/cds-services", headers=cds_gateway.bearer("/cds-services"))
        assert discovery.json()["services"][0]["id"] == "sepsis-risk"
        r = http.post(SERVICE, json=_hook(), headers=cds_gateway.bearer(SERVICE))
        assert r.status_code == 200, r.text
        [card] = r.json()["cards"]
        assert card["indicator"] in ("critical", "warning")
        assert len(card["summary"]) < 140
        assert "| qSOFA |" in card["detail"]
        link = card["links"][0]["url"].removeprefix(cds_gateway.url)
        full = http.get(link).json()
        assert full["model"]["name"]
        assert full["fhir"]["patient"] == "Patient/pat-7"
        reason = card["overrideReasons"][1]
        feedback = {
            "feedback": [
                {
                    "card": card["uuid"],
                    "outcome": "overridden",
                    "overrideReason": {"reason": reason},
                    "outcomeTimestamp": "2026-02-07T18:45:00Z",
                }
            ]
        }
        sent = http.post(FEEDBACK, json=feedback, headers=cds_gateway.bearer(FEEDBACK))
        assert sent.json()["recorded"] == 1
        figures = http.get("/performance", headers={"X-API-Key": cds_gateway.api_key}).json()
        priority = full["priority"]
        summary = figures["cds_feedback"]["per_priority"][priority]
        assert (summary["cards"], summary["overridden"], summary["override_rate"]) == (1, 1, 1.0)
        assert summary["override_reasons"] == {f"{reason['system']}|{reason['code']}": 1}


def test_missing_labs_prefetch_is_412(cds_gateway: CdsGateway) -> None:
    with httpx.Client(base_url=cds_gateway.url, timeout=30) as http:
        r = http.post(SERVICE, json=_hook(labs=...), headers=cds_gateway.bearer(SERVICE))
    assert r.status_code == 412
    assert r.json()["error"]["details"]["missing_prefetch"] == ["labs"]
