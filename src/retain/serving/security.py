"""API keys and roles: header ``X-API-Key``; ``advisor`` < ``admin``.

Keys live in the store (only their hashes); ``Principal`` is the store's authenticated key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from retain.store.repository import Principal

logger = logging.getLogger(__name__)

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


class KeyCache:
    """Checked API keys, trusted for ``ttl`` seconds, with one store lookup at a time per key.

    A key is looked up in the store (off the event loop) and then trusted for ``ttl`` seconds, never
    past its own expiry, so a revocation takes effect within ``ttl``. Two things keep a busy
    server from stalling when an entry runs out:

    - *refresh ahead*: a request in the last fifth of an entry's time still gets the cached
      principal at once and starts one lookup in the background, which renews the entry;
    - *one lookup per key*: requests that find no usable entry wait on the same lookup. Before,
      every request arriving while the first one's lookup ran started its own: at 1,750 req/s a
      burst of store queries in the thread pool every ``ttl`` seconds, and the tail latency of
      the whole server with it.

    Unknown keys are not remembered: each try asks the store (after the caller's own lookup).
    A background refresh that fails (the database is down) leaves the entry until its time is up;
    after that, callers get the store's error (a 503 from the app).
    """

    refresh_fraction = 0.8

    def __init__(
        self,
        authenticator: Authenticator,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self.authenticator = authenticator
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        # digest -> (principal, refresh from, trusted until), monotonic seconds
        self._entries: dict[str, tuple[Principal, float, float]] = {}
        self._inflight: dict[str, asyncio.Task[Principal | None]] = {}

    async def principal(self, secret: str) -> Principal | None:
        """The key's principal, or ``None`` when the store does not know it as a valid key."""
        digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()
        entry = self._entries.get(digest)
        if entry is not None:
            found, refresh_from, trusted_until = entry
            now = self.clock()
            if now < trusted_until:
                if now >= refresh_from and digest not in self._inflight:
                    self._lookup(digest, secret).add_done_callback(_quiet)
                return found
        return await asyncio.shield(self._lookup(digest, secret))

    def _lookup(self, digest: str, secret: str) -> asyncio.Task[Principal | None]:
        task = self._inflight.get(digest)
        if task is None:
            task = self._inflight[digest] = asyncio.ensure_future(self._ask_store(digest, secret))
        return task

    async def _ask_store(self, digest: str, secret: str) -> Principal | None:
        asked = self.clock()  # trust counts from before the question: never longer than ttl
        try:
            found = await run_in_threadpool(self.authenticator.authenticate, secret)
        finally:
            self._inflight.pop(digest, None)
        if found is None:
            self._entries.pop(digest, None)
            return None
        trusted_until = asked + self.ttl
        if found.expires_at is not None:
            expires = found.expires_at if found.expires_at.tzinfo else found.expires_at.replace(tzinfo=UTC)
            trusted_until = min(trusted_until, asked + (expires - datetime.now(UTC)).total_seconds())
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[digest] = (found, asked + self.ttl * self.refresh_fraction, trusted_until)
        return found


def _quiet(task: asyncio.Task[Principal | None]) -> None:
    """A background refresh's failure is logged; its callers are served from the cache meanwhile."""
    if not task.cancelled() and task.exception() is not None:
        logger.warning("an API key could not be re-checked: %s", type(task.exception()).__name__)


__all__ = ["ROLES", "Authenticator", "KeyCache", "Principal", "StaticKeys", "has_role"]
