"""Probability calibration fitted on out-of-fold predictions (one fitted model stays fast to serve)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, _EPS, 1 - _EPS)
    return np.log(clipped / (1 - clipped))


class ProbabilityCalibrator(BaseEstimator):
    """Per-class Platt scaling (or isotonic) of predicted probabilities, renormalised.

    Parameters
    ----------
    method : {"sigmoid", "isotonic"}, default "sigmoid"

    Attributes
    ----------
    maps_ : list of fitted one-vs-rest maps, one per class (binary: one, for class 1).
    n_classes_ : int
    """

    def __init__(self, method: str = "sigmoid") -> None:
        self.method = method

    def fit(self, proba: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        proba = np.asarray(proba, dtype=float)
        y = np.asarray(y).astype(int)
        self.n_classes_ = proba.shape[1]
        classes = [1] if self.n_classes_ == 2 else list(range(self.n_classes_))
        self.maps_: list[object] = []
        for k in classes:
            target = (y == k).astype(int)
            if self.method == "isotonic":
                iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
                iso.fit(proba[:, k], target)
                self.maps_.append(iso)
            else:
                platt = LogisticRegression(C=1e4, max_iter=1000)
                platt.fit(_logit(proba[:, k]).reshape(-1, 1), target)
                self.maps_.append(platt)
        return self

    def _apply(self, fitted: object, p: np.ndarray) -> np.ndarray:
        if isinstance(fitted, IsotonicRegression):
            return np.asarray(fitted.predict(p), dtype=float)
        assert isinstance(fitted, LogisticRegression)
        return np.asarray(fitted.predict_proba(_logit(p).reshape(-1, 1))[:, 1], dtype=float)

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, shape (n, k), rows summing to 1."""
        proba = np.asarray(proba, dtype=float)
        if self.n_classes_ == 2:
            p1 = np.clip(self._apply(self.maps_[0], proba[:, 1]), 0.0, 1.0)
            return np.column_stack([1 - p1, p1])
        cols = [np.clip(self._apply(m, proba[:, k]), _EPS, 1.0) for k, m in enumerate(self.maps_)]
        stacked = np.column_stack(cols)
        return stacked / stacked.sum(axis=1, keepdims=True)
