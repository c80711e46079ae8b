"""Stream checkpoints and shard leases in the store (SQLite; the same checks run on PostgreSQL).

The scenarios live in :func:`check_stream_state_scenarios` and friends so that
``tests/integration/test_stream_state_postgres.py`` runs them against a real server.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from retain.store.models import utcnow
from retain.store.repository import Store


def check_checkpoints(store: Store) -> None:
    """Save, read back, never move back, finish, and keep consumers and streams apart."""
    assert store.stream_checkpoint("s", "shard-0") is None
    assert store.save_checkpoint("s", "shard-0", "9")
    assert store.save_checkpoint("s", "shard-0", "10")  # numeric order: "10" > "9"
    assert store.save_checkpoint("s", "shard-0", "2")  # older: ignored
    cp = store.stream_checkpoint("s", "shard-0")
    assert cp is not None and cp.sequence == "10" and not cp.finished
    assert store.save_checkpoint("s", "shard-0", None, finished=True)
    assert store.save_checkpoint("s", "shard-0", "11")
    cp = store.stream_checkpoint("s", "shard-0")
    assert cp is not None and cp.finished and cp.sequence == "11"
    big = "49590338271490256608559692538361571095921575989136588898"  # a real-sized Kinesis number
    assert store.save_checkpoint("s", "shard-1", big)
    assert store.save_checkpoint("s", "shard-1", "49590338271490256608559692538361571095921575989136588899")
    assert store.stream_checkpoints("s")["shard-1"].sequence.endswith("899")  # type: ignore[union-attr]
    assert store.save_checkpoint("s", "shard-0", "1", consumer="other")
    assert store.save_checkpoint("t", "shard-0", "5")
    assert set(store.stream_checkpoints("s")) == {"shard-0", "shard-1"}
    assert store.stream_checkpoints("s", consumer="other")["shard-0"].sequence == "1"
    assert store.stream_checkpoints("t")["shard-0"].sequence == "5"


def check_leases(store: Store) -> None:
    """Acquire, refuse a live lease, renew, take over an expired one, steal, release, fence."""
    now = utcnow()
    assert store.acquire_lease("s", "a", "w1", seconds=30, now=now)
    assert store.acquire_lease("s", "a", "w1", seconds=30, now=now)  # re-entrant
    assert not store.acquire_lease("s", "a", "w2", seconds=30, now=now)
    assert store.renew_lease("s", "a", "w1", seconds=30)
    assert not store.renew_lease("s", "a", "w2", seconds=30)
    lease = store.stream_leases("s")["a"]
    assert lease.owner == "w1" and lease.live()
    # expired: another worker may take it, and the old owner's renewal and checkpoints then fail
    later = utcnow() + timedelta(seconds=60)
    assert not store.stream_leases("s")["a"].live(later)
    assert store.acquire_lease("s", "a", "w2", seconds=30, now=later)
    assert not store.renew_lease("s", "a", "w1")
    assert not store.save_checkpoint("s", "a", "7", owner="w1")
    assert store.save_checkpoint("s", "a", "7", owner="w2")
    assert store.stream_checkpoint("s", "a").owner == "w2"  # type: ignore[union-attr]
    # stealing takes a live lease only from the named owner
    assert not store.acquire_lease("s", "a", "w3", from_owner="w1")
    assert store.acquire_lease("s", "a", "w3", from_owner="w2")
    assert store.stream_leases("s")["a"].owner == "w3"
    # release: free at once for anyone
    assert not store.release_lease("s", "a", "w2")
    assert store.release_lease("s", "a", "w3")
    assert store.stream_leases("s")["a"].owner is None
    assert store.acquire_lease("s", "a", "w1")
    # a checkpoint fenced by an owner needs a lease row held by that owner
    assert not store.save_checkpoint("s", "nobody-holds-this", "1", owner="w1")
    assert not store.acquire_lease("s", "a", "w1", consumer="other", from_owner="w9")
    assert store.acquire_lease("s", "a", "w9", consumer="other")


def check_concurrent_acquire(store: Store, workers: int = 8, shards: int = 6) -> None:
    """Workers racing for the same shards: exactly one owner per shard, every one of them told so."""
    barrier = threading.Barrier(workers)
    won: dict[str, list[str]] = {f"w{i}": [] for i in range(workers)}
    errors: list[BaseException] = []

    def race(owner: str) -> None:
        try:
            barrier.wait()
            for shard in range(shards):
                if store.acquire_lease("race", f"shard-{shard}", owner, seconds=30):
                    won[owner].append(f"shard-{shard}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(owner,)) for owner in won]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    winners = sorted(s for shards_won in won.values() for s in shards_won)
    assert winners == sorted(f"shard-{i}" for i in range(shards))
    leases = store.stream_leases("race")
    for owner, shards_won in won.items():
        for shard in shards_won:
            assert leases[shard].owner == owner


def check_concurrent_takeover(store: Store, workers: int = 8) -> None:
    """Workers racing for one expired lease: exactly one wins the conditional UPDATE."""
    past = utcnow() - timedelta(seconds=120)
    assert store.acquire_lease("take", "shard-0", "dead", seconds=1, now=past)
    barrier = threading.Barrier(workers)
    results: dict[str, bool] = {}

    def race(owner: str) -> None:
        barrier.wait()
        results[owner] = store.acquire_lease("take", "shard-0", owner, seconds=30)

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results.values()) == 1
    (winner,) = [o for o, ok in results.items() if ok]
    assert store.stream_leases("take")["shard-0"].owner == winner


def test_checkpoints(store: Store) -> None:
    check_checkpoints(store)


def test_leases(store: Store) -> None:
    check_leases(store)


def test_concurrent_acquire(store: Store) -> None:
    check_concurrent_acquire(store)


def test_concurrent_takeover(store: Store) -> None:
    check_concurrent_takeover(store)


def test_two_stores_on_one_file_agree(store: Store) -> None:
    """Two engines on the same SQLite file (two processes, in effect) see one owner."""
    other = Store.open()
    try:
        assert store.acquire_lease("s", "x", "w1")
        assert not other.acquire_lease("s", "x", "w2")
        assert other.stream_leases("s")["x"].owner == "w1"
    finally:
        other.close()
