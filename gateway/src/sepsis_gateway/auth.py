"""API keys: client and admin roles, checked in constant time.

A presented key is hashed once (SHA-256) and compared with `hmac.compare_digest` against the
digest of every configured key, without stopping at the first match, so neither the timing nor
the length of the comparison tells which key (or whether any key) is close. Keys are never
logged or forwarded; a matched key is known afterwards only by a short digest prefix, which the
rate limiter uses as the bucket name.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum

API_KEY_HEADER = "X-API-Key"


class Role(IntEnum):
    """What a key may do; a higher role includes the lower ones."""

    CLIENT = 1
    ADMIN = 2


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made an authenticated call: a role and a non-secret key id."""

    role: Role
    key_id: str


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    principal: Principal


def _digest(key: str | bytes) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).digest()


class KeyRing:
    """The configured client and admin keys, held only as digests."""

    def __init__(self, *, client_keys: tuple[str, ...], admin_keys: tuple[str, ...]) -> None:
        entries: list[_Entry] = []
        admin = set(admin_keys)
        for key in (*admin_keys, *(k for k in client_keys if k not in admin)):
            digest = _digest(key)
            role = Role.ADMIN if key in admin else Role.CLIENT
            entries.append(_Entry(digest, Principal(role, digest[:6].hex())))
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def identify(self, presented: bytes | None) -> Principal | None:
        """The principal a presented key belongs to, or None when it matches no key."""
        if not presented:
            return None
        digest = _digest(presented)
        found: Principal | None = None
        for entry in self._entries:
            # No early exit: every configured key is compared on every call.
            if hmac.compare_digest(digest, entry.digest):
                found = entry.principal
        return found
