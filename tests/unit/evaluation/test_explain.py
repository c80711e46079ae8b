"""Unit tests for retain.evaluation.explain (small synthetic pipelines)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from retain.evaluation.explain import (
    base_estimator,
    local_contributions,
    permutation_importance_table,
    raw_feature_name,
    shap_importance_table,
)

NUMERIC = ["signal", "noise", "age"]
CATEGORICAL = ["course"]


def _data(n: int = 600, seed: int = 0, classes: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "signal": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "age": rng.integers(17, 40, n).astype(float),
            "course": rng.choice(["9254", "171", "33"], size=n),
        }
    )
    latent = 2.5 * X["signal"].to_numpy() + rng.normal(scale=0.5, size=n)
    y = np.digitize(latent, [-1.0, 1.0]) if classes == 3 else (latent > 0).astype(int)
    return X, y


def _prep() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )


def _lgbm_pipeline(X: pd.DataFrame, y: np.ndarray) -> Pipeline:
    model = LGBMClassifier(n_estimators=40, num_leaves=8, min_child_samples=10, verbose=-1, random_state=0)
    return Pipeline([("prep", _prep()), ("model", model)]).fit(X, y)


@pytest.fixture(scope="module")
def binary() -> tuple[pd.DataFrame, np.ndarray, Pipeline]:
    X, y = _data()
    return X, y, _lgbm_pipeline(X, y)


def test_raw_feature_name_mapping() -> None:
    raw = ["age", "age_at_enrollment", "course", "signal"]
    assert raw_feature_name("num__age", raw) == "age"
    assert raw_feature_name("num__age_at_enrollment", raw) == "age_at_enrollment"
    assert raw_feature_name("cat__course_9254", raw) == "course"
    assert raw_feature_name("derived__grade_trend", raw) is None
    assert raw_feature_name("signal", raw) == "signal"
    assert raw_feature_name("num__agency", raw) is None


def test_shap_and_permutation_rank_informative_feature_first(
    binary: tuple[pd.DataFrame, np.ndarray, Pipeline],
) -> None:
    X, y, pipe = binary
    shap_table = shap_importance_table(pipe, X, max_rows=300)
    assert list(shap_table.columns) == ["feature", "importance"]
    assert shap_table.loc[0, "feature"] == "signal"
    assert set(shap_table["feature"]) == {"signal", "noise", "age", "course"}

    transformed = shap_importance_table(pipe, X, max_rows=300, level="transformed")
    assert transformed.loc[0, "feature"] == "num__signal"
    assert set(transformed.loc[transformed["feature"].str.startswith("cat__"), "raw_feature"]) == {"course"}

    perm = permutation_importance_table(pipe, X, y, scoring="roc_auc", n_repeats=3)
    assert list(perm.columns) == ["feature", "importance", "importance_std"]
    assert perm.loc[0, "feature"] == "signal"
    assert perm.loc[0, "importance"] > 0.1


def test_calibrated_frozen_estimator_is_unwrapped(binary: tuple[pd.DataFrame, np.ndarray, Pipeline]) -> None:
    X, y, pipe = binary
    X_cal, y_cal = _data(300, seed=1)
    calibrated = CalibratedClassifierCV(FrozenEstimator(pipe[-1]), method="sigmoid")
    calibrated.fit(pipe[:-1].transform(X_cal), y_cal)
    wrapped = Pipeline([("prep", pipe[0]), ("model", calibrated)])
    assert base_estimator(calibrated) is pipe[-1]
    table = shap_importance_table(wrapped, X, max_rows=200)
    assert table.loc[0, "feature"] == "signal"
    perm = permutation_importance_table(wrapped, X, y, scoring="neg_log_loss", n_repeats=2)
    assert perm.loc[0, "feature"] == "signal"


def test_multiclass_and_linear_and_agnostic_models() -> None:
    X, y3 = _data(450, classes=3)
    multi = _lgbm_pipeline(X, y3)
    assert shap_importance_table(multi, X, max_rows=200).loc[0, "feature"] == "signal"

    X2, y2 = _data(300)
    linear = Pipeline([("prep", _prep()), ("model", LogisticRegression(max_iter=500))]).fit(X2, y2)
    assert shap_importance_table(linear, X2).loc[0, "feature"] == "signal"

    # neither a tree nor a linear model: shap's model-agnostic explainer over predict_proba
    bayes = Pipeline([("prep", _prep()), ("model", GaussianNB())]).fit(X2, y2)
    table = shap_importance_table(bayes, X2, max_rows=40)
    assert table.loc[0, "feature"] == "signal"

    # one row against a training background: contributions are not all zero
    for model in (linear, bayes):
        one = local_contributions(model, X2.iloc[[0]], background=X2)
        assert one.shape == (1, 4)
        assert abs(one.loc[0, "signal"]) > 0
        assert one["signal"].abs().iloc[0] == one.abs().max(axis=1).iloc[0]


def test_regression_pipeline() -> None:
    X, _ = _data(400)
    target = 3.0 * X["signal"].to_numpy() + np.random.default_rng(3).normal(scale=0.3, size=len(X))
    model = LGBMRegressor(n_estimators=40, num_leaves=8, verbose=-1, random_state=0)
    pipe = Pipeline([("prep", _prep()), ("model", model)]).fit(X, target)
    assert shap_importance_table(pipe, X, max_rows=100).loc[0, "feature"] == "signal"
    contributions = local_contributions(pipe, X.iloc[:3])
    assert contributions.shape == (3, 4)


def test_local_contributions_for_adverse_class(binary: tuple[pd.DataFrame, np.ndarray, Pipeline]) -> None:
    X, _, pipe = binary
    rows = X.iloc[[0, 1, 2, 3]].copy()
    rows.index = pd.Index(["a", "b", "c", "d"])
    contributions = local_contributions(pipe, rows, class_index=1)
    assert list(contributions.index) == ["a", "b", "c", "d"]
    assert list(contributions.columns) == ["signal", "noise", "age", "course"]
    # a higher signal raises P(class 1), so its contribution has the sign of the (scaled) signal
    signs = np.sign(contributions["signal"].to_numpy())
    assert np.all(signs == np.sign(rows["signal"].to_numpy() - X["signal"].median()))
    opposite = local_contributions(pipe, rows, class_index=0)
    np.testing.assert_allclose(opposite.to_numpy(), -contributions.to_numpy())
