"""Model families and how each one is built for a task.

``majority``, ``linear`` and ``forest`` are the baselines; ``lightgbm`` and ``xgboost`` are the
gradient-boosting candidates. Only the boosting models enforce the spec's monotone constraints,
so only they can become champions of a task that declares directions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge

from retain.data.spec import Task

ModelKind = Literal["majority", "linear", "forest", "lightgbm", "xgboost"]
MODEL_KINDS: tuple[ModelKind, ...] = ("majority", "linear", "forest", "lightgbm", "xgboost")
BASELINES: tuple[ModelKind, ...] = ("majority", "linear", "forest")
MONOTONE_KINDS: frozenset[str] = frozenset({"lightgbm", "xgboost"})

DEFAULT_PARAMS: dict[str, dict[str, object]] = {
    "lightgbm": {
        "n_estimators": 300,
        "learning_rate": 0.03,
        "num_leaves": 15,
        "min_child_samples": 20,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.7,
        "reg_lambda": 1.0,
    },
    "xgboost": {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "max_depth": 4,
        "subsample": 0.8,
        "colsample_bytree": 0.7,
        "min_child_weight": 2,
    },
    "forest": {"n_estimators": 300, "min_samples_leaf": 3, "max_features": "sqrt"},
    "linear": {"C": 1.0},
    "majority": {},
}


def needs_scaling(kind: str) -> bool:
    return kind == "linear"


def make_estimator(
    kind: str,
    task: Task,
    params: Mapping[str, object] | None = None,
    monotone: list[int] | None = None,
    seed: int = 42,
    n_jobs: int = 1,
) -> BaseEstimator:
    """An unfitted estimator of ``kind`` for ``task``.

    Parameters
    ----------
    kind : one of ``MODEL_KINDS``
    task : Task
    params : hyperparameters (defaults from ``DEFAULT_PARAMS`` fill the gaps)
    monotone : constraint per transformed feature (boosting models only)
    seed, n_jobs : reproducibility and parallelism
    """
    merged: dict[str, Any] = {**DEFAULT_PARAMS.get(kind, {}), **(params or {})}
    classification = task.is_classification
    has_constraints = bool(monotone) and any(monotone or [])
    if kind == "majority":
        return DummyClassifier(strategy="prior") if classification else DummyRegressor(strategy="mean")
    if kind == "linear":
        if classification:
            return LogisticRegression(
                C=float(merged.get("C", 1.0)),
                max_iter=2000,
                class_weight=merged.get("class_weight"),
            )
        return Ridge(alpha=1.0 / float(merged.get("C", 1.0)))
    if kind == "forest":
        rf_params = {k: v for k, v in merged.items() if k != "C"}
        if classification:
            return RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **rf_params)
        return RandomForestRegressor(random_state=seed, n_jobs=n_jobs, **rf_params)
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        lgb_params: dict[str, Any] = dict(merged)
        if has_constraints:
            lgb_params["monotone_constraints"] = monotone
        common: dict[str, Any] = {"random_state": seed, "n_jobs": n_jobs, "verbose": -1, **lgb_params}
        return LGBMClassifier(**common) if classification else LGBMRegressor(**common)
    if kind == "xgboost":
        from xgboost import XGBClassifier, XGBRegressor

        xgb_params: dict[str, Any] = dict(merged)
        xgb_params.pop("class_weight", None)
        if has_constraints:
            xgb_params["monotone_constraints"] = "(" + ",".join(str(int(v)) for v in monotone or []) + ")"
        common_x: dict[str, Any] = {
            "random_state": seed,
            "n_jobs": n_jobs,
            "tree_method": "hist",
            **xgb_params,
        }
        return XGBClassifier(**common_x) if classification else XGBRegressor(**common_x)
    raise ValueError(f"unknown model kind {kind!r}; known: {list(MODEL_KINDS)}")
