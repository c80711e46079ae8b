"""Build the preprocessing pipeline for a dataset, task and stage from its spec.

Everything a model needs between a validated frame and its estimator lives in this pipeline
(derived features, imputation by each column's policy, encoding, scaling), so serving applies
exactly what training fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from retain.data.spec import ColumnType, DatasetSpec, ImputePolicy, Task
from retain.features.transformers import CodeCleaner, DerivedFeatures


@dataclass(frozen=True)
class FeatureSet:
    """The inputs of one model: raw feature columns and derived features, split by kind."""

    raw: list[str]
    numeric: list[str]
    categorical: list[str]
    derived: list[tuple[str, str, str, str]]

    @property
    def derived_names(self) -> list[str]:
        return [d[0] for d in self.derived]


def feature_set(spec: DatasetSpec, task: Task, stage: str, drop: Sequence[str] = ()) -> FeatureSet:
    """Which columns a model of ``task`` at ``stage`` uses, and how each is treated.

    ``drop`` removes features chosen away by importance-based selection (``retain tune``);
    a derived feature is dropped with either of its inputs.
    """
    raw = [c for c in spec.features(task, stage) if c not in set(drop)]
    numeric = [
        c for c in raw if spec.column(c).type in (ColumnType.integer, ColumnType.float, ColumnType.boolean)
    ]
    categorical = [c for c in raw if spec.column(c).type is ColumnType.categorical]
    derived: list[tuple[str, str, str, str]] = [
        (d.name, str(d.op), d.a, d.b)
        for d in spec.derived_features(task, stage)
        if d.name not in set(drop) and d.a in raw and d.b in raw
    ]
    return FeatureSet(raw=raw, numeric=numeric, categorical=categorical, derived=derived)


def _strategy(policy: ImputePolicy, numeric: bool) -> str:
    if policy is ImputePolicy.constant:
        return "constant"
    if not numeric and policy in (ImputePolicy.median, ImputePolicy.mean):
        return "most_frequent"
    if policy is ImputePolicy.error:
        return "median" if numeric else "most_frequent"
    return policy.value


def build_preprocessor(spec: DatasetSpec, features: FeatureSet, scale: bool = False) -> Pipeline:
    """An unfitted preprocessing pipeline: derived features, imputation, one-hot encoding.

    Parameters
    ----------
    spec : DatasetSpec
    features : FeatureSet
        From ``feature_set``.
    scale : bool, default False
        Standardise numeric columns (for linear models).

    Returns
    -------
    Pipeline whose output is a float DataFrame with names ``num_<strategy>__<col>``,
    ``derived__<name>`` and ``cat__<col>_<code>``.
    """
    transformers: list[tuple[str, object, list[str]]] = []
    groups: dict[tuple[str, str], list[str]] = {}
    for name in features.numeric:
        col = spec.column(name)
        fill = str(col.fill_value) if col.fill_value is not None else ""
        groups.setdefault((_strategy(col.missing, True), fill), []).append(name)
    for (strategy, fill), columns in groups.items():
        kwargs: dict[str, Any] = {"strategy": strategy}
        if strategy == "constant":
            kwargs["fill_value"] = float(fill)
        steps: list[tuple[str, object]] = [("impute", SimpleImputer(**kwargs))]
        if scale:
            steps.append(("scale", StandardScaler()))
        transformers.append((f"num_{strategy}", Pipeline(steps), columns))
    if features.derived:
        steps_d: list[tuple[str, object]] = [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
        ]
        if scale:
            steps_d.append(("scale", StandardScaler()))
        transformers.append(("derived", Pipeline(steps_d), features.derived_names))
    cat_groups: dict[str, list[str]] = {}
    for name in features.categorical:
        col = spec.column(name)
        fill = (
            str(col.fill_value) if col.missing is ImputePolicy.constant and col.fill_value is not None else ""
        )
        cat_groups.setdefault(fill, []).append(name)
    for fill, columns in cat_groups.items():
        categories = [sorted(spec.column(c).codes or {}) for c in columns]
        imputer = (
            SimpleImputer(strategy="constant", fill_value=fill)
            if fill
            else SimpleImputer(strategy="most_frequent")
        )
        cat = Pipeline(
            [
                ("clean", CodeCleaner()),
                ("impute", imputer),
                (
                    "onehot",
                    OneHotEncoder(
                        categories=categories,
                        handle_unknown="infrequent_if_exist",
                        min_frequency=5,
                        sparse_output=False,
                        dtype=np.float64,
                    ),
                ),
            ]
        )
        transformers.append(("cat" if not fill else f"cat_{len(transformers)}", cat, columns))
    columns = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
    prep = Pipeline([("derive", DerivedFeatures(features.derived)), ("columns", columns)])
    prep.set_output(transform="pandas")
    return prep


def raw_column_of(transformed: str, raw_columns: list[str]) -> str:
    """Map a transformed feature name (``num_median__age``) back to its raw column."""
    remainder = transformed.split("__", 1)[1] if "__" in transformed else transformed
    best = ""
    for raw in raw_columns:
        if (remainder == raw or remainder.startswith(raw + "_")) and len(raw) > len(best):
            best = raw
    return best or remainder


def monotone_vector(names: list[str], monotone: dict[str, int]) -> list[int]:
    """Constraint per transformed column (only numeric and derived columns carry one)."""
    out: list[int] = []
    for name in names:
        prefix, _, remainder = name.partition("__")
        is_numeric = prefix.startswith("num") or prefix == "derived"
        out.append(int(monotone.get(remainder, 0)) if is_numeric else 0)
    return out


def select_features(frame: pd.DataFrame, features: FeatureSet) -> pd.DataFrame:
    """The raw feature columns of a validated frame, in model order (missing ones as NaN)."""
    out = frame.reindex(columns=features.raw)
    return out
