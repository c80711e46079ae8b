"""No table of the store holds a raw student id, a name or a contact."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import inspect, text

from retain.store.repository import PredictionRecord, Scope, Store

RAW_IDS = ["stu-raw-0001", "stu-raw-0002", "7781234567"]
PERSONAL = ["Ada Lovelace", "ada.lovelace@example.org", "+44 7700 900123"]


def dump_tables(store: Store) -> str:
    """Every row of every table as text (binary columns decoded as latin-1)."""
    parts: list[str] = []
    with store.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        parts.append(bytes(value).decode("latin-1"))
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def test_no_raw_id_in_any_table(store: Store) -> None:
    admin = Scope.admin("privacy-test")
    store.import_roster(
        pd.DataFrame(
            {
                "student_id": RAW_IDS,
                "name": [PERSONAL[0], "Bob Raw", "Cy Raw"],
                "contact": [PERSONAL[1], PERSONAL[2], None],
                "programme": ["nursing"] * 3,
                "advisor": ["Dr Who"] * 3,
            }
        ),
        scope=admin,
    )
    records = [
        PredictionRecord(
            student_id=sid,
            dataset="dropout",
            task="outcome",
            stage="enrolment",
            model_name="dropout.outcome.enrolment",
            risk_score=0.5 + i / 10,
            risk_band="medium",
            prediction="Dropout",
            event_id=f"evt-{i}",
            probabilities={"dropout": 0.5},
            features={"student_id": sid, "matriculation": sid, "age": 19},
            programme="nursing",
        )
        for i, sid in enumerate(RAW_IDS)
    ]
    stored = store.record_predictions(records)
    assert [s.student_id for s in stored] == RAW_IDS
    for i, sid in enumerate(RAW_IDS):
        store.record_outcome("dropout", sid, "Dropout", event_id=f"out-{i}", scope=admin)
        store.record_intervention("dropout", sid, "meeting", note="agreed a study plan", scope=admin)
        store.record_feedback(stored[i].id, "plausible", scope=admin)
        store.student_history("dropout", sid, admin)
        store.audit("note.read", admin, dataset="dropout", student_id=sid, details={"n": 1})
    store.create_key("advisor", programmes=["nursing"], caseload=RAW_IDS[:2], scope=admin)
    store.caseload("dropout", scope=admin)
    store.export(RAW_IDS[0], admin)
    store.erase(RAW_IDS[1], admin)
    store.purge(3650, scope=admin)

    dump = dump_tables(store)
    assert "nursing" in dump  # the dump does see the tables' contents
    for needle in [*RAW_IDS, *PERSONAL]:
        assert needle not in dump, f"{needle!r} found in the store"
