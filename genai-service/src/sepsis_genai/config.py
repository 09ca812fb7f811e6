"""Settings of the GenAI service (pydantic-settings; built only in `create_app`).

The Azure variables are those of the original deployment guide (`AZURE_OPENAI_API_KEY`,
`AZURE_OPENAI_ENDPOINT`, `AZURE_OPENAI_API_VERSION`, `AZURE_OPENAI_DEPLOYMENT_NAME`,
`AZURE_OPENAI_MODEL`). `LLM_PROVIDER=auto` picks Azure when `AZURE_OPENAI_ENDPOINT` is set, an
OpenAI-compatible server when `OPENAI_BASE_URL` or `OPENAI_API_KEY` is set, else the offline
deterministic assessment.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator

from sepsis_shared.service import MissingConfiguration
from sepsis_shared.settings import InternalServiceSettings, placeholder_problem

Provider = Literal["azure", "openai", "offline"]

# Local OpenAI-compatible servers (vLLM, Ollama, llama.cpp) accept any key; the SDK needs one.
LOCAL_SERVER_PLACEHOLDER_KEY = "not-needed"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


@dataclass(frozen=True, slots=True)
class LLMTarget:
    """The resolved LLM endpoint: what the client talks to and what the answer depends on."""

    provider: Literal["azure", "openai"]
    model: str
    """Deployment name (Azure) or model name (OpenAI) sent with each request."""
    model_label: str
    """The model reported to clients (Azure: AZURE_OPENAI_MODEL, else the deployment)."""
    api_key: str
    endpoint: str | None
    """Azure resource endpoint or OpenAI base URL (None: the SDK's default)."""
    api_version: str | None
    ca_bundle: Path | None = None
    """PEM file of the CAs that sign the LLM server's certificate (None: the public roots)."""


class GenAISettings(InternalServiceSettings):
    """Everything the GenAI service reads from the environment."""

    # ---- LLM provider ----------------------------------------------------------------------
    llm_provider: Literal["auto", "azure", "openai", "offline"] = Field(
        default="auto", validation_alias=_env("LLM_PROVIDER")
    )
    azure_openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("AZURE_OPENAI_API_KEY")
    )
    azure_openai_endpoint: str | None = Field(
        default=None, validation_alias=_env("AZURE_OPENAI_ENDPOINT")
    )
    azure_openai_api_version: str = Field(
        default="2024-06-01", validation_alias=_env("AZURE_OPENAI_API_VERSION")
    )
    azure_openai_deployment_name: str | None = Field(
        default=None, validation_alias=_env("AZURE_OPENAI_DEPLOYMENT_NAME")
    )
    azure_openai_model: str | None = Field(
        default=None, validation_alias=_env("AZURE_OPENAI_MODEL")
    )
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(default=None, validation_alias=_env("OPENAI_BASE_URL"))
    openai_model: str = Field(default="gpt-4o-mini", validation_alias=_env("OPENAI_MODEL"))
    llm_ca_bundle: Path | None = Field(
        default=None,
        validation_alias=_env("GENAI_LLM_CA_BUNDLE"),
        description="PEM bundle of the CAs trusted for the LLM's TLS (a hospital's own CA for "
        "an on-premises server); it replaces the public roots for LLM calls only.",
    )

    # ---- LLM call policy -------------------------------------------------------------------
    deadline_s: float = Field(
        default=30.0,
        gt=0,
        le=110,
        validation_alias=_env("GENAI_DEADLINE_S"),
        description="Whole LLM call budget per request, retries included (App Runner caps 120 s).",
    )
    max_concurrency: int = Field(
        default=64,
        ge=1,
        validation_alias=_env("GENAI_MAX_CONCURRENCY"),
        description="LLM calls in flight per instance (also the HTTP connection pool size).",
    )
    max_queued: int = Field(
        default=32,
        ge=0,
        validation_alias=_env("GENAI_MAX_QUEUED"),
        description="LLM calls waiting for a slot; a call past them is answered 503 at once. "
        "Keep GENAI_MAX_CONCURRENCY + GENAI_MAX_QUEUED below the gateway's "
        "UPSTREAM_MAX_CONNECTIONS (100), so that a hanging LLM cannot hold every connection.",
    )
    max_retries: int = Field(default=2, ge=0, le=6, validation_alias=_env("GENAI_MAX_RETRIES"))
    retry_base_s: float = Field(default=0.5, gt=0, validation_alias=_env("GENAI_RETRY_BASE_S"))
    retry_max_s: float = Field(default=8.0, gt=0, validation_alias=_env("GENAI_RETRY_MAX_S"))
    temperature: float = Field(default=0.0, ge=0, le=2, validation_alias=_env("GENAI_TEMPERATURE"))
    max_output_tokens: int = Field(
        default=800, ge=64, le=8192, validation_alias=_env("GENAI_MAX_OUTPUT_TOKENS")
    )
    health_probe_interval_s: float = Field(
        default=30.0,
        ge=0,
        validation_alias=_env("GENAI_HEALTH_PROBE_INTERVAL_S"),
        description="/genai-health asks the LLM for one token when nothing was heard from it "
        "for this long (0: report only the last call's outcome).",
    )
    daily_token_budget: int | None = Field(
        default=None,
        ge=1,
        validation_alias=_env("GENAI_DAILY_TOKEN_BUDGET"),
        description="Prompt plus completion tokens per UTC day and instance; past it, new "
        "assessments are answered by the offline rules, saying so (unset: no limit).",
    )
    fail_on_llm_error: bool = Field(
        default=False,
        validation_alias=_env("GENAI_FAIL_ON_LLM_ERROR"),
        description="Answer 503 instead of the degraded guardrail assessment when the LLM fails.",
    )

    # ---- cache -----------------------------------------------------------------------------
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias=_env("REDIS_URL"))
    cache_enabled: bool = Field(default=True, validation_alias=_env("GENAI_CACHE_ENABLED"))
    cache_namespace: str = Field(
        default="sepsis:genai",
        min_length=1,
        pattern=r"^[A-Za-z0-9:_.-]+$",
        validation_alias=_env("GENAI_CACHE_NAMESPACE"),
    )
    cache_ttl_s: int = Field(default=3600, ge=1, validation_alias=_env("GENAI_CACHE_TTL_S"))
    redis_timeout_s: float = Field(
        default=0.1,
        gt=0,
        le=5,
        validation_alias=_env("GENAI_REDIS_TIMEOUT_S"),
        description="Connect and socket timeout of each Redis call; past it, serve uncached.",
    )
    cache_retry_interval_s: float = Field(
        default=2.0,
        ge=0,
        validation_alias=_env("GENAI_CACHE_RETRY_INTERVAL_S"),
        description="While Redis is down, how long to skip it before trying again.",
    )

    # ---- requests --------------------------------------------------------------------------
    max_batch: int = Field(default=50, ge=1, le=1000, validation_alias=_env("GENAI_MAX_BATCH"))
    # 32 at a time: a full batch of 50 takes at most two LLM deadlines (2 x 30 s), inside the
    # gateway's 100 s GenAI timeout and App Runner's 120 s cap.
    batch_concurrency: int = Field(
        default=32, ge=1, validation_alias=_env("GENAI_BATCH_CONCURRENCY")
    )
    max_body_bytes: int = Field(
        default=4_000_000, ge=1024, validation_alias=_env("GENAI_MAX_BODY_BYTES")
    )
    max_notes_chars: int = Field(
        default=2000,
        ge=100,
        le=20_000,
        validation_alias=_env("GENAI_MAX_NOTES_CHARS"),
        description="Notes longer than this are cut before they reach the prompt.",
    )
    guardrail_config_path: Path | None = Field(
        default=None, validation_alias=_env("GUARDRAIL_CONFIG_PATH")
    )

    @field_validator("azure_openai_api_key", "openai_api_key")
    @classmethod
    def _llm_key_is_no_placeholder(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        # Another party's key: its length is theirs to set, but an unexpanded variable or the
        # key the original guide published is never a working one.
        problem = placeholder_problem(value.get_secret_value()) if value is not None else None
        if problem is not None:
            variable = {"azure_openai_api_key": "AZURE_OPENAI_API_KEY"}.get(
                info.field_name or "", "OPENAI_API_KEY"
            )
            raise ValueError(f"{variable} {problem}")
        return value

    def resolved_provider(self) -> Provider:
        """The provider in force once `auto` is resolved."""
        if self.llm_provider != "auto":
            return self.llm_provider
        if self.azure_openai_endpoint:
            return "azure"
        if self.openai_base_url or self.openai_api_key:
            return "openai"
        return "offline"

    def llm_target(self) -> LLMTarget | None:
        """The LLM to call, None for the offline provider.

        Raises MissingConfiguration naming what to set when the chosen provider is incomplete.
        """
        provider = self.resolved_provider()
        if provider == "offline":
            return None
        if provider == "azure":
            missing = [
                name
                for name, value in (
                    ("AZURE_OPENAI_ENDPOINT", self.azure_openai_endpoint),
                    ("AZURE_OPENAI_API_KEY", self.azure_openai_api_key),
                    ("AZURE_OPENAI_DEPLOYMENT_NAME", self.azure_openai_deployment_name),
                )
                if not value
            ]
            if missing:
                raise MissingConfiguration(
                    "genai-service refuses to start: the Azure OpenAI provider needs "
                    + ", ".join(missing)
                    + " (or set LLM_PROVIDER=offline)."
                )
            assert self.azure_openai_api_key is not None
            assert self.azure_openai_deployment_name is not None
            return LLMTarget(
                provider="azure",
                model=self.azure_openai_deployment_name,
                model_label=self.azure_openai_model or self.azure_openai_deployment_name,
                api_key=self.azure_openai_api_key.get_secret_value(),
                endpoint=self.azure_openai_endpoint,
                api_version=self.azure_openai_api_version,
                ca_bundle=self._ca_bundle(),
            )
        key = self.openai_api_key.get_secret_value() if self.openai_api_key else ""
        if not key:
            if not self.openai_base_url:
                raise MissingConfiguration(
                    "genai-service refuses to start: LLM_PROVIDER=openai needs OPENAI_API_KEY "
                    "or OPENAI_BASE_URL (or set LLM_PROVIDER=offline)."
                )
            key = LOCAL_SERVER_PLACEHOLDER_KEY
        return LLMTarget(
            provider="openai",
            model=self.openai_model,
            model_label=self.openai_model,
            api_key=key,
            endpoint=self.openai_base_url,
            api_version=None,
            ca_bundle=self._ca_bundle(),
        )

    def _ca_bundle(self) -> Path | None:
        path = self.llm_ca_bundle
        if path is None:
            return None
        try:
            ssl.create_default_context(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            problem = "not found" if isinstance(exc, FileNotFoundError) else "no PEM CA bundle"
            raise MissingConfiguration(
                f"genai-service refuses to start: GENAI_LLM_CA_BUNDLE ({path}) is {problem}."
            ) from None
        return path
