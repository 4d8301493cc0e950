"""API keys: hashed at rest, each bound to a tenant namespace or admin; looked up in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from memscope.config import TENANT_NAME, ServerSettings
from memscope.errors import ConfigError
from memscope.redact import remember

__all__ = ["KEYS_ENV", "KeyRing", "Principal", "hash_key", "new_key"]

KEYS_ENV = "MEMSCOPE_API_KEYS"
ADMIN = "admin"


def hash_key(key: str) -> str:
    """The sha256 hex of a key: what the config stores."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key."""
    return "msk_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: one tenant's namespace, or admin (every user, ids as stored)."""

    tenant: str | None  # None: admin

    @property
    def admin(self) -> bool:
        """True for an admin key."""
        return self.tenant is None

    @property
    def label(self) -> str:
        """For logs: the tenant name or 'admin' (never the key)."""
        return self.tenant or ADMIN


class KeyRing:
    """The server's keys as sha256 hashes; `lookup` answers which principal a presented key is."""

    def __init__(self, hashed: dict[str, Principal]) -> None:
        self._hashed = dict(hashed)

    @classmethod
    def from_settings(cls, settings: ServerSettings, environ: dict[str, str] | None = None) -> KeyRing:
        """The config's `server.keys` plus MEMSCOPE_API_KEYS ("tenant=KEY,admin=KEY"; KEY may be sha256:HEX)."""
        hashed = {k.sha256: Principal(None if k.admin else k.tenant) for k in settings.keys}
        raw = (os.environ if environ is None else environ).get(KEYS_ENV, "")
        problems = []
        for n, item in enumerate(p.strip() for p in raw.split(",")):
            if not item:
                continue
            scope, sep, key = item.partition("=")
            scope, key = scope.strip(), key.strip()
            if not sep or not key or not (scope == ADMIN or TENANT_NAME.fullmatch(scope)):
                problems.append(
                    f"{KEYS_ENV}: entry {n + 1} must be TENANT=KEY or admin=KEY (tenant: lowercase letters, "
                    "digits, '_' or '-'); got a malformed entry (value hidden)"
                )
                continue
            if key.startswith("sha256:"):
                digest = key.removeprefix("sha256:").lower()
            else:
                remember(key)  # a plain key from the environment is scrubbed from any text we print
                digest = hash_key(key)
            hashed[digest] = Principal(None if scope == ADMIN else scope)
        if problems:
            raise ConfigError(problems)
        return cls(hashed)

    def __len__(self) -> int:
        return len(self._hashed)

    def lookup(self, key: str | None) -> Principal | None:
        """The principal of a presented key, or None; compares digests in constant time."""
        if not key:
            return None
        digest = hash_key(key)
        found = None
        for known, principal in self._hashed.items():
            if hmac.compare_digest(known, digest):
                found = principal
        return found
