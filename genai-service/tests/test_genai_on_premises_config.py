"""Configuration of an on-premises OpenAI-compatible server: base URL, model, optional key and
the hospital's CA bundle, each refused at start with the variable named when it cannot work."""

from __future__ import annotations

from pathlib import Path

import certifi
import pytest

from sepsis_genai.config import LOCAL_SERVER_PLACEHOLDER_KEY, GenAISettings
from sepsis_genai.llm import build_openai_client
from sepsis_shared.service import MissingConfiguration

TOKEN = "genai-test-token-0123456789abcdef"


def settings(**values: object) -> GenAISettings:
    return GenAISettings.model_validate({"SERVICE_TOKEN": TOKEN, **values})


def test_a_base_url_alone_is_an_on_premises_server_without_a_key() -> None:
    target = settings(
        OPENAI_BASE_URL="https://llm.hospital.example/v1", OPENAI_MODEL="llama-3.1-8b"
    ).llm_target()
    assert target is not None
    assert (target.provider, target.endpoint, target.model) == (
        "openai",
        "https://llm.hospital.example/v1",
        "llama-3.1-8b",
    )
    assert target.api_key == LOCAL_SERVER_PLACEHOLDER_KEY
    assert target.ca_bundle is None


def test_the_hospital_ca_bundle_is_used_for_the_llm() -> None:
    bundle = Path(certifi.where())
    target = settings(
        OPENAI_BASE_URL="https://llm.hospital.example/v1", GENAI_LLM_CA_BUNDLE=str(bundle)
    ).llm_target()
    assert target is not None
    assert target.ca_bundle == bundle
    client = build_openai_client(target, max_connections=2)
    assert str(client.base_url) == "https://llm.hospital.example/v1/"


def test_a_missing_ca_bundle_stops_the_service_naming_the_variable(tmp_path: Path) -> None:
    config = settings(OPENAI_BASE_URL="https://llm/v1", GENAI_LLM_CA_BUNDLE=str(tmp_path / "no"))
    with pytest.raises(MissingConfiguration, match=r"GENAI_LLM_CA_BUNDLE .* is not found"):
        config.llm_target()


def test_a_file_without_certificates_is_no_ca_bundle(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n", "utf-8")
    config = settings(OPENAI_BASE_URL="https://llm/v1", GENAI_LLM_CA_BUNDLE=str(junk))
    with pytest.raises(MissingConfiguration, match=r"GENAI_LLM_CA_BUNDLE .* is no PEM CA bundle"):
        config.llm_target()


def test_the_azure_profile_takes_the_ca_bundle_too() -> None:
    target = settings(
        AZURE_OPENAI_ENDPOINT="https://sepsis.openai.azure.com/",
        AZURE_OPENAI_API_KEY="azure-key-0123456789abcdefghij",
        AZURE_OPENAI_DEPLOYMENT_NAME="gpt-4o",
        GENAI_LLM_CA_BUNDLE=certifi.where(),
    ).llm_target()
    assert target is not None
    assert target.provider == "azure"
    assert target.ca_bundle == Path(certifi.where())
