"""Unit tests for ``retain.training.artifact``: turning model output into risk, bands and intervals."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from retain.data.spec import load_spec
from retain.data.synth import synthesize
from retain.data.validate import validate_frame
from retain.features.build import feature_set
from retain.training.artifact import BANDS, RiskModel
from retain.training.fit import build_risk_model, encode_target, folds, out_of_fold

SMALL = {"n_estimators": 15, "num_leaves": 7, "min_child_samples": 5}


def _build(dataset: str, task_name: str, stage: str, rows: int = 400):
    spec = load_spec(dataset)
    typed, report = validate_frame(synthesize(spec, rows, seed=8), spec)
    assert report.ok
    task = spec.task(task_name)
    y = encode_target(typed, task)
    fs = feature_set(spec, task, stage)
    oof = out_of_fold(spec, task, fs, "lightgbm", SMALL, typed, y, folds(y, task, 3, 0))
    return build_risk_model(spec, task, stage, fs, "lightgbm", SMALL, typed, y, oof), typed


@pytest.fixture(scope="module")
def outcome() -> tuple[RiskModel, pd.DataFrame]:
    return _build("dropout", "outcome", "semester_1")


@pytest.fixture(scope="module")
def math() -> tuple[RiskModel, pd.DataFrame]:
    return _build("exam_scores", "math", "with_other_scores")


def _bare(**kwargs: object) -> RiskModel:
    base: dict[str, object] = {
        "dataset": "d",
        "task": "t",
        "stage": "s",
        "task_type": "regression",
        "kind": "majority",
        "features": [],
        "pipeline": None,
    }
    base.update(kwargs)
    return RiskModel(**base)  # type: ignore[arg-type]


def test_band_of_uses_inclusive_cutoffs() -> None:
    model = _bare(band_cutoffs=(0.3, 0.6))
    bands = model.band_of(np.array([0.0, 0.29, 0.3, 0.59, 0.6, 1.0]))
    assert bands.tolist() == ["low", "low", "medium", "medium", "high", "high"]
    assert BANDS == ("low", "medium", "high")


def test_decide_applies_class_weights() -> None:
    proba = np.array([[0.4, 0.35, 0.25], [0.2, 0.3, 0.5]])
    assert _bare().decide(proba).tolist() == [0, 2]
    assert _bare(class_weights=[1.0, 1.5, 1.0]).decide(proba).tolist() == [1, 2]


def test_risk_from_value_decreases_with_value() -> None:
    model = _bare(pass_mark=50.0, residual_quantiles=list(np.linspace(-10, 10, 101)))
    values = np.array([30.0, 45.0, 50.0, 55.0, 70.0])
    risk = model.risk_from_value(values)
    assert risk.tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert (np.diff(risk) <= 0).all()


def test_risk_from_value_without_pass_mark_is_nan() -> None:
    assert np.isnan(_bare(residual_quantiles=[0.0, 1.0]).risk_from_value(np.array([1.0]))).all()
    assert np.isnan(_bare(pass_mark=5.0).risk_from_value(np.array([1.0]))).all()


def test_interval_of_covers_central_level() -> None:
    model = _bare(residual_quantiles=list(np.linspace(-10, 10, 101)), interval_level=0.8)
    interval = model.interval_of(np.array([50.0, 60.0]))
    np.testing.assert_allclose(interval, [[42.0, 58.0], [52.0, 68.0]])


def test_classification_scores(outcome: tuple[RiskModel, pd.DataFrame]) -> None:
    model, typed = outcome
    scores = model.score(typed.head(30))
    assert scores.proba is not None and scores.proba.shape == (30, 3)
    np.testing.assert_allclose(scores.proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(scores.risk, scores.proba[:, model.adverse_index])
    assert set(scores.predicted) <= {"Dropout", "Enrolled", "Graduate"}
    assert set(scores.band) <= set(BANDS)
    assert scores.value is None and scores.interval is None
    assert model.class_weights is not None and len(model.class_weights) == 3


def test_scores_ignore_extra_and_reordered_columns(outcome: tuple[RiskModel, pd.DataFrame]) -> None:
    model, typed = outcome
    rows = typed.head(10)
    shuffled = rows[list(reversed(rows.columns))].assign(noise=1.0)
    np.testing.assert_allclose(model.score(shuffled).risk, model.score(rows).risk)


def test_regression_scores(math: tuple[RiskModel, pd.DataFrame]) -> None:
    model, typed = math
    scores = model.score(typed.head(40))
    assert scores.proba is None
    assert scores.value is not None and scores.interval is not None
    assert scores.interval.shape == (40, 2)
    assert (scores.interval[:, 0] <= scores.interval[:, 1]).all()
    assert ((scores.risk >= 0) & (scores.risk <= 1)).all()
    order = np.argsort(scores.value)
    assert (np.diff(scores.risk[order]) <= 1e-12).all()
    np.testing.assert_allclose(scores.predicted, scores.value)


def test_pickle_round_trip_scores_the_same(outcome: tuple[RiskModel, pd.DataFrame]) -> None:
    model, typed = outcome
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(clone.score(typed.head(25)).proba, model.score(typed.head(25)).proba)
