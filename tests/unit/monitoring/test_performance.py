"""Live performance from outcome pairs: periods, unjudged small periods, group rates and alerts."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from retain.data.spec import load_spec
from retain.monitoring.performance import live_performance

SPEC = load_spec("dropout")
TASK = SPEC.task("dropout")


def _pairs(n: int, month: int, gender_of: list[str], caught_in: set[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    adverse = rng.random(n) < 0.4
    genders = [gender_of[i % len(gender_of)] for i in range(n)]
    risk = np.where(adverse, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.5, n))
    band = [
        "high" if a and g in caught_in else ("low" if not a else "medium")
        for a, g in zip(adverse, genders, strict=True)
    ]
    return pd.DataFrame(
        {
            "task": "dropout",
            "model_name": "dropout.dropout.semester_1",
            "model_version": 3,
            "stage": "semester_1",
            "risk_score": risk,
            "risk_band": band,
            "prediction": np.where(risk > 0.5, "Dropout", "Not dropout"),
            "probabilities": [{"Not dropout": 1 - r, "Dropout": r} for r in risk],
            "predicted_at": datetime(2026, month, 1, tzinfo=UTC),
            "outcome": np.where(adverse, "Dropout", "Graduate"),
            "value": np.nan,
            "recorded_at": datetime(2026, month, 15, tzinfo=UTC),
            "programme": "9254",
            "cohort": None,
            "features": [{"gender": g} for g in genders],
        }
    )


def test_periods_metrics_and_a_small_period_left_unjudged() -> None:
    pairs = pd.concat([_pairs(200, 3, ["0", "1"], {"0", "1"}), _pairs(10, 4, ["0", "1"], {"0", "1"})])
    report = live_performance(pairs, SPEC, TASK, period="M", floor=0.9)
    march, april = report.periods
    assert (march.period, march.n, march.judged) == ("2026-03", 200, True)
    assert march.metrics["roc_auc"] == 1.0  # risk separates the outcomes perfectly here
    assert (april.n, april.judged, april.metrics) == (10, False, {})
    assert report.alerts == []  # 1.0 is above the floor; April is too small to judge


def test_a_group_whose_adverse_outcomes_are_missed_raises_an_alert() -> None:
    pairs = _pairs(400, 5, ["0", "1"], caught_in={"0"})  # only one gender's dropouts are flagged high
    report = live_performance(pairs, SPEC, TASK, max_caught_gap=0.2)
    caught = {g.group: g.caught for g in report.groups if g.feature == "gender"}
    assert caught == {"female": 1.0, "male": 0.0}
    assert any(a.startswith("gender in 2026-05") for a in report.alerts)


def test_unknown_outcomes_are_counted_not_scored() -> None:
    pairs = _pairs(100, 6, ["0"], {"0"})
    pairs.loc[:9, "outcome"] = ""
    report = live_performance(pairs, SPEC, TASK)
    assert report.unmatched == 10 and report.periods[0].n == 90
