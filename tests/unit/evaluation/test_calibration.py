"""Unit tests for ``retain.evaluation.calibration``: out-of-fold probability calibration."""

from __future__ import annotations

import numpy as np
import pytest

from retain.evaluation.calibration import ProbabilityCalibrator
from retain.evaluation.metrics import expected_calibration_error


def _binary(n: int = 4_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overconfident scores: the true log-odds multiplied by 3."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(0, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    p1 = 1 / (1 + np.exp(-3 * logit + 0.5))
    return np.column_stack([1 - p1, p1]), y


def _multiclass(n: int = 4_000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Underconfident scores: true logits divided by 4 (temperature 4)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (n, 3))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=p) for p in true])
    soft = np.exp(logits / 4) / np.exp(logits / 4).sum(axis=1, keepdims=True)
    return soft, y


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("data", [_binary, _multiclass])
def test_probabilities_valid(method: str, data) -> None:
    proba, y = data()
    cal = ProbabilityCalibrator(method=method).fit(proba, y)
    out = cal.transform(proba)
    assert out.shape == proba.shape
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)
    assert (out >= 0).all() and (out <= 1).all()
    assert not np.isnan(out).any()


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("data", [_binary, _multiclass])
def test_calibration_improves_ece(method: str, data) -> None:
    proba, y = data()
    fit_part, test_part = slice(0, 2_000), slice(2_000, None)
    cal = ProbabilityCalibrator(method=method).fit(proba[fit_part], y[fit_part])
    before = expected_calibration_error(y[test_part], proba[test_part])
    after = expected_calibration_error(y[test_part], cal.transform(proba[test_part]))
    assert before > 0.05
    assert after < before / 2


def test_sigmoid_preserves_ranking_for_binary() -> None:
    proba, y = _binary()
    out = ProbabilityCalibrator().fit(proba, y).transform(proba)
    order = np.argsort(proba[:, 1], kind="stable")
    assert (np.diff(out[order, 1]) >= 0).all()
    # strictly monotone where the input is not saturated
    inner = (proba[:, 1] > 1e-4) & (proba[:, 1] < 1 - 1e-4)
    inner_order = np.argsort(proba[inner, 1])
    assert (np.diff(out[inner][inner_order, 1]) > 0).all()


def test_isotonic_preserves_order_for_binary() -> None:
    proba, y = _binary()
    out = ProbabilityCalibrator(method="isotonic").fit(proba, y).transform(proba)
    order = np.argsort(proba[:, 1], kind="stable")
    assert (np.diff(out[order, 1]) >= -1e-12).all()


def test_fitted_attributes() -> None:
    proba, y = _multiclass(600)
    cal = ProbabilityCalibrator()
    assert cal.fit(proba, y) is cal
    assert cal.n_classes_ == 3
    assert len(cal.maps_) == 3
    binary, yb = _binary(600)
    assert len(ProbabilityCalibrator().fit(binary, yb).maps_) == 1


def test_well_calibrated_input_stays_close() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.95, 5_000)
    y = (rng.random(5_000) < p).astype(int)
    proba = np.column_stack([1 - p, p])
    out = ProbabilityCalibrator().fit(proba, y).transform(proba)
    assert np.max(np.abs(out[:, 1] - p)) < 0.05
