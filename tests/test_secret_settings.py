"""Keys and tokens that cannot be real secrets stop each service before it starts.

Each case is read the way a container reads it, from the environment, and the error must name
the variable (and the entry of a list) without ever quoting the value.
"""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from sepsis_gateway.config import GatewaySettings
from sepsis_genai.config import GenAISettings
from sepsis_ml.config import MLSettings
from sepsis_shared.settings import MIN_SECRET_CHARS, placeholder_problem, secret_problem

GOOD = {
    "API_KEY": secrets.token_urlsafe(32),
    "API_KEYS": f"{secrets.token_urlsafe(32)},{secrets.token_hex(16)}",
    "ADMIN_API_KEYS": secrets.token_urlsafe(32),
    "SERVICE_TOKEN": secrets.token_urlsafe(32),
}
_SECRET_ENV = (*GOOD, "INTERNAL_SERVICE_TOKEN", "AZURE_OPENAI_API_KEY", "OPENAI_API_KEY")

# value -> what the refusal says about it
BAD_VALUES = {
    # what an older compose implementation passed on for `API_KEYS: ${API_KEYS:-}`
    "${API_KEYS:-}": "unexpanded variable",
    "${SERVICE_TOKEN}": "unexpanded variable",
    "$API_KEY": "unexpanded variable",
    "prefix-$(openssl rand -hex 32)": "unexpanded variable",
    "<your-api-key-goes-right-here>": "placeholder",
    "changeme-changeme-changeme-1": "placeholder",
    "Change_Me_Please_0123456789": "placeholder",
    "your-api-key-0123456789abcdef": "placeholder",
    "replace-me-with-a-real-secret": "placeholder",
    # the original deployment guide's examples, alone and dressed up
    "sepsis_secret_key_2024": "original deployment guide",
    "sepsis_secret_key_2024_production": "original deployment guide",
    "SEPSIS-API-KEY-2024-for-the-ward": "original deployment guide",
    "6fa83d52a5c0492e8690c009d09492d5": "original deployment guide",
    "short-key": f"at least {MIN_SECRET_CHARS}",
    "x" * 23: f"at least {MIN_SECRET_CHARS}",
    "abababababababababababababab": "different characters",
}


@pytest.fixture(autouse=True)
def _no_secrets_from_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SECRET_ENV:
        monkeypatch.delenv(name, raising=False)


def _refusal(settings: type[BaseSettings], monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        settings()
    return str(caught.value)


@pytest.mark.parametrize(("value", "reason"), BAD_VALUES.items())
@pytest.mark.parametrize("variable", ["API_KEY", "API_KEYS", "ADMIN_API_KEYS", "SERVICE_TOKEN"])
def test_gateway_refuses_each_weak_secret_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    message = _refusal(GatewaySettings, monkeypatch, **{**GOOD, variable: value})
    assert f"{variable} " in message
    assert reason in message
    assert value not in message, "the refused value must not be echoed"


@pytest.mark.parametrize(("value", "reason"), BAD_VALUES.items())
@pytest.mark.parametrize("settings", [MLSettings, GenAISettings])
@pytest.mark.parametrize("variable", ["SERVICE_TOKEN", "INTERNAL_SERVICE_TOKEN"])
def test_services_refuse_each_weak_token(
    monkeypatch: pytest.MonkeyPatch,
    settings: type[BaseSettings],
    variable: str,
    value: str,
    reason: str,
) -> None:
    message = _refusal(settings, monkeypatch, **{variable: value})
    assert "SERVICE_TOKEN" in message
    assert reason in message
    assert value not in message


def test_a_list_names_the_entry_that_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = f"{secrets.token_urlsafe(32)}, {secrets.token_urlsafe(32)},changeme"
    message = _refusal(GatewaySettings, monkeypatch, **{**GOOD, "API_KEYS": keys})
    assert "API_KEYS entry 3 of 3 is a placeholder" in message
    assert "changeme" not in message.replace("`changeme`", "")


def test_the_token_must_differ_from_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(
        GatewaySettings, monkeypatch, **{**GOOD, "SERVICE_TOKEN": GOOD["ADMIN_API_KEYS"]}
    )
    assert "SERVICE_TOKEN must differ" in message


def test_random_secrets_of_the_usual_generators_are_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    settings = GatewaySettings()
    assert len(settings.client_keys()) == 3
    assert settings.admin_keys() == (GOOD["ADMIN_API_KEYS"],)
    token = GOOD["SERVICE_TOKEN"]
    assert MLSettings(SERVICE_TOKEN=token).service_token is not None
    assert GenAISettings(INTERNAL_SERVICE_TOKEN=token).service_token is not None
    for generated in (secrets.token_hex(12), secrets.token_urlsafe(18), secrets.token_hex(32)):
        assert secret_problem(generated) is None, len(generated)


def test_unset_and_empty_secrets_are_left_to_the_start_up_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Whether a key is required is the app factory's decision (MissingConfiguration, tested
    # with each service); an empty list entry is no key at all.
    monkeypatch.setenv("API_KEYS", " , ")
    monkeypatch.setenv("SERVICE_TOKEN", "")
    assert GatewaySettings().client_keys() == ()
    assert MLSettings().service_token is not None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AZURE_OPENAI_API_KEY", "${AZURE_OPENAI_API_KEY}"),
        ("AZURE_OPENAI_API_KEY", "6fa83d52a5c0492e8690c009d09492d5"),
        ("OPENAI_API_KEY", "$OPENAI_API_KEY"),
        ("OPENAI_API_KEY", "changeme"),
    ],
)
def test_genai_refuses_placeholder_llm_keys(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    message = _refusal(
        GenAISettings, monkeypatch, SERVICE_TOKEN=GOOD["SERVICE_TOKEN"], **{variable: value}
    )
    assert f"{variable} " in message
    assert value not in message.replace("`changeme`", "")


def test_llm_keys_keep_their_own_length_rules() -> None:
    # Another party's key (a local llama.cpp server takes any) is not held to our minimum.
    assert placeholder_problem("not-needed") is None
    assert placeholder_problem("sk-local") is None
    settings = GenAISettings(SERVICE_TOKEN=GOOD["SERVICE_TOKEN"], OPENAI_API_KEY="sk-local")
    assert settings.resolved_provider() == "openai"
