"""Intervention impact matched on risk (``retain.monitoring.impact``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from retain.data.spec import load_spec
from retain.monitoring.impact import CAUTION, intervention_impact

TASK = load_spec("dropout").task("dropout")


def _pairs(
    n: int, effect: float, seed: int, *, confounded: bool = False, simulated: bool = False
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    risk = rng.uniform(0.3, 0.95, n)
    # advisors help the riskiest students more often when confounded
    p_help = np.clip(risk - 0.2, 0.05, 0.95) if confounded else np.full(n, 0.5)
    helped = rng.random(n) < p_help
    p_drop = np.clip(risk + np.where(helped, effect, 0.0), 0, 1)
    dropped = rng.random(n) < p_drop
    label = "simulated:tutoring" if simulated else "tutoring"
    return pd.DataFrame(
        {
            "task": "dropout",
            "risk_score": risk,
            "risk_band": np.where(risk > 0.6, "high", "medium"),
            "outcome": np.where(dropped, "Dropout", "Graduate"),
            "value": np.nan,
            "interventions": [[label] if h else [] for h in helped],
        }
    )


def test_a_real_effect_is_found_with_an_interval_that_excludes_zero() -> None:
    report = intervention_impact(_pairs(3000, -0.15, 1), TASK, rounds=300)
    assert report.difference is not None and report.ci_low is not None and report.ci_high is not None
    assert -0.22 < report.difference < -0.08 and report.ci_high < 0
    assert report.n_helped + report.n_other == report.n_flagged == 3000
    assert report.caution == CAUTION and not report.simulated


def test_matching_on_risk_removes_the_bias_of_helping_the_riskiest() -> None:
    pairs = _pairs(4000, 0.0, 2, confounded=True)
    helped = pairs["interventions"].map(bool)
    dropped = pairs["outcome"] == "Dropout"
    naive = dropped[helped].mean() - dropped[~helped].mean()
    report = intervention_impact(pairs, TASK, strata=10, rounds=300)
    assert naive > 0.08  # the riskiest were helped, so they "did worse"
    assert report.difference is not None and abs(report.difference) < 0.04
    assert report.ci_low is not None and report.ci_high is not None and report.ci_low < 0 < report.ci_high


def test_too_few_helped_students_give_no_figure_and_simulated_ones_are_labelled() -> None:
    few = _pairs(30, -0.2, 3)
    assert intervention_impact(few, TASK, rounds=50).difference is None
    assert intervention_impact(_pairs(400, -0.2, 4, simulated=True), TASK, rounds=50).simulated
    low_only = _pairs(200, 0.0, 5).assign(risk_band="low")
    assert intervention_impact(low_only, TASK).n_flagged == 0  # only flagged students are compared
