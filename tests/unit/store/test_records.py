"""Stored drift results, gate decisions and jobs (``retain.store.records``) on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from retain.store.models import Base
from retain.store.repository import Store


def test_migrations_create_exactly_the_models_tables_and_columns(store: Store) -> None:
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def _report(share: float, drifted: list[str]) -> dict[str, object]:
    return {
        "n_reference": 5000,
        "n_current": 400,
        "enough_data": True,
        "share_drifted": share,
        "dataset_drift": share >= 0.5,
        "prediction_drift": False,
        "drifted": drifted,
        "features": [{"feature": f, "drifted": True} for f in drifted],
    }


def test_drift_results_are_kept_newest_first_with_their_report(store: Store) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    store.record_drift("dropout", "dropout.dropout.enrolment", 3, "7d", _report(0.1, ["age"]), at=t0)
    store.record_drift(
        "dropout",
        "dropout.dropout.enrolment",
        3,
        "7d",
        _report(0.6, ["age", "course"]),
        at=t0 + timedelta(days=1),
    )
    store.record_drift(
        "dropout", "dropout.outcome.enrolment", 1, "last 500", _report(float("nan"), []), at=t0
    )
    store.record_drift("exam_scores", "exam_scores.score.final", 1, "7d", _report(0.0, []), at=t0)

    rows = store.drift_results("dropout", model_name="dropout.dropout.enrolment")
    assert [r.share_drifted for r in rows] == [0.6, 0.1]
    assert rows[0].dataset_drift and rows[0].drifted == ["age", "course"]
    assert rows[0].report["features"][1]["feature"] == "course"
    assert rows[0].to_dict()["at"].startswith("2026-03-02") and "report" not in rows[0].to_dict()
    assert len(store.drift_results("dropout")) == 3
    assert store.drift_results("dropout", since=t0 + timedelta(hours=1))[0].share_drifted == 0.6
    nan_row = store.drift_results("dropout", model_name="dropout.outcome.enrolment")[0]
    assert nan_row.share_drifted is None  # NaN (too little data) is stored as unknown, not a number


def test_decisions_keep_the_numbers_and_who(store: Store) -> None:
    store.record_decision(
        "dropout.dropout.semester_1", "retrain", promoted=False, metric="roc_auc",
        reason="champion stays: not significant", margin=0.002, champion_version=2,
        challenger_version=3, champion_score=0.85, challenger_score=0.851,
        details={"p_value": 0.31}, actor="flow",
    )  # fmt: skip
    store.record_decision(
        "dropout.dropout.semester_1", "retrain", promoted=True, metric="roc_auc", reason="better",
        margin=0.002, champion_version=2, challenger_version=4, champion_score=0.85,
        challenger_score=0.9, actor="admin-key",
    )  # fmt: skip
    rows = store.decisions("dropout")
    assert [r.challenger_version for r in rows] == [4, 3]
    assert rows[1].details == {"p_value": 0.31} and not rows[1].promoted
    assert rows[0].to_dict()["dataset"] == "dropout" and rows[0].actor == "admin-key"
    assert store.decisions("exam_scores") == []


def test_a_job_runs_once_and_ends_with_its_result_or_error(store: Store) -> None:
    job = store.create_job("retrain", "dropout.dropout.enrolment", params={"rounds": 100}, actor="admin")
    assert job.status == "queued" and job.started_at is None
    assert store.start_job(job.id)
    assert not store.start_job(job.id)  # a second runner cannot take it
    store.finish_job(job.id, result={"promoted": False})
    done = store.get_job(job.id)
    assert done is not None and done.status == "succeeded" and done.result == {"promoted": False}
    assert done.finished_at is not None and done.started_at is not None

    failing = store.create_job("retrain", "dropout.dropout.enrolment")
    store.start_job(failing.id)
    store.finish_job(failing.id, error="no champion")
    assert store.get_job(failing.id).status == "failed"  # type: ignore[union-attr]
    assert store.get_job("missing") is None


def test_jobs_left_unfinished_by_a_stopped_process_are_failed_not_lost(store: Store) -> None:
    queued = store.create_job("retrain", "a.b.c")
    running = store.create_job("retrain", "a.b.c")
    store.start_job(running.id)
    finished = store.create_job("retrain", "a.b.c")
    store.start_job(finished.id)
    store.finish_job(finished.id, result={})
    assert store.fail_unfinished_jobs() == 2
    assert {j.id for j in store.jobs(status="failed")} == {queued.id, running.id}
    assert store.get_job(finished.id).status == "succeeded"  # type: ignore[union-attr]


def test_activity_says_when_the_loop_last_moved(store: Store) -> None:
    from retain.store.repository import PredictionRecord, Scope

    empty = store.activity("dropout", since=datetime(2026, 1, 1, tzinfo=UTC))
    assert empty["last_prediction_at"] is None and empty["predictions_since"] == 0
    record = PredictionRecord(
        student_id="s1", dataset="dropout", task="dropout", stage="enrolment",
        model_name="dropout.dropout.enrolment", model_version=1, risk_score=0.4, risk_band="medium",
    )  # fmt: skip
    store.record_predictions([record])
    store.record_outcome("dropout", "s1", "Dropout", task="dropout", scope=Scope.admin("t"))
    store.record_drift("dropout", "dropout.dropout.enrolment", 1, "7d", _report(0.0, []))
    assert store.acquire_lease("kinesis-events", "shard-0", "worker-a")
    assert store.save_checkpoint("kinesis-events", "shard-0", "49590", owner="worker-a")
    seen = store.activity("dropout", since=datetime(2026, 1, 1, tzinfo=UTC))
    assert seen["predictions_since"] == 1 and seen["last_prediction_at"] is not None
    assert seen["last_outcome_at"] is not None and seen["last_drift_check_at"] is not None
    assert seen["last_decision_at"] is None
    assert seen["stream_checkpoints"][0]["owner"] == "worker-a"
    assert "s1" not in str(seen)  # no student appears
