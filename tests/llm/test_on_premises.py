"""The on-premises profile against the real server: base URL, model, key, the hospital's CA for
TLS, and `/genai-health` asking the server itself."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from sepsis_shared.patient import STRUCTURED_EXAMPLE

if TYPE_CHECKING:
    from tests.llm.conftest import HospitalCA, LlamaServer, RunApp, SettingsFactory


def guide() -> dict[str, Any]:
    return copy.deepcopy(dict(STRUCTURED_EXAMPLE))


async def test_health_probes_the_server(
    settings: SettingsFactory, run_app: RunApp, llama: LlamaServer
) -> None:
    async with run_app(settings(GENAI_HEALTH_PROBE_INTERVAL_S=60)) as client:
        health = (await client.get("/genai-health")).json()
        performance = (await client.get("/performance")).json()
    assert health["status"] == "available"
    assert health["model"] == llama.model
    assert health["llm_probe"]["ok"] is True
    # One token asked for; what the prompt cost is what the server counted.
    assert performance["llm"]["completion_tokens"] == 1
    assert performance["llm"]["prompt_tokens"] > 0


async def test_health_names_a_key_the_server_refuses(
    settings: SettingsFactory, run_app: RunApp
) -> None:
    async with run_app(settings(OPENAI_API_KEY="not-the-key")) as client:
        health = (await client.get("/genai-health")).json()
    assert health["status"] == "degraded"
    assert health["reason"] == "the last LLM probe failed (auth_error)"


async def test_tls_with_the_hospital_ca(
    settings: SettingsFactory, run_app: RunApp, tls_front: str, hospital_ca: HospitalCA
) -> None:
    config = settings(
        OPENAI_BASE_URL=tls_front,
        GENAI_LLM_CA_BUNDLE=str(hospital_ca.bundle),
        GENAI_MAX_OUTPUT_TOKENS=64,
    )
    async with run_app(config) as client:
        health = (await client.get("/genai-health")).json()
        body = (await client.post("/genai-classify", json=guide())).json()
    assert health["status"] == "available", health
    # The assessment went over TLS to the model: two cut turns of 64 tokens each.
    assert body["llm"]["status"] == "invalid_output"
    assert body["llm"]["completion_tokens"] == 128


async def test_tls_without_the_hospital_ca_is_refused(
    settings: SettingsFactory, run_app: RunApp, tls_front: str
) -> None:
    async with run_app(settings(OPENAI_BASE_URL=tls_front)) as client:
        health = (await client.get("/genai-health")).json()
        body = (await client.post("/genai-classify", json=guide())).json()
    # The public roots do not know the hospital's CA: no call gets through.
    assert health["status"] == "degraded"
    assert health["llm_probe"]["error_kind"] == "connection_error"
    assert body["llm"]["status"] == "failed"
    assert body["llm"]["error_kind"] == "connection_error"
    assert body["degraded"] is True
