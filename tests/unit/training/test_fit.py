"""Unit tests for ``retain.training.fit``: targets, splits, folds and decision rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from retain.data.spec import DatasetSpec, Task, load_spec
from retain.data.synth import synthesize
from retain.data.validate import validate_frame
from retain.features.build import feature_set
from retain.training.fit import (
    TrainingError,
    adverse_index,
    band_cutoffs,
    build_risk_model,
    choose_class_weights,
    encode_target,
    fit_pipeline,
    folds,
    holdout_split,
    out_of_fold,
)

SMALL = {"n_estimators": 15, "num_leaves": 7, "min_child_samples": 5}


@pytest.fixture(scope="module")
def dropout() -> DatasetSpec:
    return load_spec("dropout")


@pytest.fixture(scope="module")
def math() -> DatasetSpec:
    return load_spec("secondary_math")


def _task(**kwargs: object) -> Task:
    base: dict[str, object] = {
        "name": "t",
        "type": "classification",
        "target": "y",
        "adverse": "bad",
        "negative_label": "good",
        "stages": ["s"],
        "primary_metric": "roc_auc",
    }
    base.update(kwargs)
    return Task.model_validate(base)


def test_encode_target_multiclass(dropout: DatasetSpec) -> None:
    frame = pd.DataFrame({"target": ["Graduate", "Dropout", "Enrolled", "Dropout"]})
    y = encode_target(frame, dropout.task("outcome"))
    assert y.tolist() == [2, 0, 1, 0]
    assert adverse_index(dropout.task("outcome")) == 0


def test_encode_target_adverse_vs_rest(dropout: DatasetSpec) -> None:
    frame = pd.DataFrame({"target": ["Graduate", "Dropout", "Enrolled", "Dropout"]})
    y = encode_target(frame, dropout.task("dropout"))
    assert y.tolist() == [0, 1, 0, 1]
    assert adverse_index(dropout.task("dropout")) == 1


def test_encode_target_threshold(math: DatasetSpec) -> None:
    frame = pd.DataFrame({"g3": [0.0, 9.0, 10.0, 20.0, 9.99]})
    assert encode_target(frame, math.task("pass")).tolist() == [1, 1, 0, 0, 1]


def test_encode_target_regression(math: DatasetSpec) -> None:
    frame = pd.DataFrame({"g3": ["12", 7.0, 0]})
    y = encode_target(frame, math.task("grade"))
    assert y.dtype == float
    assert y.tolist() == [12.0, 7.0, 0.0]


def _labels(n: int = 300, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice([0, 1, 2], size=n, p=[0.3, 0.2, 0.5])


def test_holdout_split_is_stratified_disjoint_and_reproducible(dropout: DatasetSpec) -> None:
    y = _labels()
    frame = pd.DataFrame({"x": np.arange(len(y))})
    task = dropout.task("outcome")
    split = holdout_split(frame, y, task, test_size=0.2, seed=1)
    assert len(np.intersect1d(split.train, split.test)) == 0
    assert sorted(np.concatenate([split.train, split.test]).tolist()) == list(range(len(y)))
    assert len(split.test) == 60
    for cls in range(3):
        assert abs(np.mean(y[split.test] == cls) - np.mean(y == cls)) < 0.02
    again = holdout_split(frame, y, task, test_size=0.2, seed=1)
    np.testing.assert_array_equal(split.test, again.test)
    other = holdout_split(frame, y, task, test_size=0.2, seed=2)
    assert not np.array_equal(split.test, other.test)


def test_holdout_split_regression_and_time_column(math: DatasetSpec) -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(10, 3, 200)
    frame = pd.DataFrame({"year": np.repeat([2019, 2020, 2021, 2022], 50)[rng.permutation(200)]})
    task = math.task("grade")
    split = holdout_split(frame, y, task, 0.25, seed=0)
    assert len(split.test) == 50 and len(np.intersect1d(split.train, split.test)) == 0
    timed = holdout_split(frame, y, task, 0.25, seed=0, time_column="year")
    assert (frame["year"].to_numpy()[timed.test] == 2022).all()
    assert (frame["year"].to_numpy()[timed.train] < 2022).all()


def test_classification_folds_partition_and_stratify(dropout: DatasetSpec) -> None:
    y = _labels()
    fl = folds(y, dropout.task("outcome"), n_folds=5, seed=0)
    assert len(fl) == 5
    valid = np.concatenate([v for _, v in fl])
    assert sorted(valid.tolist()) == list(range(len(y)))
    for train, valid_idx in fl:
        assert len(np.intersect1d(train, valid_idx)) == 0
        assert abs(np.mean(y[valid_idx] == 1) - np.mean(y == 1)) < 0.05
    assert [v.tolist() for _, v in folds(y, dropout.task("outcome"), 5, 0)] == [v.tolist() for _, v in fl]


def test_folds_shrink_to_smallest_class(dropout: DatasetSpec) -> None:
    y = np.array([0] * 20 + [1] * 3 + [2] * 20)
    assert len(folds(y, dropout.task("outcome"), n_folds=5, seed=0)) == 3


def test_regression_folds_partition(math: DatasetSpec) -> None:
    y = np.random.default_rng(1).normal(10, 3, 101)
    fl = folds(y, math.task("grade"), n_folds=4, seed=0)
    assert len(fl) == 4
    valid = np.concatenate([v for _, v in fl])
    assert sorted(valid.tolist()) == list(range(101))


@pytest.mark.parametrize("y", [np.zeros(50, dtype=int), np.array([0] * 49 + [1])])
def test_single_class_target_raises_training_error(dropout: DatasetSpec, y: np.ndarray) -> None:
    with pytest.raises(TrainingError, match="fewer than 2 rows"):
        folds(y, dropout.task("dropout"), n_folds=5, seed=0)


def test_choose_class_weights_never_lowers_macro_f1() -> None:
    rng = np.random.default_rng(3)
    for trial in range(5):
        y = rng.choice([0, 1, 2], size=400, p=[0.3, 0.15, 0.55])
        logits = rng.normal(size=(400, 3)) + np.eye(3)[y] * rng.uniform(0.3, 1.5)
        logits[:, 2] += 1.0  # skew towards the majority class
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        weights = choose_class_weights(y, proba)
        assert len(weights) == 3
        base = f1_score(y, proba.argmax(axis=1), average="macro")
        tuned = f1_score(y, (proba * np.asarray(weights)).argmax(axis=1), average="macro")
        assert tuned >= base - 1e-12, trial
    # the skewed case should actually be improved
    assert tuned > base


def test_choose_class_weights_keeps_ones_when_perfect() -> None:
    y = np.array([0, 1, 2] * 20)
    proba = np.eye(3)[y] * 0.8 + 0.2 / 3
    assert choose_class_weights(y, proba) == [1.0, 1.0, 1.0]


def test_band_cutoffs_capacity_fractions() -> None:
    task = _task(objective={"kind": "capacity", "high_fraction": 0.1, "medium_fraction": 0.25})
    risk = np.random.default_rng(0).beta(2, 5, 20_000)
    medium, high = band_cutoffs(task, risk, np.zeros_like(risk, dtype=int))
    assert medium <= high
    assert np.mean(risk >= high) == pytest.approx(0.10, abs=0.005)
    assert np.mean((risk >= medium) & (risk < high)) == pytest.approx(0.25, abs=0.005)


def test_band_cutoffs_recall_catches_requested_share() -> None:
    task = _task(objective={"kind": "recall", "recall": 0.8})
    rng = np.random.default_rng(1)
    y = (rng.random(5_000) < 0.3).astype(int)
    risk = np.clip(rng.normal(0.3 + 0.3 * y, 0.15), 0, 1)
    medium, high = band_cutoffs(task, risk, y)
    caught = np.mean(risk[y == 1] >= high)
    assert 0.8 <= caught <= 0.81
    assert medium <= high
    assert np.mean(risk[y == 1] >= medium) == pytest.approx(0.9, abs=0.01)


def test_band_cutoffs_recall_without_adverse_falls_back_to_capacity() -> None:
    task = _task(objective={"kind": "recall", "recall": 0.8, "high_fraction": 0.2})
    risk = np.linspace(0, 1, 1001)
    _, high = band_cutoffs(task, risk, np.zeros(1001, dtype=int))
    assert high == pytest.approx(0.8)


@pytest.fixture(scope="module")
def dropout_data(dropout: DatasetSpec) -> tuple[pd.DataFrame, np.ndarray]:
    typed, report = validate_frame(synthesize(dropout, 400, seed=11), dropout)
    assert report.ok
    return typed, encode_target(typed, dropout.task("dropout"))


def test_out_of_fold_shapes_and_probabilities(dropout: DatasetSpec, dropout_data) -> None:
    typed, _ = dropout_data
    task = dropout.task("outcome")
    y = encode_target(typed, task)
    fs = feature_set(dropout, task, "semester_1")
    oof = out_of_fold(dropout, task, fs, "lightgbm", SMALL, typed, y, folds(y, task, 3, 0))
    assert oof.shape == (len(y), 3)
    np.testing.assert_allclose(oof.sum(axis=1), 1.0)
    # out-of-fold predictions carry signal on synthetic data
    assert np.mean(oof.argmax(axis=1) == y) > np.mean(y == np.bincount(y).argmax())


def test_fit_pipeline_applies_monotone_constraints(dropout: DatasetSpec, dropout_data) -> None:
    typed, y = dropout_data
    task = dropout.task("dropout")
    fs = feature_set(dropout, task, "semester_1")
    pipe = fit_pipeline(dropout, task, fs, "lightgbm", SMALL, typed, y)
    constraints = pipe.named_steps["model"].get_params()["monotone_constraints"]
    assert constraints is not None and any(constraints)
    X = typed.head(50).copy()
    base = pipe.predict_proba(X)[:, 1]
    X["units_1st_sem_approved"] = X["units_1st_sem_approved"] + 5
    assert (pipe.predict_proba(X)[:, 1] <= base + 1e-12).all()


def test_build_risk_model_classification(dropout: DatasetSpec, dropout_data) -> None:
    typed, y = dropout_data
    task = dropout.task("dropout")
    fs = feature_set(dropout, task, "semester_1")
    oof = out_of_fold(dropout, task, fs, "lightgbm", SMALL, typed, y, folds(y, task, 3, 0))
    model = build_risk_model(dropout, task, "semester_1", fs, "lightgbm", SMALL, typed, y, oof)
    assert model.labels == ["Not dropout", "Dropout"]
    assert model.adverse_index == 1
    assert model.calibrator is not None
    assert model.class_weights is None
    medium, high = model.band_cutoffs
    assert 0 <= medium <= high <= 1
    assert model.features == fs.raw
    scores = model.score(typed.head(20))
    assert scores.proba is not None and scores.proba.shape == (20, 2)


def test_build_risk_model_regression() -> None:
    spec = load_spec("exam_scores")
    typed, _ = validate_frame(synthesize(spec, 300, seed=2), spec)
    task = spec.task("math")
    y = encode_target(typed, task)
    fs = feature_set(spec, task, "with_other_scores")
    oof = out_of_fold(spec, task, fs, "lightgbm", SMALL, typed, y, folds(y, task, 3, 0))
    model = build_risk_model(spec, task, "with_other_scores", fs, "lightgbm", SMALL, typed, y, oof)
    assert model.residual_quantiles is not None and len(model.residual_quantiles) == 101
    assert model.residual_quantiles == sorted(model.residual_quantiles)
    assert model.pass_mark == 50
    assert model.calibrator is None
