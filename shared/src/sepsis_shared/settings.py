"""Settings base shared by the services (pydantic-settings; built only in `create_app`)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_TOKEN_HEADER = "X-Service-Token"


class BaseServiceSettings(BaseSettings):
    """What every service reads from the environment."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

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
