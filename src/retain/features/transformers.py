"""Custom scikit-learn transformers (``fit`` returns self; learned attributes end in ``_``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class DerivedFeatures(TransformerMixin, BaseEstimator):
    """Add domain features computed from pairs of columns.

    Parameters
    ----------
    specs : sequence of (name, op, a, b)
        ``op`` is ``"ratio"`` (``a / b``, 0 where ``b`` is 0) or ``"difference"``
        (``a - b``); missing inputs give NaN (imputed later in the pipeline). Input columns are
        kept; the derived ones are appended.
    """

    def __init__(self, specs: Sequence[tuple[str, str, str, str]] = ()) -> None:
        self.specs = specs

    def fit(self, X: pd.DataFrame, y: object = None) -> DerivedFeatures:
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.reindex(columns=list(self.feature_names_in_)).copy()
        for name, op, a, b in self.specs:
            left = pd.to_numeric(out[a], errors="coerce").astype("float64")
            right = pd.to_numeric(out[b], errors="coerce").astype("float64")
            if op == "ratio":
                with np.errstate(divide="ignore", invalid="ignore"):
                    value = np.where(right > 0, left / right.where(right > 0, 1.0), 0.0)
                out[name] = np.where(left.isna() | right.isna(), np.nan, value)
            elif op == "difference":
                out[name] = left - right
            else:
                raise ValueError(f"unknown derived-feature op {op!r}")
        return out

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = list(input_features) if input_features is not None else list(self.feature_names_in_)
        return np.asarray([*names, *(s[0] for s in self.specs)], dtype=object)


class CodeCleaner(TransformerMixin, BaseEstimator):
    """Turn categorical code columns into strings (missing stays missing) for the encoders."""

    def fit(self, X: pd.DataFrame, y: object = None) -> CodeCleaner:
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=X.index)
        for column in X.columns:
            values = X[column]
            out[column] = values.where(values.isna(), values.astype(str)).astype(object)
        return out

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = list(input_features) if input_features is not None else list(self.feature_names_in_)
        return np.asarray(names, dtype=object)
