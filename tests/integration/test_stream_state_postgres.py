"""Stream checkpoints and shard leases against a real PostgreSQL server.

The same scenarios as ``tests/unit/store/test_stream_state.py`` (SQLite); here concurrent workers
really race on row locks. Skips without a server, fails under CI (see ``conftest.py``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from retain.store.repository import Store


def _scenarios() -> object:
    """The SQLite test module, loaded by path (the tests folder is not a package)."""
    path = Path(__file__).resolve().parents[1] / "unit" / "store" / "test_stream_state.py"
    spec = importlib.util.spec_from_file_location("_stream_state_scenarios", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_S = _scenarios()
check_checkpoints = _S.check_checkpoints  # type: ignore[attr-defined]
check_leases = _S.check_leases  # type: ignore[attr-defined]
check_concurrent_acquire = _S.check_concurrent_acquire  # type: ignore[attr-defined]
check_concurrent_takeover = _S.check_concurrent_takeover  # type: ignore[attr-defined]

pytestmark = pytest.mark.integration


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    """A migrated store on the test database with empty stream tables."""
    opened = Store.open(pg_url)
    with opened.engine.begin() as conn:
        conn.execute(text("TRUNCATE stream_checkpoints, stream_leases"))
    yield opened
    opened.close()


def test_migrated_tables(store: Store) -> None:
    assert store.engine.dialect.name == "postgresql"


def test_checkpoints(store: Store) -> None:
    check_checkpoints(store)


def test_leases(store: Store) -> None:
    check_leases(store)


def test_concurrent_acquire(store: Store) -> None:
    check_concurrent_acquire(store, workers=12, shards=10)


def test_concurrent_takeover(store: Store) -> None:
    check_concurrent_takeover(store, workers=12)


def test_fenced_checkpoint_waits_for_takeover(store: Store) -> None:
    """A takeover racing a fenced checkpoint: the checkpoint lands only while its writer owns the shard."""
    assert store.acquire_lease("f", "shard-0", "w1")
    assert store.save_checkpoint("f", "shard-0", "1", owner="w1")
    assert store.acquire_lease("f", "shard-0", "w2", from_owner="w1")
    assert not store.save_checkpoint("f", "shard-0", "2", owner="w1")
    cp = store.stream_checkpoint("f", "shard-0")
    assert cp is not None and cp.sequence == "1"
