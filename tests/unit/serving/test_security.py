"""API key cache: trusted for a while, refreshed ahead, one store lookup at a time per key."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

from retain.serving.security import KeyCache, has_role
from retain.store.repository import Principal

ADVISOR = Principal(key_id="k1", role="advisor", programmes=("*",))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowStore:
    """Counts lookups; each one blocks until ``release`` is set (a slow database)."""

    def __init__(self, answer: Principal | None = ADVISOR) -> None:
        self.answer = answer
        self.error: Exception | None = None
        self.calls = 0
        self.release = threading.Event()
        self.release.set()

    def authenticate(self, secret: str) -> Principal | None:
        self.calls += 1
        assert self.release.wait(5)
        if self.error is not None:
            raise self.error
        return self.answer


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_a_checked_key_is_trusted_until_its_time_is_up() -> None:
    store, clock = SlowStore(), Clock()
    cache = KeyCache(store, ttl=5.0, clock=clock)

    async def scenario() -> list[Principal | None]:
        first = await cache.principal("secret")
        clock.now += 3.0
        second = await cache.principal("secret")
        clock.now += 2.5  # past the ttl: asked again
        third = await cache.principal("secret")
        return [first, second, third]

    assert run(scenario()) == [ADVISOR, ADVISOR, ADVISOR]
    assert store.calls == 2


def test_requests_that_find_no_entry_share_one_lookup() -> None:
    store, clock = SlowStore(), Clock()
    store.release.clear()
    cache = KeyCache(store, ttl=5.0, clock=clock)

    async def scenario() -> list[Principal | None]:
        calls = [asyncio.create_task(cache.principal("secret")) for _ in range(50)]
        await asyncio.sleep(0.05)  # all 50 are waiting on the store now
        store.release.set()
        return list(await asyncio.gather(*calls))

    assert run(scenario()) == [ADVISOR] * 50
    assert store.calls == 1


def test_near_the_end_the_entry_is_refreshed_in_the_background_without_waiting() -> None:
    store, clock = SlowStore(), Clock()
    cache = KeyCache(store, ttl=5.0, clock=clock)

    async def scenario() -> None:
        await cache.principal("secret")
        store.release.clear()  # the refresh will hang until released
        clock.now += 4.5  # in the last fifth
        answers = await asyncio.wait_for(
            asyncio.gather(*(cache.principal("secret") for _ in range(20))), timeout=1
        )
        assert answers == [ADVISOR] * 20  # served from the cache while the store is slow
        await asyncio.sleep(0.05)
        assert store.calls == 2  # one refresh, not twenty
        store.release.set()
        for _ in range(100):
            if not cache._inflight:
                break
            await asyncio.sleep(0.01)
        clock.now += 4.0  # past the first entry's time, within the renewed one
        assert await cache.principal("secret") == ADVISOR
        assert store.calls == 2

    run(scenario())


def test_a_revoked_key_is_refused_after_the_refresh_finds_it_gone() -> None:
    store, clock = SlowStore(), Clock()
    cache = KeyCache(store, ttl=5.0, clock=clock)

    async def scenario() -> list[Principal | None]:
        answers = [await cache.principal("secret")]
        store.answer = None  # revoked in the store
        clock.now += 4.5
        answers.append(await cache.principal("secret"))  # still trusted: within ttl
        await asyncio.sleep(0.05)  # the background refresh has found the key gone
        answers.append(await cache.principal("secret"))
        return answers

    assert run(scenario()) == [ADVISOR, ADVISOR, None]


def test_trust_never_outlasts_the_keys_own_expiry() -> None:
    expiring = Principal(key_id="k2", role="advisor", expires_at=datetime.now(UTC) + timedelta(seconds=1))
    store, clock = SlowStore(expiring), Clock()
    cache = KeyCache(store, ttl=60.0, clock=clock)

    async def scenario() -> None:
        await cache.principal("secret")
        clock.now += 2.0  # past the key's expiry, well within the ttl
        store.answer = None  # the store refuses an expired key
        assert await cache.principal("secret") is None

    run(scenario())
    assert store.calls == 2


def test_a_failed_background_refresh_serves_the_entry_then_raises() -> None:
    store, clock = SlowStore(), Clock()
    cache = KeyCache(store, ttl=5.0, clock=clock)

    async def scenario() -> None:
        await cache.principal("secret")
        store.error = ConnectionError("database down")
        clock.now += 4.5
        assert await cache.principal("secret") == ADVISOR
        await asyncio.sleep(0.05)
        clock.now += 1.0  # the entry's time is up: the caller sees the store's error
        with pytest.raises(ConnectionError):
            await cache.principal("secret")

    run(scenario())


def test_unknown_keys_are_not_remembered() -> None:
    store = SlowStore(None)
    cache = KeyCache(store, ttl=5.0, clock=Clock())

    async def scenario() -> list[Principal | None]:
        return [await cache.principal("guess") for _ in range(3)]

    assert run(scenario()) == [None, None, None]
    assert store.calls == 3


def test_roles() -> None:
    assert has_role(ADVISOR, "advisor") and not has_role(ADVISOR, "admin")
    assert has_role(Principal(key_id="a", role="admin"), "advisor")
