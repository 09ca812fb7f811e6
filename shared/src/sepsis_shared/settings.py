"""Settings base shared by the services (pydantic-settings; built only in `create_app`).

Keys and tokens are checked as the settings are read, so a service refuses to start on one that
cannot be a real secret: shorter than `MIN_SECRET_CHARS`, with almost no variety, an unexpanded
variable (`${API_KEY}`, `${API_KEYS:-}`, `$TOKEN`: what an older compose tool or a shell
heredoc passes on literally), a placeholder word (`changeme`, `your-api-key`, ...) or one of the
example values the original deployment guide published. The error names the variable (and the
entry of a comma-separated list), never the value.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_TOKEN_HEADER = "X-Service-Token"
CALLER_ROLE_HEADER = "X-Caller-Role"
"""Set by the gateway on what it forwards: the role of the caller's key (`client`, `admin`).
The services check it again on their admin routes, so that the service token alone does not
reload a clinical configuration."""

MIN_SECRET_CHARS = 24
"""Shortest key or token accepted: 24 random URL-safe characters carry about 144 bits."""
MIN_DISTINCT_CHARS = 8
"""Fewest different characters in a key: fewer is a pattern (`aaaa...`, `abcabc...`)."""
GENERATE_HINT = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"

# `${NAME}`, `${NAME:-default}`, `$NAME`, `$(command)`: text a shell or compose tool was meant
# to replace and did not.
_UNEXPANDED = re.compile(r"\$\{[^}]*\}?|\$[A-Za-z_][A-Za-z0-9_]*|\$\(")
# Compared after lower-casing and dropping everything but letters and digits, so that
# `Change-Me`, `change_me` and `CHANGEME` are one word.
_PLACEHOLDER_WORDS = (
    "changeme",
    "replaceme",
    "placeholder",
    "yourkey",
    "yourapikey",
    "youradminkey",
    "yoursecret",
    "yourtoken",
    "youractualkey",
    "keyhere",
    "tokenhere",
    "secrethere",
)
# The example values of the original deployment guide ("AWS Deployment Guide - Sepsis
# Classification System": `API_KEY=sepsis_secret_key_2024`, the code's default
# `sepsis_api_key_2024`, its Secrets Manager example `your-actual-key`, and the Azure OpenAI key
# it printed). Published, so never secret: refused, also as part of a longer value.
_PUBLISHED_EXAMPLES = (
    "sepsissecretkey2024",
    "sepsisapikey2024",
    "youractualkey",
    "6fa83d52a5c0492e8690c009d09492d5",
)


def _squashed(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


def placeholder_problem(value: str) -> str | None:
    """Why `value` is a placeholder rather than a secret, or None.

    Only the checks that hold for any credential, including another party's (an LLM key):
    an unexpanded variable, a placeholder word, a published example value.
    """
    if _UNEXPANDED.search(value):
        return "looks like an unexpanded variable (`${...}` or `$NAME`), not a secret"
    stripped = value.strip()
    if stripped.startswith("<") and stripped.endswith(">"):
        return "is a `<...>` placeholder, not a secret"
    squashed = _squashed(value)
    if any(example in squashed for example in _PUBLISHED_EXAMPLES):
        return "is an example value published in the original deployment guide"
    if any(word in squashed for word in _PLACEHOLDER_WORDS):
        return "is a placeholder (`changeme`, `your-api-key`, ...), not a secret"
    return None


def secret_problem(value: str) -> str | None:
    """Why `value` cannot be one of our own keys or tokens, or None when it can."""
    problem = placeholder_problem(value)
    if problem is not None:
        return problem
    if len(value) < MIN_SECRET_CHARS:
        return f"is {len(value)} characters long; at least {MIN_SECRET_CHARS} are required"
    if len(set(value)) < MIN_DISTINCT_CHARS:
        return f"has fewer than {MIN_DISTINCT_CHARS} different characters: a pattern, not a secret"
    return None


def check_secret(variable: str, secret: SecretStr | None, *, many: bool = False) -> None:
    """Raise ValueError naming `variable` (and the entry, for a comma-separated list) when the
    key or token cannot be a real secret. Empty values pass: whether one is required is decided
    where the service starts."""
    if secret is None:
        return
    raw = secret.get_secret_value()
    entries = [part.strip() for part in raw.split(",")] if many else [raw.strip()]
    entries = [entry for entry in entries if entry]
    for index, entry in enumerate(entries, start=1):
        problem = secret_problem(entry)
        if problem is None:
            continue
        where = f"{variable} entry {index} of {len(entries)}" if len(entries) > 1 else variable
        raise ValueError(f"{where} {problem}; {GENERATE_HINT}")


class BaseServiceSettings(BaseSettings):
    """What every service reads from the environment."""

    # hide_input_in_errors: a refused key must not appear in the error that refuses it.
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", frozen=True, hide_input_in_errors=True
    )

    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL"))
    log_format: Literal["json", "text"] = Field(
        default="json", validation_alias=AliasChoices("LOG_FORMAT")
    )


class InternalServiceSettings(BaseServiceSettings):
    """Settings of a service that sits behind the gateway and requires its internal token."""

    service_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SERVICE_TOKEN", "INTERNAL_SERVICE_TOKEN"),
        description="Token the gateway sends in X-Service-Token; calls without it are refused.",
    )
    require_service_token: bool = Field(
        default=True, validation_alias=AliasChoices("REQUIRE_SERVICE_TOKEN")
    )

    @field_validator("service_token")
    @classmethod
    def _token_is_a_secret(cls, value: SecretStr | None) -> SecretStr | None:
        check_secret("SERVICE_TOKEN", value)
        return value
