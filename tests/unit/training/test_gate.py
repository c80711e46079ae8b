"""Unit tests for ``retain.training.gate``: the one promotion rule."""

from __future__ import annotations

import pytest

from retain.training.gate import decide


def test_promote_without_champion() -> None:
    d = decide("roc_auc", 0.5, None, greater_is_better=True, margin=0.1)
    assert d.promote
    assert d.champion is None
    assert "no current champion" in d.reason


@pytest.mark.parametrize(
    ("candidate", "champion", "promote"),
    [(0.875, 0.75, True), (0.8125, 0.75, False), (0.75, 0.75, False), (0.5, 0.75, False), (1.0, 0.75, True)],
)
def test_margin_greater_is_better(candidate: float, champion: float, promote: bool) -> None:
    assert decide("roc_auc", candidate, champion, True, margin=0.125).promote is promote


@pytest.mark.parametrize(
    ("candidate", "champion", "promote"),
    [(1.75, 2.0, True), (1.875, 2.0, False), (2.0, 2.0, False), (2.5, 2.0, False), (1.0, 2.0, True)],
)
def test_margin_lower_is_better(candidate: float, champion: float, promote: bool) -> None:
    assert decide("rmse", candidate, champion, False, margin=0.25).promote is promote


def test_higher_rmse_never_promoted_even_with_zero_margin() -> None:
    assert not decide("rmse", 3.0, 2.0, False, margin=0.0).promote
    assert decide("rmse", 1.999, 2.0, False, margin=0.0).promote


def test_ties_not_promoted_with_zero_margin() -> None:
    assert not decide("macro_f1", 0.7, 0.7, True, margin=0.0).promote
    assert not decide("rmse", 4.2, 4.2, False, margin=0.0).promote


def test_decision_carries_numbers() -> None:
    d = decide("roc_auc", 0.8, 0.7, True, margin=0.05)
    assert d.to_dict() == {
        "promote": True,
        "reason": d.reason,
        "metric": "roc_auc",
        "candidate": 0.8,
        "champion": 0.7,
        "margin": 0.05,
    }
    assert "roc_auc" in d.reason
    rejected = decide("roc_auc", 0.71, 0.7, True, margin=0.05)
    assert not rejected.promote
    assert "below margin" in rejected.reason


def test_improvement_equal_to_margin_promotes_despite_float_rounding() -> None:
    assert decide("roc_auc", 0.06, 0.05, True, margin=0.01).promote
