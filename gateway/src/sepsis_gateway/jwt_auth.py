"""CDS Hooks clients authenticate with a signed JWT (CDS Hooks 2.0, "Trusting CDS Clients").

Every call to a CDS Hooks route carries `Authorization: Bearer <JWT>`. The token is accepted
only when all of these hold (each refusal is a 401 that says which):

- the header's `alg` is RS384 or ES384 (the specification recommends both; `none` and every
  symmetric algorithm are refused, as it requires), it names a `kid`, and `typ` is `JWT`;
- `iss` is one of the configured CDS clients (`CDS_CLIENTS`), and the key `kid` is in that
  client's JWK Set: given inline, in a file, or at the client's JWKS URL (fetched with a
  timeout, cached, fetched again when an unknown `kid` arrives, at most every 30 s; when the
  set cannot be fetched the call is a 503, not a 401). A `jku` header is followed only when it
  is that configured URL;
- the signature verifies with that key; `aud` is the URL of the endpoint being called
  (`CDS_PUBLIC_URL` + path); `exp`, `iat` and `jti` are present, `exp` has not passed and is
  at most `CDS_JWT_MAX_LIFETIME_S` ahead;
- the `jti` has not been seen from that issuer before its token expired: it is recorded in
  Redis with `SET NX` until then, so a replayed token is refused by every gateway instance.
  When Redis cannot be reached the call is refused with 503 rather than let a replay through.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import jwt
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from sepsis_shared.errors import NotReady, ServiceError, Unauthorized

logger = logging.getLogger("sepsis.gateway.jwt")

ALGORITHMS = ("RS384", "ES384")
_JWKS_RETRY_S = 30.0


class CdsClient(BaseModel):
    """One trusted CDS client (an EHR): its issuer and where its public keys are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jwks: dict[str, Any] | None = Field(default=None, description="The JWK Set itself.")
    jwks_file: Path | None = Field(default=None, description="A file holding the JWK Set.")
    jwks_url: HttpUrl | None = Field(default=None, description="Where the client serves it.")
    fhir_servers: list[str] = Field(
        default_factory=list,
        description="FHIR base URLs this client may send as `fhirServer`: the only servers "
        "the gateway queries for data the client did not prefetch.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> CdsClient:
        given = [n for n in ("jwks", "jwks_file", "jwks_url") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of jwks, jwks_file or jwks_url")
        return self


class ConfigurationError(ValueError):
    """CDS_CLIENTS cannot be used; the message names what is wrong (never a key)."""


def parse_clients(raw: str | None) -> dict[str, CdsClient]:
    """`CDS_CLIENTS`: a JSON object mapping each allowed `iss` to its key source."""
    if raw is None or not raw.strip():
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError:
        raise ConfigurationError("CDS_CLIENTS is not JSON") from None
    if not isinstance(decoded, dict):
        raise ConfigurationError('CDS_CLIENTS must be an object {"<iss>": {"jwks_url": ...}}')
    clients: dict[str, CdsClient] = {}
    for iss, spec in decoded.items():
        try:
            clients[iss] = CdsClient.model_validate(spec)
        except ValidationError as exc:
            first = exc.errors(include_input=False)[0]
            raise ConfigurationError(f"CDS_CLIENTS[{iss!r}]: {first['msg']}") from None
        if clients[iss].jwks is not None:
            _keyset(clients[iss].jwks, iss)
        elif clients[iss].jwks_file is not None:
            path = clients[iss].jwks_file
            assert path is not None
            try:
                _keyset(json.loads(path.read_text()), iss)
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"CDS_CLIENTS[{iss!r}]: jwks_file: {exc}") from None
    return clients


def _keyset(raw: object, iss: str) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWK Set by kid (public keys of the two allowed algorithms)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("keys"), list):
        raise ConfigurationError(f"the JWK Set of {iss!r} is not an object with `keys`")
    keys: dict[str, jwt.PyJWK] = {}
    for item in raw["keys"]:
        if not isinstance(item, dict) or not item.get("kid"):
            continue
        if "d" in item:
            raise ConfigurationError(
                f"the JWK Set of {iss!r} holds a private key; give public keys"
            )
        try:
            keys[str(item["kid"])] = jwt.PyJWK(item)
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue  # a key of another kind or algorithm: never usable for ours
    return keys


class ReplayStore(Protocol):
    async def claim(self, key: str, ttl_s: int) -> bool:
        """Record `key` for `ttl_s` seconds; False when it was already recorded."""
        ...


@dataclass(frozen=True, slots=True)
class CdsCaller:
    """A verified CDS client call."""

    iss: str
    tenant: str | None
    jti: str


class _KeyCache:
    def __init__(self, iss: str, client: CdsClient) -> None:
        self.iss = iss
        self.client = client
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched_at = -1e9
        self.fetch_failed = False  # the last fetch of the JWK Set got no usable answer
        self.lock = asyncio.Lock()
        if client.jwks is not None:
            self.keys = _keyset(client.jwks, iss)
        elif client.jwks_file is not None:
            self.keys = _keyset(json.loads(client.jwks_file.read_text()), iss)

    async def key(
        self, kid: str, session: aiohttp.ClientSession | None, timeout_s: float
    ) -> jwt.PyJWK | None:
        found = self.keys.get(kid)
        if found is not None or self.client.jwks_url is None or session is None:
            return found
        async with self.lock:
            if kid not in self.keys and time.monotonic() - self.fetched_at > _JWKS_RETRY_S:
                self.fetched_at = time.monotonic()
                await self._fetch(session, timeout_s)
        return self.keys.get(kid)

    async def _fetch(self, session: aiohttp.ClientSession, timeout_s: float) -> None:
        url = str(self.client.jwks_url)
        self.fetch_failed = True
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                if resp.status != 200:
                    logger.warning("JWKS of a CDS client answered %d", resp.status)
                    return
                self.keys = _keyset(await resp.json(content_type=None), self.iss)
                self.fetch_failed = False
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("JWKS of a CDS client not fetched: %s", type(exc).__name__)


class JwtVerifier:
    """Checks CDS Hooks bearer tokens against the configured clients."""

    def __init__(
        self,
        *,
        clients: Mapping[str, CdsClient],
        public_url: str | None,
        replay: ReplayStore,
        session: aiohttp.ClientSession | None,
        max_lifetime_s: float = 300.0,
        leeway_s: float = 30.0,
        fetch_timeout_s: float = 2.0,
    ) -> None:
        self.public_url = public_url.rstrip("/") if public_url else None
        self.replay = replay
        self.session = session
        self.max_lifetime_s = max_lifetime_s
        self.leeway_s = leeway_s
        self.fetch_timeout_s = fetch_timeout_s
        self._caches = {iss: _KeyCache(iss, c) for iss, c in clients.items()}

    def client(self, iss: str) -> CdsClient:
        """The configuration of a verified caller's issuer."""
        return self._caches[iss].client

    @property
    def configured(self) -> bool:
        return bool(self._caches) and self.public_url is not None

    async def verify(self, authorization: str | None, *, path: str) -> CdsCaller:
        """The caller of `path` when its JWT passes every check; else raise 401 (or 503 when
        the replay check cannot be made, or CDS Hooks is not configured)."""
        if not self.configured:
            raise NotReady(
                "CDS Hooks is not configured on this gateway: set CDS_PUBLIC_URL and CDS_CLIENTS."
            )
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Missing CDS Hooks JWT: send Authorization: Bearer <JWT>.")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("The bearer token is not a JWT.") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise Unauthorized(f"JWT alg {alg!r} is not accepted; sign with RS384 or ES384.")
        if header.get("typ", "JWT") != "JWT":
            raise Unauthorized("JWT typ must be JWT.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("JWT header has no kid.")
        iss = unverified.get("iss")
        cache = self._caches.get(iss) if isinstance(iss, str) else None
        if cache is None:
            raise Unauthorized("JWT iss is not an allowed CDS client.")
        assert isinstance(iss, str)
        jku = header.get("jku")
        if jku is not None and (cache.client.jwks_url is None or jku != str(cache.client.jwks_url)):
            raise Unauthorized("JWT jku is not the JWK Set URL configured for this client.")
        key = await cache.key(kid, self.session, self.fetch_timeout_s)
        if key is None and cache.fetch_failed:
            # Not the caller's fault: its keys could not be read, so nothing can be verified.
            raise NotReady("The CDS client's JWK Set could not be fetched; retry shortly.")
        if key is None:
            raise Unauthorized("JWT kid is not in the client's JWK Set.")
        audience = self.public_url + path if self.public_url else path
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=audience,
                issuer=iss,
                leeway=self.leeway_s,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("JWT has expired.") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"JWT aud must be {audience}.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"JWT has no {exc.claim} claim.") from None
        except jwt.PyJWTError:
            raise Unauthorized("JWT signature or claims do not verify.") from None
        now = time.time()
        exp = float(claims["exp"])
        if exp - now > self.max_lifetime_s + self.leeway_s:
            raise Unauthorized(
                f"JWT exp is more than {self.max_lifetime_s:g} s ahead; issue short-lived tokens."
            )
        jti = str(claims["jti"])
        digest = hashlib.sha256(f"{iss}\x00{jti}".encode()).hexdigest()
        try:
            fresh = await self.replay.claim(digest, max(1, int(exp - now + self.leeway_s) + 1))
        except ServiceError:
            raise
        except Exception:
            logger.warning("jti replay check unavailable")
            raise NotReady(
                "Cannot check the JWT against replays just now; retry shortly."
            ) from None
        if not fresh:
            raise Unauthorized("JWT jti was already used (replay refused).")
        tenant = claims.get("tenant")
        return CdsCaller(iss=iss, tenant=str(tenant) if tenant else None, jti=jti)


class RedisReplay:
    """The seen `jti`s in Redis (hashed with their issuer), each kept until its token expires."""

    def __init__(self, client: Any, *, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    async def claim(self, key: str, ttl_s: int) -> bool:
        stored = await self.client.set(f"{self.namespace}:jti:{key}", b"1", nx=True, ex=ttl_s)
        return bool(stored)
