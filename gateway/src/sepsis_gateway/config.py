"""Gateway settings, read from the environment once in `create_app`.

Client keys come from `API_KEY` (the original deployment's single key) and `API_KEYS`
(comma-separated, so an old and a new key can be valid together during a rotation). Admin keys
(`ADMIN_API_KEYS`) unlock the reload routes and also work wherever a client key does.

Size limits: the gateway enforces request bytes (`MAX_BODY_BYTES` for single-patient and admin
routes, `MAX_BATCH_BODY_BYTES` for the two batch routes) without parsing the body. The number of
patients in a batch is enforced by the service that parses it (ml-service: 1000,
genai-service: 50), whose 413 envelope the gateway passes through unchanged.
"""

from __future__ import annotations

from typing import Self

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from sepsis_gateway.jwt_auth import parse_clients
from sepsis_shared.settings import BaseServiceSettings, check_secret

MIB = 1024 * 1024


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def split_keys(raw: SecretStr | None) -> tuple[str, ...]:
    """Comma-separated secrets as a tuple of non-empty, stripped values (order kept)."""
    if raw is None:
        return ()
    return tuple(part.strip() for part in raw.get_secret_value().split(",") if part.strip())


# field -> (the variable named in errors, whether it holds a comma-separated list)
_SECRET_VARIABLES = {
    "api_key": ("API_KEY", False),
    "api_keys": ("API_KEYS", True),
    "admin_api_keys": ("ADMIN_API_KEYS", True),
    "service_token": ("SERVICE_TOKEN", False),
}


class GatewaySettings(BaseServiceSettings):
    """Everything the gateway reads from the environment."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", frozen=True, validate_by_name=True, validate_by_alias=True
    )

    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env("API_KEY"),
        description="Legacy single client key (the original deployment's variable).",
    )
    api_keys: SecretStr | None = Field(
        default=None,
        validation_alias=_env("API_KEYS"),
        description="Comma-separated client keys, all valid at once (rotation).",
    )
    admin_api_keys: SecretStr | None = Field(
        default=None,
        validation_alias=_env("ADMIN_API_KEYS"),
        description="Comma-separated admin keys (reload routes; also valid as client keys).",
    )
    service_token: SecretStr | None = Field(
        default=None,
        validation_alias=_env("SERVICE_TOKEN", "INTERNAL_SERVICE_TOKEN"),
        description="Internal token sent upstream in X-Service-Token.",
    )

    ml_service_url: str = Field(
        default="http://127.0.0.1:8001", validation_alias=_env("ML_SERVICE_URL")
    )
    genai_service_url: str = Field(
        default="http://127.0.0.1:8002", validation_alias=_env("GENAI_SERVICE_URL")
    )
    ml_connect_timeout_s: float = Field(
        default=1.0, gt=0, validation_alias=_env("ML_CONNECT_TIMEOUT_S")
    )
    ml_timeout_s: float = Field(default=10.0, gt=0, validation_alias=_env("ML_TIMEOUT_S"))
    genai_connect_timeout_s: float = Field(
        default=2.0, gt=0, validation_alias=_env("GENAI_CONNECT_TIMEOUT_S")
    )
    # App Runner cuts every request at 120 s; the gateway answers 504 well before that.
    genai_timeout_s: float = Field(
        default=100.0, gt=0, lt=120, validation_alias=_env("GENAI_TIMEOUT_S")
    )
    upstream_max_connections: int = Field(
        default=100, ge=1, validation_alias=_env("UPSTREAM_MAX_CONNECTIONS")
    )

    max_body_bytes: int = Field(default=MIB, ge=1, validation_alias=_env("MAX_BODY_BYTES"))
    max_batch_body_bytes: int = Field(
        default=16 * MIB, ge=1, validation_alias=_env("MAX_BATCH_BODY_BYTES")
    )
    body_read_timeout_s: float = Field(
        default=15.0,
        gt=0,
        validation_alias=_env("BODY_READ_TIMEOUT_S"),
        description="Time a client has to send a request body once its headers arrived; past "
        "it, 408 and the connection is closed (a body trickled byte by byte holds nothing).",
    )

    rate_limit_per_minute: int = Field(
        default=6000,
        ge=0,
        validation_alias=_env("RATE_LIMIT_PER_MINUTE"),
        description="Sustained requests per minute per key; 0 disables the limit.",
    )
    rate_limit_burst: int | None = Field(
        default=None,
        ge=1,
        validation_alias=_env("RATE_LIMIT_BURST"),
        description="Bucket size per key; defaults to one minute's worth of requests.",
    )

    circuit_failure_threshold: int = Field(
        default=5, ge=1, validation_alias=_env("CIRCUIT_FAILURE_THRESHOLD")
    )
    circuit_cooldown_s: float = Field(
        default=10.0, gt=0, validation_alias=_env("CIRCUIT_COOLDOWN_S")
    )
    health_probe_interval_s: float = Field(
        default=5.0, gt=0, validation_alias=_env("HEALTH_PROBE_INTERVAL_S")
    )
    health_probe_timeout_s: float = Field(
        default=2.0, gt=0, validation_alias=_env("HEALTH_PROBE_TIMEOUT_S")
    )
    openapi_cache_ttl_s: float = Field(
        default=300.0, gt=0, validation_alias=_env("OPENAPI_CACHE_TTL_S")
    )

    # CDS Hooks (DESIGN §4a): who may call, and where the feedback and seen JWT ids live.
    cds_public_url: str | None = Field(
        default=None,
        validation_alias=_env("CDS_PUBLIC_URL"),
        description="The gateway's base URL as CDS clients call it: a JWT's aud must be this "
        "plus the path called (e.g. https://cds.example.org/cds-services/sepsis-risk).",
    )
    cds_clients: str | None = Field(
        default=None,
        validation_alias=_env("CDS_CLIENTS"),
        description='Allowed CDS clients as JSON: {"<iss>": {"jwks_url": "https://..."}} '
        '(or "jwks": {...} inline, or "jwks_file": path); public keys only.',
    )
    cds_jwt_max_lifetime_s: float = Field(
        default=300.0, gt=0, validation_alias=_env("CDS_JWT_MAX_LIFETIME_S")
    )
    cds_feedback_ttl_s: int = Field(
        default=90 * 24 * 3600, ge=60, validation_alias=_env("CDS_FEEDBACK_TTL_S")
    )
    cds_assessment_ttl_s: int = Field(
        default=3600,
        ge=0,
        validation_alias=_env("CDS_ASSESSMENT_TTL_S"),
        description="How long the full assessment behind a card's link is kept; 0: no links.",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias=_env("REDIS_URL"))
    gateway_redis_namespace: str = Field(
        default="sepsis:gateway", min_length=1, validation_alias=_env("GATEWAY_REDIS_NAMESPACE")
    )
    gateway_redis_timeout_s: float = Field(
        default=0.5, gt=0, validation_alias=_env("GATEWAY_REDIS_TIMEOUT_S")
    )

    @field_validator("cds_clients")
    @classmethod
    def _cds_clients_parse(cls, value: str | None) -> str | None:
        parse_clients(value)  # raises naming the entry at fault
        return value

    @field_validator("api_key", "api_keys", "admin_api_keys", "service_token")
    @classmethod
    def _keys_are_secrets(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        variable, many = _SECRET_VARIABLES[info.field_name or ""]
        check_secret(variable, value, many=many)
        return value

    @model_validator(mode="after")
    def _token_is_not_a_key(self) -> Self:
        token = self.service_token.get_secret_value().strip() if self.service_token else ""
        if token and token in set(self.client_keys()) | set(self.admin_keys()):
            # A client holding it could pass for the gateway wherever a service is reachable.
            raise ValueError(
                "SERVICE_TOKEN must differ from every API_KEY, API_KEYS and ADMIN_API_KEYS entry"
            )
        return self

    def client_keys(self) -> tuple[str, ...]:
        """Every configured client key: API_KEY first, then API_KEYS."""
        keys = split_keys(self.api_key) + split_keys(self.api_keys)
        return tuple(dict.fromkeys(keys))

    def admin_keys(self) -> tuple[str, ...]:
        """Every configured admin key."""
        return tuple(dict.fromkeys(split_keys(self.admin_api_keys)))

    def rate_limit_capacity(self) -> int:
        """Tokens a key's bucket holds when full."""
        return self.rate_limit_burst or max(1, self.rate_limit_per_minute)
