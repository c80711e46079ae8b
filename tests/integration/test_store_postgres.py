"""The store's core scenarios against a real PostgreSQL server.

The server comes from ``RETAIN_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Each run creates its own database and drops it
at the end. When the server is unreachable the tests fail under CI (``CI`` set) and skip otherwise.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import inspect, text

from retain.privacy import pseudonymize
from retain.store.db import current_revision, head_revision
from retain.store.repository import AccessDeniedError, PredictionRecord, Scope, Store

pytestmark = pytest.mark.integration

SERVER_URL = os.environ.get("RETAIN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN = Scope.admin("pg-test")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    """A migrated store on the test database, emptied before each test."""
    opened = Store.open(pg_url)
    with opened.engine.begin() as conn:
        tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
    yield opened
    opened.close()


def rec(
    sid: str, risk: float, event: str, *, at: datetime | None = None, cohort: str = "2024"
) -> PredictionRecord:
    """A prediction record with sensible defaults."""
    return PredictionRecord(
        student_id=sid,
        dataset="dropout",
        task="outcome",
        stage="enrolment",
        model_name="dropout.outcome.enrolment",
        model_version=2,
        risk_score=risk,
        risk_band="high" if risk >= 0.6 else "medium" if risk >= 0.3 else "low",
        prediction="Dropout",
        event_id=event,
        probabilities={"dropout": risk},
        features={"student_id": sid, "age": 20},
        cohort=cohort,
        created_at=at,
    )


def roster() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "student_id": ["pg-raw-1", "pg-raw-2", "pg-raw-3"],
            "name": ["Ada Lovelace", "Alan Turing", "Grace Hopper"],
            "contact": ["ada@example.org", None, "grace@example.org"],
            "programme": ["nursing", "nursing", "management"],
            "advisor": ["Dr Who", "Dr Who", "Dr No"],
        }
    )


def test_migrated_to_head(store: Store) -> None:
    assert store.engine.dialect.name == "postgresql"
    assert current_revision(store.engine) == head_revision()


def test_idempotent_batches(store: Store) -> None:
    batch = [rec("pg-raw-1", 0.8, "a"), rec("pg-raw-2", 0.2, "b"), rec("pg-raw-1", 0.9, "a")]
    out = store.record_predictions(batch)
    assert [o.created for o in out] == [True, True, False] and out[0].id == out[2].id
    again = store.record_predictions(batch)
    assert not any(o.created for o in again) and [o.id for o in again] == [o.id for o in out]
    assert again[0].created_at.tzinfo is not None
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar() == 2


def test_a_large_group_in_several_statements(store: Store) -> None:
    # 1,100 rows: statements of 512, 256, 256, 64 and 12 rows; the last 100 repeat earlier
    # event ids, some of them first written by another statement of the same group
    batch = [rec(f"pg-big-{i}", (i % 100) / 100, f"big-{i}") for i in range(1000)]
    batch += [rec(f"pg-big-{i}", 0.99, f"big-{i}") for i in range(0, 1000, 10)]
    out = store.record_predictions(batch)
    assert sum(o.created for o in out) == 1000 and not any(o.created for o in out[1000:])
    assert [o.id for o in out[1000:]] == [out[i].id for i in range(0, 1000, 10)]
    first = [(i % 100) / 100 for i in range(0, 1000, 10)]
    assert [o.risk_score for o in out[1000:]] == first  # what the first write of each event id stored
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar() == 1000


def test_concurrent_same_event_one_row(store: Store) -> None:
    ids: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            ids.append(
                store.record_predictions([rec("pg-raw-1", 0.5, "same"), rec(f"pg-x{i}", 0.1, f"x{i}")])[0].id
            )
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(ids)) == 1
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar() == 9


def test_caseload_scoping_and_rising(store: Store) -> None:
    store.import_roster(roster())
    store.record_predictions(
        [
            rec("pg-raw-1", 0.4, "1a", at=T0),
            rec("pg-raw-1", 0.7, "1b", at=T0 + timedelta(days=1)),
            rec("pg-raw-2", 0.9, "2a", at=T0),
            rec("pg-raw-2", 0.5, "2b", at=T0 + timedelta(days=1), cohort="2025"),
            rec("pg-raw-3", 0.95, "3a", at=T0),
        ]
    )
    page = store.caseload("dropout", scope=ADMIN)
    assert [e.student_key for e in page.entries] == [
        pseudonymize(s) for s in ["pg-raw-3", "pg-raw-1", "pg-raw-2"]
    ]
    assert page.entries[1].change == pytest.approx(0.3) and page.entries[1].name == "Ada Lovelace"
    rising = store.caseload("dropout", scope=ADMIN, rising=True)
    assert [e.student_key for e in rising.entries] == [pseudonymize("pg-raw-1")]
    assert store.caseload("dropout", scope=ADMIN, cohort="2025").total == 1
    nursing = Scope.advisor(programmes=["nursing"], actor="k1")
    assert {e.student_key for e in store.caseload("dropout", scope=nursing).entries} == {
        pseudonymize("pg-raw-1"),
        pseudonymize("pg-raw-2"),
    }
    with pytest.raises(AccessDeniedError):
        store.student_history("dropout", "pg-raw-3", nursing)
    history = store.student_history("dropout", "pg-raw-1", nursing)
    assert len(history.predictions) == 2
    assert [a.action for a in store.audit_entries()][:2] == ["student.read", "student.read.denied"]


def test_keys(store: Store) -> None:
    key_id, secret = store.create_key(
        "advisor", programmes=["nursing"], caseload=["pg-raw-9"], expires_in_days=1
    )
    principal = store.authenticate(secret)
    assert principal is not None and principal.caseload == (pseudonymize("pg-raw-9"),)
    new_id, new_secret = store.rotate_key(key_id)
    assert store.authenticate(secret) is None and store.authenticate(new_secret) is not None
    assert store.revoke_key(new_id) and store.authenticate(new_secret) is None
    _, expired = store.create_key("admin", expires_in_days=-0.01)
    assert store.authenticate(expired) is None


def test_roster_erase_export_purge_and_privacy(store: Store) -> None:
    store.import_roster(roster(), scope=ADMIN)
    preds = store.record_predictions([rec("pg-raw-1", 0.6, "e1"), rec("pg-raw-2", 0.3, "e2")])
    store.record_feedback(preds[0].id, "fine", scope=ADMIN)
    store.record_intervention("dropout", "pg-raw-1", "meeting", scope=ADMIN)
    store.record_outcome("dropout", "pg-raw-1", "Graduate", event_id="o1")
    store.record_predictions([rec("pg-raw-2", 0.3, "old", at=datetime.now(UTC) - timedelta(days=100))])

    exported = store.export("pg-raw-1", ADMIN)
    assert exported["roster"][0]["name"] == "Ada Lovelace"
    assert len(exported["predictions"]) == 1 and exported["predictions"][0]["features"] == {"age": 20}
    assert exported["outcomes"][0]["outcome"] == "Graduate"

    assert store.purge(30, scope=ADMIN)["predictions"] == 1
    counts = store.erase("pg-raw-1", ADMIN)
    assert counts["predictions"] == 1 and counts["roster"] == 1 and counts["feedback"] == 1
    with store.engine.connect() as conn:
        for table in ["predictions", "outcomes", "interventions", "feedback", "roster"]:
            n = conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE student_key = :k"), {"k": pseudonymize("pg-raw-1")}
            ).scalar()
            assert n == 0, table
        dump = "\n".join(
            bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v)
            for t in inspect(conn).get_table_names()
            for row in conn.execute(text(f'SELECT * FROM "{t}"'))
            for v in row
        )
    assert "nursing" in dump
    for needle in ["pg-raw-1", "pg-raw-2", "pg-raw-3", "Alan Turing", "grace@example.org"]:
        assert needle not in dump
    assert store.audit_entries(action="student.erase")[0].student_key == pseudonymize("pg-raw-1")
