"""Dynamic batching: concurrent requests are scored and stored together, each answered as if alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.exc import OperationalError

from retain.data.spec import load_spec
from retain.data.synth import synthesize
from retain.predictor import Predictor
from retain.scoring import ScoringError, score_records
from retain.serving.batching import PredictionBatcher
from retain.settings import get_settings
from retain.store.group_commit import GroupCommitWriter
from retain.store.repository import PredictionWriter, Scope, Store


@pytest.fixture(scope="module")
def trained_home(copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_trained_home(
        tmp_path_factory.mktemp("batching-home"), ("dropout", "dropout", "semester_1", 800)
    )


@pytest.fixture
def predictor(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> Predictor:
    monkeypatch.setenv("RETAIN_HOME", str(trained_home))
    get_settings.cache_clear()
    return Predictor.from_registry("dropout", "dropout", "semester_1", settings=get_settings())


def _students(n: int, seed: int) -> list[dict[str, Any]]:
    frame = synthesize(load_spec("dropout"), n, seed=seed).drop(columns=["target"])
    frame = frame[[c for c in frame.columns if not c.startswith("units_2nd")]]
    records = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]
    for i, record in enumerate(records):
        record["student_id"] = f"S{seed}-{i}"  # distinct students across requests
    return records


def _run(batcher: PredictionBatcher, predictor: Predictor, requests: list[list[dict[str, Any]]]) -> list[Any]:
    async def all_at_once() -> list[Any]:
        calls = [batcher.predict(predictor, records, [None] * len(records)) for records in requests]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    return asyncio.run(all_at_once())


def test_concurrent_requests_share_a_batch_and_get_what_they_would_alone(
    predictor: Predictor, tmp_path: Path
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'b.db'}")
    writer = GroupCommitWriter(store)
    batcher = PredictionBatcher(writer)
    requests = [_students(1, seed=i) for i in range(12)] + [_students(5, seed=99)]
    answers = _run(batcher, predictor, requests)
    writer.close()
    assert batcher.requests == 13 and batcher.batches == 1  # one turn of the loop, one batch
    assert writer.groups == 1 and writer.rows == 17  # and one transaction
    for records, (scored, stored) in zip(requests, answers, strict=True):
        alone = score_records(predictor, records)
        assert scored.outputs == alone.outputs  # the same floats, bands and labels
        assert [s.student_id for s in stored] == [r["student_id"] for r in records]
        assert all(s.created for s in stored)
    assert store.caseload("dropout", scope=Scope.admin(), limit=100).total == 17


def test_a_bad_student_fails_only_its_own_request(predictor: Predictor, tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'b.db'}")
    writer = GroupCommitWriter(store)
    batcher = PredictionBatcher(writer)
    bad = _students(2, seed=3)
    bad[1]["course"] = 123456  # an unknown code
    requests = [_students(1, seed=1), bad, _students(1, seed=2)]
    good_first, failed, good_last = _run(batcher, predictor, requests)
    writer.close()
    assert isinstance(failed, ScoringError)
    assert failed.detail[0]["field"] == "course" and failed.detail[0]["students"] == [2]  # type: ignore[index]
    for answer, records in ((good_first, requests[0]), (good_last, requests[2])):
        scored, stored = answer
        assert scored.outputs == score_records(predictor, records).outputs and stored[0].created
    assert writer.rows == 2


def test_a_failed_commit_fails_every_request_of_the_batch(
    predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(self: PredictionWriter, prepared: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr(PredictionWriter, "write_prepared", down)
    store = Store.open(f"sqlite:///{tmp_path / 'b.db'}")
    writer = GroupCommitWriter(store)
    batcher = PredictionBatcher(writer)
    answers = _run(batcher, predictor, [_students(1, seed=i) for i in range(4)])
    writer.close()
    assert all(isinstance(a, OperationalError) for a in answers)


def test_store_records_and_stored_predictions_carry_each_field_where_it_belongs(
    predictor: Predictor, tmp_path: Path
) -> None:
    # both are built positionally on the hot path: a field out of place must show here
    records = _students(3, seed=21)
    scored = score_records(predictor, records)
    rows = scored.store_records(["e1", "e2", "e3"])
    store = Store.open(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        stored = store.record_predictions(rows)
    finally:
        store.close()
    for record, out, row, saved in zip(records, scored.outputs, rows, stored, strict=True):
        assert row.student_id == saved.student_id == record["student_id"] == out["student_id"]
        assert row.dataset == saved.dataset == "dropout"
        assert (row.task, row.stage) == (saved.task, saved.stage) == ("dropout", "semester_1")
        assert row.model_name == saved.model_name == "dropout.dropout.semester_1"
        assert row.model_version == saved.model_version == out["model_version"] == predictor.version
        assert row.risk_score == saved.risk_score == out["risk_score"]
        assert row.risk_band == saved.risk_band == out["risk_band"]
        assert row.prediction == saved.prediction == out["prediction"]
        assert row.probabilities == saved.probabilities == out["probabilities"]
        assert row.event_id == saved.event_id and saved.created
        assert row.interval_low is row.interval_high is saved.interval_low is saved.interval_high is None
        assert row.features is not None and set(row.features) == set(predictor.features)
        assert row.programme == saved.programme == str(record["course"])
        assert saved.cohort == row.cohort and saved.created_at is not None
        assert saved.student_key != record["student_id"] and len(saved.id) == 36
