"""API keys: random secrets shown once, stored as SHA-256 digests, with a role each.

Roles nest: ``read`` (recommendations, items), ``write`` (+ events, items, user deletion),
``admin`` (+ model reload). A key is 32 random bytes, so a plain SHA-256 digest is enough:
there is no password to guess.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrec.errors import LlmrecError

if TYPE_CHECKING:  # the store needs the serve extra (sqlalchemy); the CLI must not
    from llmrec.service.store import Store

ROLES = ("read", "write", "admin")
PREFIX = "lrk_"
DEFAULT_RATE = 100.0  # requests per second per key


@dataclass(frozen=True)
class Key:
    id: int
    name: str
    role: str
    rate_limit: float

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(store: Store, role: str, name: str = "", rate_limit: float = DEFAULT_RATE) -> str:
    """A new key's secret (shown once; only its digest is stored)."""
    if role not in ROLES:
        raise LlmrecError(f"role {role!r} unknown: use one of {', '.join(ROLES)}")
    if rate_limit < 0:
        raise LlmrecError("rate limit must be >= 0 requests per second (0 = unlimited)")
    secret = PREFIX + secrets.token_urlsafe(32)
    store.add_key(name or role, secret[:10], digest(secret), role, rate_limit)
    return secret


def lookup(store: Store, secret: str) -> Key | None:
    """The key for ``secret`` if it exists and is not revoked."""
    row = store.key_by_hash(digest(secret))
    if row is None or row["revoked_at"] is not None:
        return None
    return Key(int(row["id"]), row["name"], row["role"], float(row["rate_limit"]))
