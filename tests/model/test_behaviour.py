"""Model behaviour: invariances, determinism and declared directions, on a trained model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.data.spec import DatasetSpec, load_spec
from retain.data.synth import synthesize
from retain.data.validate import validate_frame
from retain.features.build import feature_set
from retain.training.artifact import RiskModel
from retain.training.fit import build_risk_model, encode_target, folds, out_of_fold


def _train(spec: DatasetSpec, task_name: str, stage: str, frame: pd.DataFrame, seed: int = 7) -> RiskModel:
    task = spec.task(task_name)
    typed, report = validate_frame(frame, spec, required=[*spec.features(task, stage), task.target])
    assert report.ok, report.summary()
    y = encode_target(typed, task)
    features = feature_set(spec, task, stage)
    fold_list = folds(y, task, 3, seed)
    params = {"n_estimators": 80}
    oof = out_of_fold(spec, task, features, "lightgbm", params, typed, y, fold_list, seed)
    return build_risk_model(spec, task, stage, features, "lightgbm", params, typed, y, oof, seed)


@pytest.fixture(scope="module")
def dropout_setup() -> tuple[DatasetSpec, RiskModel, pd.DataFrame]:
    spec = load_spec("dropout")
    frame = synthesize(spec, 1500, seed=11)
    model = _train(spec, "dropout", "semester_2", frame)
    typed, _ = validate_frame(synthesize(spec, 200, seed=12), spec)
    return spec, model, typed


def test_student_id_does_not_change_the_score(
    dropout_setup: tuple[DatasetSpec, RiskModel, pd.DataFrame],
) -> None:
    _, model, students = dropout_setup
    renamed = students.copy()
    renamed["student_id"] = [f"other-{i}" for i in range(len(renamed))]
    np.testing.assert_array_equal(model.score(students).risk, model.score(renamed).risk)


def test_training_is_deterministic_for_a_seed() -> None:
    spec = load_spec("dropout")
    frame = synthesize(spec, 600, seed=5)
    students, _ = validate_frame(synthesize(spec, 50, seed=6), spec)
    first = _train(spec, "dropout", "enrolment", frame, seed=3).score(students).risk
    second = _train(spec, "dropout", "enrolment", frame, seed=3).score(students).risk
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("column", ["units_1st_sem_approved", "units_2nd_sem_approved"])
def test_more_approved_units_never_raise_dropout_risk(
    dropout_setup: tuple[DatasetSpec, RiskModel, pd.DataFrame], column: str
) -> None:
    _, model, students = dropout_setup
    base = model.score(students).risk
    for extra in (1, 2, 4):
        raised = students.copy()
        raised[column] = raised[column] + extra
        after = model.score(raised).risk
        assert (after <= base + 1e-12).all(), (
            f"{column} +{extra} raised risk for {(after > base + 1e-12).sum()} students"
        )


def test_declared_directions_hold_for_every_student(
    dropout_setup: tuple[DatasetSpec, RiskModel, pd.DataFrame],
) -> None:
    spec, model, students = dropout_setup
    task = spec.task("dropout")
    base = model.score(students).risk
    for column, sign in task.monotone.items():
        if column not in model.features:
            continue
        col = spec.column(column)
        shifted = students.copy()
        if col.type.value == "boolean":
            shifted[column] = 1.0
            moved = students[column] == 0
        else:
            shifted[column] = shifted[column] + 1
            moved = pd.Series(True, index=students.index)
        delta = model.score(shifted).risk - base
        assert (sign * delta[moved.to_numpy()] >= -1e-12).all(), column


def test_regression_interval_and_risk_are_consistent() -> None:
    spec = load_spec("secondary_math")
    model = _train(spec, "grade", "period_2", synthesize(spec, 800, seed=9))
    students, _ = validate_frame(synthesize(spec, 100, seed=10), spec)
    scores = model.score(students)
    assert scores.interval is not None and scores.value is not None
    assert (scores.interval[:, 0] <= scores.value).all() and (scores.value <= scores.interval[:, 1]).all()
    # a lower predicted grade never means a lower risk of falling below the pass mark
    order = np.argsort(scores.value)
    assert (np.diff(scores.risk[order]) <= 1e-12).all()
    higher_g2 = students.copy()
    higher_g2["g2"] = np.minimum(higher_g2["g2"] + 3, 20)
    assert (model.score(higher_g2).value >= scores.value - 1e-9).all()
