"""Retraining from recorded outcomes through the paired gate (``retain.training.retrain``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retain.data.spec import load_spec
from retain.predictor import Predictor
from retain.scoring import score_records
from retain.settings import get_settings
from retain.simulation import intake
from retain.store.repository import Store
from retain.training import registry
from retain.training.fit import encode_target
from retain.training.retrain import (
    FreshRows,
    RetrainError,
    RetrainOptions,
    compare,
    fresh_labelled,
    retrain,
    split_fresh,
)
from retain.training.train import TrainOptions, prepare

SPEC = load_spec("dropout")
TASK = SPEC.task("dropout")
NAME = "dropout.dropout.enrolment"
T0 = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def trained_home(copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dropout.dropout.enrolment`` trained on 1500 synthetic rows (seed 1) in ``train.csv``."""
    home = tmp_path_factory.mktemp("retrain-home")
    return copy_trained_home(home, ("dropout", "dropout", "enrolment", 1500), seed=1)


@pytest.fixture
def home(
    trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_bootstrap: None
) -> Iterator[Path]:
    """The trained registry, copied so each test promotes and stores on its own.

    ``fast_bootstrap``: challengers' held-out CIs are never read here (the gate's rounds are explicit).
    """
    import shutil

    copy = tmp_path / "home"
    shutil.copytree(trained_home, copy)
    monkeypatch.setenv("RETAIN_HOME", str(copy))
    get_settings.cache_clear()
    registry.configure()
    yield copy
    get_settings.cache_clear()


def _score_and_label(store: Store, scenario: str, rows: int, seed: int) -> None:
    """Score a new intake as the API would, then record its outcomes a term later."""
    new = intake(SPEC, TASK, scenario, rows, seed=seed, reference_seed=1, reference_rows=1500)
    predictor = Predictor.from_registry("dropout", "dropout", "enrolment")
    records = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()}
        for r in new.students[["student_id", *predictor.features]].to_dict(orient="records")
    ]
    scored = score_records(predictor, records)
    store.record_predictions(scored.store_records([f"sim-{seed}-{n}" for n in range(rows)]))
    later = datetime.now(UTC) + timedelta(days=1)
    for sid, outcome in zip(new.outcomes["student_id"], new.outcomes["outcome"], strict=True):
        store.record_outcome("dropout", sid, outcome, task="dropout", recorded_at=later)


def test_a_shifted_intake_retrains_and_the_better_challenger_is_promoted(home: Path) -> None:
    store = Store.from_settings()
    _score_and_label(store, "drift", 1200, 7)
    before = registry.champion_version(NAME)
    result = retrain(NAME, options=RetrainOptions(data_path=home / "train.csv", rounds=200), store=store)
    assert result.n_fresh == 1200 and result.n_fresh_test == pytest.approx(480, abs=2)
    assert result.n_reference == 1500
    assert result.challenger_score > result.champion_score + TASK.promotion_margin
    assert result.comparison.low > 0 and result.promoted, result.decision.reason
    assert registry.champion_version(NAME) == result.challenger_version != before
    decision = store.decisions("dropout")[0]
    assert decision.promoted and decision.challenger_version == result.challenger_version
    assert decision.champion_score == pytest.approx(result.champion_score)
    assert decision.details is not None and decision.details["paired_test"]["rounds"] > 0
    assert store.audit_entries(action="model.retrain")[0].details["promoted"] is True
    assert registry.rollback(NAME) == before  # the old champion is one step away
    store.close()


def test_an_intake_like_the_training_data_keeps_the_champion_with_the_reason(home: Path) -> None:
    store = Store.from_settings()
    _score_and_label(store, "stable", 600, 8)
    before = registry.champion_version(NAME)
    result = retrain(NAME, options=RetrainOptions(data_path=home / "train.csv", rounds=200), store=store)
    assert not result.promoted and result.decision.reason.startswith("champion stays"), result.to_dict()
    assert registry.champion_version(NAME) == before
    assert result.challenger_version is not None  # registered for the record, not promoted
    assert not store.decisions("dropout")[0].promoted
    store.close()


def test_too_few_new_outcomes_or_no_champion_is_a_clear_error(home: Path) -> None:
    store = Store.from_settings()
    with pytest.raises(RetrainError, match="at least 100"):
        retrain(NAME, options=RetrainOptions(data_path=home / "train.csv"), store=store)
    with pytest.raises(RetrainError, match="no champion"):
        retrain("dropout.dropout.semester_2", store=store)
    with pytest.raises(RetrainError, match=r"dataset\.task\.stage"):
        retrain("dropout", store=store)
    store.close()


def test_the_gate_never_promotes_a_deliberately_worse_challenger(home: Path) -> None:
    """A challenger trained on the same data with the labels shuffled is never promoted."""
    from retain.training.fit import Split
    from retain.training.train import train_stage

    data = prepare(SPEC, TASK, home / "train.csv")
    champion, _ = registry.load_risk_model(NAME)
    rng = np.random.default_rng(0)
    test = np.sort(rng.choice(len(data.y), 400, replace=False))
    train_rows = np.setdiff1d(np.arange(len(data.y)), test)
    for seed in range(3):
        shuffled = data.y.copy()
        shuffled[train_rows] = np.random.default_rng(seed).permutation(shuffled[train_rows])
        worse_data = type(data)(data.frame, shuffled, data.data_hash, 0)
        _, worse, X_test, _ = train_stage(
            SPEC, TASK, "enrolment", worse_data, Split(train_rows, test),
            TrainOptions(baselines=(), importance=False), get_settings(), lambda _: None,
        )  # fmt: skip
        y_test = encode_target(data.frame.iloc[test].reset_index(drop=True), TASK)
        *_, decision = compare(TASK, champion, worse, X_test, y_test, rounds=200, alpha=0.05, seed=seed)
        assert not decision.promote, decision.reason


def test_fresh_rows_come_only_from_the_model_and_task_with_known_labels() -> None:
    features = ["admission_grade", "debtor"]
    base = {"model_version": 1, "stage": "enrolment", "value": np.nan, "recorded_at": T0}
    pairs = pd.DataFrame(
        [
            {**base, "task": "dropout", "model_name": NAME, "outcome": "Dropout", "features": {"admission_grade": 120.0, "debtor": 1}},
            {**base, "task": "dropout", "model_name": NAME, "outcome": "Graduate", "features": {"admission_grade": 150.0, "debtor": 0}},
            {**base, "task": "dropout", "model_name": "dropout.dropout.semester_1", "outcome": "Dropout", "features": {}},
            {**base, "task": "outcome", "model_name": "dropout.outcome.enrolment", "outcome": "Dropout", "features": {}},
        ]
    )  # fmt: skip
    fresh = fresh_labelled(pairs, SPEC, TASK, NAME, features)
    assert fresh.y.tolist() == [1, 0] and list(fresh.frame.columns) == features
    assert fresh.frame["admission_grade"].tolist() == [120.0, 150.0]
    three = SPEC.task("outcome")
    odd = pairs.assign(
        task="outcome", model_name="dropout.outcome.enrolment", outcome=["Dropout", "Transferred", "x", "y"]
    )
    fresh3 = fresh_labelled(odd, SPEC, three, "dropout.outcome.enrolment", features)
    assert fresh3.y.tolist() == [0] and fresh3.unmatched == 3  # unknown labels are counted, not guessed
    assert len(fresh_labelled(pairs.iloc[0:0], SPEC, TASK, NAME, features).y) == 0


def test_the_fresh_split_is_stratified_seeded_and_disjoint() -> None:
    y = np.array([1] * 30 + [0] * 70)
    fresh = FreshRows(pd.DataFrame({"a": range(100)}), y, pd.Series([T0] * 100))
    split = split_fresh(fresh, TASK, 0.4, seed=3)
    assert len(split.test) == 40 and set(split.test).isdisjoint(split.train)
    assert int(y[split.test].sum()) == 12  # 40% of each class
    assert split_fresh(fresh, TASK, 0.4, seed=3).test.tolist() == split.test.tolist()
    tiny = FreshRows(pd.DataFrame({"a": range(3)}), np.array([1, 0, 0]), pd.Series([T0] * 3))
    assert 0 not in split_fresh(tiny, TASK, 0.9, seed=0).test  # a lone class member stays in training
