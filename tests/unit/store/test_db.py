"""The store's engine-level pieces: the queue of prediction writers at SQLite's write lock, and the
SQLite settings of a file store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import create_engine

from retain.store.db import WAL_CHECKPOINT_PAGES, WriterQueue, make_engine


def test_writers_take_turns_at_the_write_lock(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'retain.db'}")
    first, second = WriterQueue(engine), WriterQueue(engine)  # two open files, as two processes
    assert first.path == tmp_path / "retain.db-writers.lock"
    events: list[str] = []
    holding = threading.Event()

    def other_writer() -> None:
        holding.wait()
        with second.turn():
            events.append("second writes")

    thread = threading.Thread(target=other_writer)
    thread.start()
    with first.turn():
        holding.set()
        time.sleep(0.2)  # the other writer is waiting all this time
        events.append("first commits")
    thread.join(timeout=5)
    assert events == ["first commits", "second writes"]
    first.close()
    second.close()
    engine.dispose()


def test_no_queue_where_the_database_queues_writers_itself() -> None:
    memory = make_engine("sqlite://")
    postgres = create_engine("postgresql+psycopg://retain@localhost/retain")  # never connects
    for engine in (memory, postgres):
        queue = WriterQueue(engine)
        assert queue.path is None
        with queue.turn():
            pass
        engine.dispose()


def test_a_file_store_keeps_a_long_write_ahead_log(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'retain.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == WAL_CHECKPOINT_PAGES
    engine.dispose()
