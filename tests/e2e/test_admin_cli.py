"""The admin commands end to end through the CLI: API keys, the roster, and data protection
(export, erase, purge), checked against what the store really holds."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from retain.cli import app
from retain.store.models import utcnow
from retain.store.repository import PredictionRecord, Scope, Store

runner = CliRunner()

STUDENT = "STU-4417-QX"
NAME = "Wilhelmina Zoltanova"
CONTACT = "wilhelmina.zoltanova@example.edu"
OTHER = "STU-9902-KB"
OTHER_NAME = "Bartholomew Quenneville"
_SECRET = re.compile(r"rtn_[A-Za-z0-9_-]+")


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def store() -> Iterator[Store]:
    opened = Store.from_settings()
    yield opened
    opened.close()


def _rows(store: Store, table: str) -> list[tuple[object, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table}"))]


def _as_text(rows: list[tuple[object, ...]]) -> str:
    parts = []
    for row in rows:
        for value in row:
            parts.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    return "\n".join(parts)


def _roster_file(tmp_path: Path) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(
        "student_id,name,contact,programme,advisor\n"
        f"{STUDENT},{NAME},{CONTACT},9254,Dr Adviser\n"
        f"{OTHER},{OTHER_NAME},,9500,Dr Other\n",
        encoding="utf-8",
    )
    return path


def _record(student_id: str, event_id: str, days_ago: float) -> PredictionRecord:
    return PredictionRecord(
        student_id=student_id,
        dataset="dropout",
        task="dropout",
        stage="enrolment",
        model_name="dropout.dropout.enrolment",
        model_version=1,
        risk_score=0.7,
        risk_band="high",
        prediction="Dropout",
        event_id=event_id,
        probabilities={"Dropout": 0.7, "Not dropout": 0.3},
        features={"admission_grade": 120.0, "student_id": student_id},
        programme="9254",
        created_at=utcnow() - timedelta(days=days_ago),
    )


# ------------------------------------------------------------------------------------------ keys


def test_keys_create_gives_a_secret_the_store_accepts(store: Store) -> None:
    code, out, err = _run("keys", "create", "--role", "advisor", "--programme", "9254", "--json")
    assert code == 0, err
    created = json.loads(out)
    assert created["role"] == "advisor" and created["secret"].startswith("rtn_")
    principal = Store.from_settings().authenticate(created["secret"])
    assert principal is not None
    assert principal.key_id == created["key_id"]
    assert principal.role == "advisor"
    assert principal.programmes == ("9254",)
    assert store.authenticate(created["secret"] + "x") is None


def test_keys_create_refuses_an_unknown_role(store: Store) -> None:
    code, out, err = _run("keys", "create", "--role", "boss")
    assert code == 2
    assert "role" in err and "boss" in err
    assert "Traceback" not in out + err
    assert store.list_keys(include_inactive=True) == []


def test_keys_list_never_shows_the_secret(store: Store) -> None:
    code, out, _ = _run("keys", "create", "--role", "admin", "--name", "ops", "--json")
    assert code == 0
    created = json.loads(out)
    secret = created["secret"]

    code, out, err = _run("keys", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)["keys"]
    assert [k["id"] for k in listed] == [created["key_id"]]
    assert listed[0]["role"] == "admin" and listed[0]["name"] == "ops"
    assert secret not in out and secret[10:] not in out
    assert not any("secret" in field for field in listed[0])

    code, out, _ = _run("keys", "list")
    assert code == 0
    assert secret not in out and secret[10:] not in out


def test_keys_revoke_stops_the_key_working(store: Store) -> None:
    _, out, _ = _run("keys", "create", "--role", "advisor", "--programme", "9254", "--json")
    created = json.loads(out)
    assert store.authenticate(created["secret"]) is not None

    code, out, err = _run("keys", "revoke", created["key_id"])
    assert code == 0, err
    assert created["key_id"] in out
    assert store.authenticate(created["secret"]) is None

    code, _, err = _run("keys", "revoke", created["key_id"])
    assert code == 2 and created["key_id"] in err
    code, _, err = _run("keys", "revoke", "k_doesnotexist")
    assert code == 2 and "k_doesnotexist" in err


def test_keys_rotate_gives_a_new_working_secret(store: Store) -> None:
    _, out, _ = _run("keys", "create", "--role", "advisor", "--programme", "9254", "--json")
    old = json.loads(out)

    code, out, err = _run("keys", "rotate", old["key_id"])
    assert code == 0, err
    secrets_shown = _SECRET.findall(out)
    assert len(secrets_shown) == 1, out
    new_secret = secrets_shown[0]
    assert new_secret != old["secret"]

    principal = store.authenticate(new_secret)
    assert principal is not None
    assert principal.key_id != old["key_id"] and principal.key_id in out
    assert principal.role == "advisor" and principal.programmes == ("9254",)
    assert store.authenticate(old["secret"]) is None  # no grace period: the old key is revoked

    code, _, err = _run("keys", "rotate", old["key_id"])
    assert code == 2 and old["key_id"] in err


def test_keys_create_with_a_student_covers_that_student(store: Store) -> None:
    code, out, err = _run("keys", "create", "--role", "advisor", "--student", STUDENT, "--json")
    assert code == 0, err
    principal = store.authenticate(json.loads(out)["secret"])
    assert principal is not None
    assert principal.caseload == (store.key(STUDENT),)


# ---------------------------------------------------------------------------------------- roster


def test_roster_import_encrypts_names(store: Store, tmp_path: Path) -> None:
    code, out, err = _run("roster", "import", str(_roster_file(tmp_path)))
    assert code == 0, err
    assert "2" in out

    raw = _as_text(_rows(store, "roster"))
    for secret_text in (NAME, OTHER_NAME, CONTACT, "Wilhelmina", STUDENT, OTHER):
        assert secret_text not in raw
    assert "9254" in raw and "Dr Adviser" in raw  # programme and advisor are kept in clear

    entries = store.roster_names([store.key(STUDENT), store.key(OTHER)], Scope.admin())
    assert entries[store.key(STUDENT)].name == NAME
    assert entries[store.key(STUDENT)].contact == CONTACT
    assert entries[store.key(STUDENT)].student_id == STUDENT
    assert entries[store.key(OTHER)].contact is None


def test_roster_without_a_name_column_is_refused(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(f"student_id,contact,programme\n{STUDENT},{CONTACT},9254\n", encoding="utf-8")
    code, out, err = _run("roster", "import", str(path))
    assert code == 2
    assert "name" in err and "Traceback" not in out + err
    assert _rows(store, "roster") == []


def test_roster_import_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = _run("roster", "import", str(tmp_path / "nope.csv"))
    assert code == 2 and "nope.csv" in err


def test_roster_row_without_a_name_exits_2_with_a_message(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(f"student_id,name\n{STUDENT},\n", encoding="utf-8")
    result = runner.invoke(app, ["roster", "import", str(path)])
    assert result.exit_code == 2
    assert "row 1" in result.stderr and "name" in result.stderr
    assert _rows(store, "roster") == []


# --------------------------------------------------------------------------------------- privacy


def test_export_then_erase_leaves_nothing_about_the_student(store: Store, tmp_path: Path) -> None:
    assert _run("roster", "import", str(_roster_file(tmp_path)))[0] == 0
    store.record_predictions([_record(STUDENT, "e-1", 1), _record(OTHER, "e-2", 1)])
    store.record_outcome("dropout", STUDENT, "Dropout", task="dropout", scope=Scope.admin())

    code, out, err = _run("privacy", "export", STUDENT)
    assert code == 0, err
    export = json.loads(out)
    assert export["student_id"] == STUDENT
    assert [r["name"] for r in export["roster"]] == [NAME]
    assert export["roster"][0]["contact"] == CONTACT
    assert len(export["predictions"]) == 1 and export["predictions"][0]["event_id"] == "e-1"
    assert "student_id" not in (export["predictions"][0]["features"] or {})
    assert len(export["outcomes"]) == 1
    assert OTHER_NAME not in out and OTHER not in out

    code, out, err = _run("privacy", "erase", STUDENT)
    assert code == 0, err

    code, out, err = _run("privacy", "export", STUDENT)
    assert code == 0, err
    after = json.loads(out)
    for section in ("roster", "predictions", "outcomes", "interventions", "feedback"):
        assert after[section] == [], section
    assert NAME not in out and CONTACT not in out

    audit_rows = _rows(store, "audit_log")
    with store.engine.connect() as conn:
        erased = conn.execute(text("SELECT student_key FROM audit_log WHERE action = 'student.erase'")).all()
    assert [r[0] for r in erased] == [store.key(STUDENT)]
    audit_text = _as_text(audit_rows)
    assert STUDENT not in audit_text and NAME not in audit_text

    # The other student is untouched.
    left = store.roster_names([store.key(OTHER)], Scope.admin())
    assert left[store.key(OTHER)].name == OTHER_NAME
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar_one() == 1


def test_purge_removes_old_predictions(store: Store) -> None:
    store.record_predictions(
        [_record(STUDENT, "old-1", 30), _record(OTHER, "old-2", 10), _record(STUDENT, "new-1", 1)]
    )

    def event_ids() -> set[str]:
        with store.engine.connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT event_id FROM predictions"))}

    assert event_ids() == {"old-1", "old-2", "new-1"}

    code, _, err = _run("privacy", "purge", "--older-than-days", "5")
    assert code == 0, err
    assert event_ids() == {"new-1"}

    code, _, err = _run("privacy", "purge", "--older-than-days", "0")
    assert code == 0, err
    assert event_ids() == set()
    with store.engine.connect() as conn:
        actions = [r[0] for r in conn.execute(text("SELECT action FROM audit_log"))]
    assert actions == ["data.purge"]  # older audit rows go too; the last purge is recorded


def test_purge_with_negative_days_exits_2_with_a_message() -> None:
    result = runner.invoke(app, ["privacy", "purge", "--older-than-days", "-1"])
    assert result.exit_code == 2
    assert "older" in result.stderr or "-1" in result.stderr
