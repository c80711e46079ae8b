"""Group commit: concurrent submissions share transactions, results map back, failures propagate."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from retain.store.group_commit import GroupCommitWriter
from retain.store.repository import (
    INSERT_CHUNK_ROWS,
    SMALL_GROUP_ROWS,
    PredictionRecord,
    Scope,
    Store,
)


def _record(i: int, event: str | None = None) -> PredictionRecord:
    return PredictionRecord(
        student_id=f"S{i:04d}",
        dataset="dropout",
        task="dropout",
        stage="enrolment",
        model_name="dropout.dropout.enrolment",
        risk_score=i / 100,
        risk_band="low",
        prediction="Not dropout",
        event_id=event or f"evt-{i}",
    )


def test_concurrent_submissions_are_stored_once_each_and_grouped(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'g.db'}")
    writer = GroupCommitWriter(store, max_wait_s=0.01)
    results: dict[int, str] = {}

    def submit(i: int) -> None:
        stored = writer.submit([_record(i)]).result(timeout=30)
        results[i] = stored[0].student_id or ""

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert results == {i: f"S{i:04d}" for i in range(40)}
    assert writer.rows == 40
    assert writer.groups < 40  # some requests shared a transaction
    page = store.caseload("dropout", scope=Scope.admin(), limit=100)
    assert page.total == 40


def test_repeated_event_in_one_group_is_stored_once(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'g.db'}")
    writer = GroupCommitWriter(store)
    first = writer.submit([_record(1, "same"), _record(1, "same")]).result(timeout=30)
    writer.close()
    assert first[0].id == first[1].id
    assert first[0].created and not first[1].created


@pytest.mark.parametrize("n", [SMALL_GROUP_ROWS, SMALL_GROUP_ROWS + 1, 1000, INSERT_CHUNK_ROWS + 100])
def test_a_group_with_repeated_event_ids_stores_each_once(tmp_path: Path, n: int) -> None:
    # a small group is one statement of its own size; a larger one goes in statements of up to
    # INSERT_CHUNK_ROWS, the last filled up with copies of its last row: the same results.
    # Row ``again`` repeats the event id of row 3, the last row one stored by an earlier group.
    store = Store.open(f"sqlite:///{tmp_path / 'g.db'}")
    again = n * 7 // 10
    with store.prediction_writer() as writer:
        earlier = writer.write([_record(5000, "before")])
        rows = [_record(i) for i in range(n)]
        rows[again] = _record(again, "evt-3")
        rows[n - 1] = _record(n - 1, "before")
        stored = writer.write(rows)
    assert len(stored) == n
    assert [s.created for s in stored].count(False) == 2
    assert stored[again].id == stored[3].id and not stored[again].created
    assert stored[n - 1].id == earlier[0].id and not stored[n - 1].created
    assert stored[n - 2].student_id == f"S{n - 2:04d}" and stored[n - 2].created
    page = store.caseload("dropout", scope=Scope.admin(), limit=1)
    assert page.total == n - 2 + 1  # n - 2 new students (two repeated events) + S5000
    store.close()


def test_a_failed_commit_fails_every_waiting_request_then_the_writer_recovers(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'g.db'}")
    writer = GroupCommitWriter(store)
    assert writer.submit([_record(0)]).result(timeout=30)[0].created
    with store.engine.begin() as connection:  # the table goes away under the writer
        connection.exec_driver_sql("ALTER TABLE predictions RENAME TO predictions_away")
    futures = [writer.submit([_record(i)]) for i in (1, 2, 3)]
    for future in futures:  # SQLAlchemy's own error type: the API answers it with 503
        with pytest.raises(OperationalError, match="predictions"):
            future.result(timeout=30)
    with store.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE predictions_away RENAME TO predictions")
    stored = writer.submit([_record(1)]).result(timeout=30)  # on a fresh connection
    writer.close()
    assert stored[0].created
    assert store.caseload("dropout", scope=Scope.admin(), limit=100).total == 2
