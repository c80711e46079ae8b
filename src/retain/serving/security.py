"""API keys and roles: header ``X-API-Key``; ``advisor`` < ``admin``.

Keys live in the store (only their hashes); ``Principal`` is the store's authenticated key.
"""

from __future__ import annotations

from typing import Protocol

from retain.store.repository import Principal

ROLES: tuple[str, ...] = ("advisor", "admin")


def has_role(principal: Principal, role: str) -> bool:
    """Whether ``principal`` holds ``role`` or a stronger one."""
    return ROLES.index(principal.role) >= ROLES.index(role)


class Authenticator(Protocol):
    """Turns a presented secret into a principal (``None`` when unknown, expired or revoked)."""

    def authenticate(self, secret: str) -> Principal | None: ...


class StaticKeys:
    """Keys held in memory (tests and single-user demos); the store provides the real ones."""

    def __init__(self, keys: dict[str, Principal]) -> None:
        self._keys = dict(keys)

    def authenticate(self, secret: str) -> Principal | None:
        return self._keys.get(secret)


__all__ = ["ROLES", "Authenticator", "Principal", "StaticKeys", "has_role"]
