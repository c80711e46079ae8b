"""Unit tests for ``retain.training.gate``: the one promotion rule."""

from __future__ import annotations

import numpy as np
import pytest

from retain.training.gate import decide, decide_paired, paired_bootstrap


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


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def _scores(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    return y, y + rng.normal(0, noise, n)


def test_the_paired_gate_never_promotes_a_worse_challenger() -> None:
    for seed in range(12):
        y, champion = _scores(600, 0.8, seed)
        rng = np.random.default_rng(100 + seed)
        worse = champion + rng.normal(0, 0.8, len(y))  # the champion's signal, diluted
        test = paired_bootstrap(y, champion, worse, _auc, True, rounds=100, seed=seed)
        decision = decide_paired("roc_auc", _auc(y, worse), _auc(y, champion), test, margin=0.0)
        assert not decision.promote and decision.reason.startswith("champion stays"), seed


def test_a_clearly_better_challenger_is_promoted_with_its_numbers() -> None:
    y, champion = _scores(800, 1.2, 1)
    better = y + np.random.default_rng(2).normal(0, 0.5, len(y))
    test = paired_bootstrap(y, champion, better, _auc, True, rounds=300)
    decision = decide_paired("roc_auc", _auc(y, better), _auc(y, champion), test, margin=0.01)
    assert decision.promote and test.low > 0 and test.p_value < 0.05
    assert (
        "paired bootstrap" in decision.reason
        and decision.to_dict()["candidate"] > decision.to_dict()["champion"]
    )


def test_a_small_noisy_gain_is_not_significant() -> None:
    y, champion = _scores(60, 1.0, 3)
    challenger = champion + np.random.default_rng(4).normal(0, 0.3, len(y))
    test = paired_bootstrap(y, champion, challenger, _auc, True, rounds=300)
    if test.improvement > 0:  # whatever the sign of the observed gain, 60 rows cannot prove it
        decision = decide_paired("roc_auc", 0.0, 0.0, test, margin=0.0)
        assert not decision.promote and "not significant" in decision.reason
    errors = paired_bootstrap(
        y.astype(float), champion, champion + 1.0, lambda a, b: float(np.mean(np.abs(a - b))), False
    )
    assert errors.improvement < 0 and errors.low < 0  # lower is better for errors: a shifted model is worse
