"""Unit tests for ``retain.store.repository`` on SQLite."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from retain.privacy import pseudonymize
from retain.store.db import current_revision, head_revision
from retain.store.repository import (
    AccessDeniedError,
    PredictionRecord,
    Scope,
    Store,
    records_from_frame,
)

ADMIN = Scope.admin("tester")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rec(
    sid: str,
    risk: float,
    *,
    event: str | None = None,
    dataset: str = "dropout",
    at: datetime | None = None,
    band: str | None = None,
    stage: str = "enrolment",
    programme: str | None = None,
    cohort: str | None = None,
) -> PredictionRecord:
    """A prediction record with sensible defaults."""
    return PredictionRecord(
        student_id=sid,
        dataset=dataset,
        task="outcome",
        stage=stage,
        model_name=f"{dataset}.outcome.{stage}",
        model_version=1,
        risk_score=risk,
        risk_band=band or ("high" if risk >= 0.6 else "medium" if risk >= 0.3 else "low"),
        prediction="Dropout" if risk >= 0.5 else "Graduate",
        event_id=event,
        probabilities={"dropout": risk, "graduate": 1 - risk},
        features={"student_id": sid, "age": 19, "units": 5.0},
        programme=programme,
        cohort=cohort,
        created_at=at,
    )


def roster_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "student_id": ["s1", "s2", "s3"],
            "name": ["Ada Lovelace", "Alan Turing", "Grace Hopper"],
            "contact": ["ada@example.org", "alan@example.org", None],
            "programme": ["nursing", "nursing", "management"],
            "advisor": ["Dr Who", "Dr Who", "Dr No"],
        }
    )


# ----------------------------------------------------------------------------------- migrations


def test_default_database_is_sqlite_under_home(store: Store, isolated_home: Path) -> None:
    assert (isolated_home / "retain.db").exists()
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


# ---------------------------------------------------------------------------------- idempotency


def test_repeated_event_id_returns_original(store: Store) -> None:
    first = store.record_predictions([rec("s1", 0.8, event="e1")])[0]
    again = store.record_predictions([rec("s1", 0.1, event="e1")])[0]
    assert first.created and not again.created
    assert again.id == first.id and again.risk_score == 0.8
    assert again.student_id == "s1"
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar() == 1


def test_batch_with_duplicate_and_resent_batch(store: Store) -> None:
    batch = [rec("s1", 0.8, event="a"), rec("s2", 0.2, event="b"), rec("s1", 0.9, event="a")]
    out = store.record_predictions(batch)
    assert [o.created for o in out] == [True, True, False]
    assert out[0].id == out[2].id
    assert [o.student_id for o in out] == ["s1", "s2", "s1"]
    resent = store.record_predictions([*batch, rec("s3", 0.5, event="c")])
    assert [o.created for o in resent] == [False, False, False, True]
    assert [o.id for o in resent[:3]] == [o.id for o in out]
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar() == 3


def test_same_event_id_in_other_dataset_is_distinct(store: Store) -> None:
    a = store.record_predictions([rec("s1", 0.8, event="e")])[0]
    b = store.record_predictions([rec("s1", 0.8, event="e", dataset="exam_scores")])[0]
    assert a.id != b.id and b.created


def test_concurrent_inserts_of_same_event_make_one_row(store: Store) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            out = store.record_predictions([rec("s1", 0.5 + i / 100, event="same"), rec(f"x{i}", 0.1)])
            results.append(out[0].id)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions WHERE event_id='same'")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar() == 9


def test_features_drop_student_id(store: Store) -> None:
    record = rec("s1", 0.5, event="f")
    record.features = {"student_id": "s1", "matric": "s1", "age": 20, "gpa": float("nan")}
    store.record_predictions([record])
    history = store.export("s1", ADMIN)
    assert history["predictions"][0]["features"] == {"age": 20, "gpa": None}


def test_records_from_frame() -> None:
    output = pd.DataFrame(
        {
            "student_id": ["s1", "s2"],
            "dataset": "dropout",
            "task": "outcome",
            "stage": "enrolment",
            "model_name": "dropout.outcome.enrolment",
            "model_version": [3, 3],
            "risk_score": [0.7, 0.2],
            "risk_band": ["high", "low"],
            "prediction": ["Dropout", "Graduate"],
            "proba_dropout": [0.7, 0.2],
            "proba_graduate": [0.3, 0.8],
        }
    )
    inputs = pd.DataFrame({"student_id": ["s1", "s2"], "course": [33, 171], "cohort": ["2024", "2025"]})
    records = records_from_frame(
        output, inputs=inputs, event_ids=["e1", "e2"], programme_column="course", cohort_column="cohort"
    )
    assert records[0].event_id == "e1" and records[0].model_version == 3
    assert records[0].probabilities == {"dropout": 0.7, "graduate": 0.3}
    assert records[0].features is not None and "student_id" not in records[0].features
    assert records[1].programme == "171" and records[1].cohort == "2025"
    with pytest.raises(ValueError, match="event ids"):
        records_from_frame(output, event_ids=["e1"])


# ------------------------------------------------------------------------------------- caseload


def _seed_caseload(store: Store) -> None:
    store.import_roster(roster_frame())
    store.record_predictions(
        [
            rec("s1", 0.40, event="1a", at=T0, cohort="2024"),
            rec("s1", 0.70, event="1b", at=T0 + timedelta(days=30), cohort="2024"),
            rec("s2", 0.90, event="2a", at=T0, cohort="2025"),
            rec("s2", 0.50, event="2b", at=T0 + timedelta(days=30), cohort="2025"),
            rec("s3", 0.10, event="3a", at=T0, cohort="2024"),
            rec("s4", 0.95, event="4a", at=T0, stage="semester_1", cohort="2025"),
        ]
    )


def test_caseload_ranked_by_latest_risk_with_change(store: Store) -> None:
    _seed_caseload(store)
    page = store.caseload("dropout", scope=ADMIN)
    assert page.total == 4
    assert [e.student_key for e in page.entries] == [pseudonymize(s) for s in ["s4", "s1", "s2", "s3"]]
    s1 = page.entries[1]
    assert s1.risk_score == pytest.approx(0.7)
    assert s1.previous_risk_score == pytest.approx(0.4)
    assert s1.change == pytest.approx(0.3)
    assert s1.name == "Ada Lovelace" and s1.student_id == "s1" and s1.advisor == "Dr Who"
    assert page.entries[0].change is None and page.entries[0].name is None
    assert s1.predicted_at == T0 + timedelta(days=30)


def test_caseload_filters_and_paging(store: Store) -> None:
    _seed_caseload(store)
    keys = lambda page: [e.student_key for e in page.entries]  # noqa: E731
    assert keys(store.caseload("dropout", scope=ADMIN, rising=True)) == [pseudonymize("s1")]
    assert keys(store.caseload("dropout", scope=ADMIN, band="high")) == [
        pseudonymize(s) for s in ["s4", "s1"]
    ]
    assert keys(store.caseload("dropout", scope=ADMIN, band=["low", "medium"])) == [
        pseudonymize(s) for s in ["s2", "s3"]
    ]
    assert keys(store.caseload("dropout", scope=ADMIN, cohort="2025")) == [
        pseudonymize(s) for s in ["s4", "s2"]
    ]
    assert keys(store.caseload("dropout", scope=ADMIN, stage="semester_1")) == [pseudonymize("s4")]
    assert keys(store.caseload("dropout", scope=ADMIN, programme="management")) == [pseudonymize("s3")]
    page = store.caseload("dropout", scope=ADMIN, limit=2, offset=1)
    assert page.total == 4 and keys(page) == [pseudonymize(s) for s in ["s1", "s2"]]
    assert store.caseload("other", scope=ADMIN).total == 0


def test_caseload_scoped_for_advisors(store: Store) -> None:
    _seed_caseload(store)
    nursing = Scope.advisor(programmes=["nursing"], actor="k1")
    page = store.caseload("dropout", scope=nursing)
    assert {e.student_key for e in page.entries} == {pseudonymize("s1"), pseudonymize("s2")}
    assert all(e.name for e in page.entries)
    explicit = Scope.advisor(student_ids=["s4"], actor="k2")
    assert [e.student_key for e in store.caseload("dropout", scope=explicit).entries] == [pseudonymize("s4")]
    nobody = Scope(role="advisor", actor="k3")
    assert store.caseload("dropout", scope=nobody).total == 0
    names = store.roster_names([pseudonymize(s) for s in ["s1", "s2", "s3"]], nursing)
    assert set(names) == {pseudonymize("s1"), pseudonymize("s2")}
    assert names[pseudonymize("s2")].contact == "alan@example.org"


# -------------------------------------------------------------------------------------- history


def test_student_history_audited_and_scoped(store: Store) -> None:
    _seed_caseload(store)
    pred = store.record_predictions([rec("s1", 0.75, event="1c", at=T0 + timedelta(days=40))])[0]
    store.record_intervention("dropout", "s1", "meeting", note="discussed workload", scope=ADMIN)
    store.record_outcome("dropout", "s1", "Graduate", task="outcome", event_id="o1")
    assert store.record_outcome("dropout", "s1", "Graduate", event_id="o1") == store.record_outcome(
        "dropout", "s1", "Dropout", event_id="o1"
    )
    store.record_feedback(pred.id, "already withdrawn", useful=False, scope=ADMIN)
    advisor = Scope.advisor(programmes=["nursing"], actor="k-nurse")
    history = store.student_history("dropout", "s1", advisor)
    assert [p.risk_score for p in history.predictions] == pytest.approx([0.4, 0.7, 0.75])
    assert history.predictions[0].student_id == "s1"
    assert history.interventions[0].type == "meeting" and history.interventions[0].actor == "tester"
    assert [o.outcome for o in history.outcomes] == ["Graduate"]
    assert history.feedback[0].reason == "already withdrawn" and history.feedback[0].useful is False
    assert history.roster is not None and history.roster.name == "Ada Lovelace"
    by_key = store.student_history("dropout", None, ADMIN, student_key=pseudonymize("s1"))
    assert by_key.student_id == "s1"
    reads = store.audit_entries(action="student.read")
    assert [(a.actor, a.role, a.student_key) for a in reads] == [
        ("tester", "admin", pseudonymize("s1")),
        ("k-nurse", "advisor", pseudonymize("s1")),
    ]
    with pytest.raises(AccessDeniedError):
        store.student_history("dropout", "s3", advisor)
    denied = store.audit_entries(action="student.read.denied")
    assert denied[0].actor == "k-nurse" and denied[0].student_key == pseudonymize("s3")
    with pytest.raises(AccessDeniedError):
        store.record_intervention("dropout", "s3", "call", scope=advisor)
    with pytest.raises(LookupError):
        store.record_feedback("no-such-id", "x")


def test_get_prediction_scoped(store: Store) -> None:
    _seed_caseload(store)
    pred = store.record_predictions([rec("s3", 0.2, event="g")])[0]
    assert store.get_prediction(pred.id, ADMIN) is not None
    assert store.get_prediction(pred.id, Scope.advisor(programmes=["nursing"])) is None


# ----------------------------------------------------------------------------------------- keys


def test_keys_store_only_hashes(store: Store) -> None:
    # a raw id long enough that the random key prefix stored beside it cannot contain it by chance
    raw = "S-RAW-CASELOAD-0009"
    key_id, secret = store.create_key("advisor", programmes=["nursing"], caseload=[raw], scope=ADMIN)
    assert secret.startswith("rtn_")
    with store.engine.connect() as conn:
        dump = str(conn.execute(text("SELECT * FROM api_keys")).all())
    assert secret not in dump and secret[10:] not in dump and raw not in dump
    principal = store.authenticate(secret)
    assert principal is not None
    assert principal.key_id == key_id and principal.role == "advisor"
    assert principal.programmes == ("nursing",) and principal.caseload == (pseudonymize(raw),)
    assert principal.scope.actor == key_id
    assert store.authenticate("rtn_wrong") is None and store.authenticate("") is None
    assert store.audit_entries(action="key.create")[0].actor == "tester"
    with pytest.raises(ValueError, match="role"):
        store.create_key("root")  # type: ignore[arg-type]


def test_key_expiry_revocation_rotation(store: Store) -> None:
    _, expired = store.create_key("admin", expires_in_days=-1)
    assert store.authenticate(expired) is None
    key_id, secret = store.create_key("advisor", programmes=["nursing"], expires_in_days=30)
    assert store.revoke_key(key_id, scope=ADMIN)
    assert not store.revoke_key(key_id)
    assert store.authenticate(secret) is None
    key_id, secret = store.create_key("advisor", programmes=["nursing"])
    new_id, new_secret = store.rotate_key(key_id, scope=ADMIN)
    assert store.authenticate(secret) is None
    new = store.authenticate(new_secret)
    assert new is not None and new.key_id == new_id and new.programmes == ("nursing",)
    graced_id, graced_secret = store.rotate_key(new_id, grace_hours=1)
    assert store.authenticate(new_secret) is not None
    assert store.authenticate(graced_secret) is not None
    infos = {k.id: k for k in store.list_keys(include_inactive=True)}
    assert infos[graced_id].rotated_from == new_id
    assert {k.id for k in store.list_keys()} == {new_id, graced_id}
    with pytest.raises(LookupError):
        store.rotate_key(key_id)
    actions = [a.action for a in store.audit_entries(limit=100)]
    assert "key.revoke" in actions and actions.count("key.create") == 5


# --------------------------------------------------------------------------------------- roster


def test_roster_encrypted_at_rest(store: Store) -> None:
    assert store.import_roster(roster_frame(), scope=ADMIN) == 3
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM roster")).all()
    dump = " ".join(str(v) if not isinstance(v, bytes) else v.decode("latin-1") for r in rows for v in r)
    for secret in ["Ada", "Lovelace", "ada@example.org", "Turing", "Grace"]:
        assert secret not in dump
    assert "nursing" in dump
    names = store.roster_names([pseudonymize("s1")], ADMIN)
    assert names[pseudonymize("s1")].name == "Ada Lovelace"
    # Re-import updates in place.
    changed = roster_frame().assign(name=["Ada King", "Alan Turing", "Grace Hopper"])
    store.import_roster(changed)
    assert store.roster_names([pseudonymize("s1")], ADMIN)[pseudonymize("s1")].name == "Ada King"
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM roster")).scalar() == 3
    with pytest.raises(ValueError, match="missing"):
        store.import_roster(pd.DataFrame({"student_id": ["x"]}))
    wrong_key = Store(store.engine, roster_key=b"A" * 43 + b"=")
    with pytest.raises(ValueError, match="decrypted"):
        wrong_key.roster_names([pseudonymize("s1")], ADMIN)


def test_roster_per_dataset(store: Store) -> None:
    frame = roster_frame().assign(dataset=["dropout", "dropout", "exam_scores"])
    store.import_roster(frame)
    nursing = Scope.advisor(programmes=["nursing"])
    assert set(store.roster_names([pseudonymize("s1")], nursing, dataset="dropout")) == {pseudonymize("s1")}
    assert store.roster_names([pseudonymize("s1")], nursing, dataset="exam_scores") == {}


# ------------------------------------------------------------------------------ data protection


def test_erase_removes_everything_and_is_audited(store: Store) -> None:
    _seed_caseload(store)
    pred = store.record_predictions([rec("s1", 0.6, event="e-x", dataset="exam_scores")])[0]
    store.record_feedback(pred.id, "looks right")
    store.record_intervention("dropout", "s1", "call")
    store.record_outcome("dropout", "s1", "Dropout")
    store.create_key("advisor", caseload=["s1", "s2"])
    store.student_history("dropout", "s1", ADMIN)
    with pytest.raises(AccessDeniedError):
        store.erase("s1", Scope.advisor(programmes=["nursing"]))
    counts = store.erase("s1", ADMIN)
    assert counts["predictions"] == 3 and counts["roster"] == 1 and counts["api_key_caseloads"] == 1
    key = pseudonymize("s1")
    with store.engine.connect() as conn:
        for table in ["predictions", "outcomes", "interventions", "feedback", "roster"]:
            assert (
                conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE student_key = :k"), {"k": key}
                ).scalar()
                == 0
            )
        caseloads = [r[0] for r in conn.execute(text("SELECT caseload FROM api_keys"))]
    assert all(key not in c for c in caseloads)
    assert store.caseload("dropout", scope=ADMIN).total == 3
    erased = store.audit_entries(action="student.erase")
    assert len(erased) == 1 and erased[0].student_key == key and erased[0].actor == "tester"
    assert "s1" not in str(erased[0].details)
    assert store.export("s1", ADMIN)["predictions"] == []


def test_erase_one_dataset(store: Store) -> None:
    store.record_predictions([rec("s1", 0.5, event="a"), rec("s1", 0.5, event="b", dataset="exam_scores")])
    assert store.erase("s1", ADMIN, dataset="exam_scores")["predictions"] == 1
    assert len(store.export("s1", ADMIN)["predictions"]) == 1


def test_export_contents(store: Store) -> None:
    _seed_caseload(store)
    store.record_intervention("dropout", "s1", "meeting", note="n1")
    store.record_outcome("dropout", "s1", "Graduate")
    store.student_history("dropout", "s1", ADMIN)
    with pytest.raises(AccessDeniedError):
        store.export("s1", Scope.advisor(programmes=["nursing"]))
    out = store.export("s1", ADMIN)
    assert out["student_id"] == "s1" and out["student_key"] == pseudonymize("s1")
    assert out["roster"][0]["name"] == "Ada Lovelace" and out["roster"][0]["contact"] == "ada@example.org"
    assert [p["risk_score"] for p in out["predictions"]] == [0.4, 0.7]
    assert out["predictions"][0]["student_id"] == "s1"
    assert out["predictions"][0]["features"] == {"age": 19, "units": 5.0}
    assert out["interventions"][0]["note"] == "n1" and out["outcomes"][0]["outcome"] == "Graduate"
    assert [a["action"] for a in out["audit"]] == ["student.read"]
    assert store.audit_entries(action="student.export")[0].student_key == pseudonymize("s1")
    import json

    json.dumps(out)


def test_purge_by_age(store: Store) -> None:
    old = datetime.now(UTC) - timedelta(days=400)
    recent = datetime.now(UTC) - timedelta(days=10)
    preds = store.record_predictions(
        [rec("s1", 0.5, event="old", at=old), rec("s1", 0.6, event="new", at=recent)]
    )
    store.record_feedback(preds[0].id, "old feedback", at=recent)
    store.record_intervention("dropout", "s1", "call", at=old)
    store.record_intervention("dropout", "s1", "meeting", at=recent)
    store.record_outcome("dropout", "s1", "Dropout", recorded_at=old)
    counts = store.purge(365, scope=ADMIN)
    assert counts["predictions"] == 1 and counts["feedback"] == 1
    assert counts["interventions"] == 1 and counts["outcomes"] == 1
    history = store.student_history("dropout", "s1", ADMIN)
    assert [p.event_id for p in history.predictions] == ["new"]
    assert [i.type for i in history.interventions] == ["meeting"]
    assert store.audit_entries(action="data.purge")[0].details == {"older_than_days": 365, **counts}


def test_purge_defaults_to_settings(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from retain.settings import get_settings

    monkeypatch.setenv("RETAIN_RETENTION_DAYS", "5")
    get_settings.cache_clear()
    store.record_predictions([rec("s1", 0.5, event="a", at=datetime.now(UTC) - timedelta(days=6))])
    assert store.purge()["predictions"] == 1


def test_from_settings_uses_configured_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from retain.settings import get_settings

    monkeypatch.setenv("RETAIN_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("RETAIN_ID_KEY", "institution-key-for-tests")
    monkeypatch.setenv("RETAIN_RETENTION_DAYS", "7")
    get_settings.cache_clear()
    opened = Store.from_settings()
    try:
        stored = opened.record_predictions([rec("s1", 0.5, event="a")])[0]
        assert stored.student_key == pseudonymize("s1", key="institution-key-for-tests")
        assert (tmp_path / "other.db").exists()
        opened.record_predictions([rec("s2", 0.5, event="b", at=datetime.now(UTC) - timedelta(days=8))])
        assert opened.purge()["predictions"] == 1
    finally:
        opened.close()


@pytest.mark.parametrize("n", [3, 500])  # one by one, and as whole arrays
def test_new_ids_are_time_ordered_version_7_uuids(n: int) -> None:
    import time
    import uuid

    from retain.store.repository import new_ids

    before = time.time_ns() // 1_000_000
    ids = new_ids(n)
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == n and ids == sorted(ids)  # in the order given
    for shown in ids:
        parsed = uuid.UUID(shown)
        assert str(parsed) == shown and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= int(parsed.hex[:12], 16) <= after  # the creation time in milliseconds
    time.sleep(0.002)
    assert max(ids) < min(new_ids(10))  # later ids sort after earlier ones


def test_ids_built_as_arrays_are_those_built_one_by_one() -> None:
    import os

    from retain.store.repository import _ids_at_once, _ids_one_by_one

    for counter in (0, 12_345, 0x3FFFFFFF - 20):  # the last wraps the 30-bit counter
        random = os.urandom(8 * 40)
        stamp = 1_796_567_301_090
        assert _ids_at_once(stamp, counter, random, 40) == _ids_one_by_one(stamp, counter, random, 40)
