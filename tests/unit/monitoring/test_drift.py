"""Drift tests: calibrated on stable traffic, sensitive to real shifts, never decided by few rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.data.spec import load_spec
from retain.data.synth import synthesize
from retain.monitoring.drift import detect_drift, feature_drift

SPEC = load_spec("dropout")
FEATURES = SPEC.features("dropout", "semester_2")
DECLARED = {c.name: c.type.value for c in SPEC.columns}


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    return synthesize(SPEC, 40_000, seed=11)


def test_stable_traffic_rarely_alarms(population: pd.DataFrame) -> None:
    reference = population.iloc[:10_000]
    alarms, per_feature = [], []
    for i in range(60):
        window = population.iloc[10_000 + i * 500 : 10_000 + (i + 1) * 500]
        report = detect_drift(reference, window, FEATURES, declared=DECLARED)
        alarms.append(report.dataset_drift)
        per_feature.append(report.share_drifted)
    assert np.mean(alarms) <= 0.05
    assert np.mean(per_feature) <= 0.08  # each test runs at alpha = 0.05


def test_a_shifted_intake_is_detected(population: pd.DataFrame) -> None:
    reference = population.iloc[:10_000]
    window = population.iloc[10_000:10_500].copy()
    window["admission_grade"] = window["admission_grade"] + 15  # about one standard deviation
    window["unemployment_rate"] = window["unemployment_rate"] + 4
    report = detect_drift(reference, window, FEATURES, declared=DECLARED)
    assert {"admission_grade", "unemployment_rate"} <= set(report.drifted)
    assert not report.dataset_drift  # two features of many: not the whole dataset
    by_name = {f.feature: f for f in report.features}
    assert by_name["admission_grade"].test == "ks"
    assert by_name["course"].test == "chi2" and not by_name["course"].drifted


def test_categorical_shift_and_missing_share() -> None:
    rng = np.random.default_rng(0)
    reference = pd.Series(rng.choice(["a", "b", "c"], 2000, p=[0.6, 0.3, 0.1]))
    same = pd.Series(rng.choice(["a", "b", "c"], 400, p=[0.6, 0.3, 0.1]))
    moved = pd.Series(rng.choice(["a", "b", "c"], 400, p=[0.3, 0.3, 0.4]))
    assert not feature_drift("x", reference, same, declared="categorical").drifted
    assert feature_drift("x", reference, moved, declared="categorical").drifted
    holes = same.copy().astype(object)
    holes.iloc[:120] = None
    found = feature_drift("x", reference, holes, declared="categorical")
    assert found.drifted and "missing share" in found.note


def test_large_samples_use_effect_sizes_not_p_values() -> None:
    rng = np.random.default_rng(1)
    reference = pd.Series(rng.normal(0, 1, 50_000))
    tiny_shift = pd.Series(rng.normal(0.03, 1, 50_000))  # "significant" at this size, irrelevant
    real_shift = pd.Series(rng.normal(0.5, 1, 50_000))
    assert feature_drift("x", reference, tiny_shift).test == "wasserstein"
    assert not feature_drift("x", reference, tiny_shift).drifted
    assert feature_drift("x", reference, real_shift).drifted


def test_a_few_records_never_decide(population: pd.DataFrame) -> None:
    window = population.iloc[:5].copy()
    window["admission_grade"] = 190.0
    report = detect_drift(population.iloc[5:], window, FEATURES, declared=DECLARED)
    assert not report.enough_data and not report.dataset_drift and report.drifted == []
    assert all(not f.judged for f in report.features)


def test_prediction_drift(population: pd.DataFrame) -> None:
    rng = np.random.default_rng(2)
    reference = population.iloc[:2000].assign(
        risk_score=rng.beta(2, 5, 2000),
        risk_band=rng.choice(["low", "medium", "high"], 2000, p=[0.6, 0.3, 0.1]),
    )
    window = population.iloc[2000:2500].assign(
        risk_score=rng.beta(5, 2, 500),
        risk_band=rng.choice(["low", "medium", "high"], 500, p=[0.2, 0.3, 0.5]),
    )
    report = detect_drift(reference, window, FEATURES, declared=DECLARED)
    assert report.prediction_drift
    assert {p.feature for p in report.predictions if p.drifted} == {"risk_score", "risk_band"}
    assert report.to_dict()["prediction_drift"] is True
