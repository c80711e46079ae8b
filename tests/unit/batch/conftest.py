"""Fixtures for batch scoring at scale: a small trained model."""

from __future__ import annotations

import pytest

from retain.data.spec import load_spec
from retain.data.synth import synthesize
from retain.data.validate import validate_frame
from retain.features.build import feature_set
from retain.predictor import Predictor
from retain.training.fit import build_risk_model, encode_target, folds, out_of_fold

SMALL = {"n_estimators": 15, "num_leaves": 7, "min_child_samples": 5}


@pytest.fixture(scope="session")
def batch_predictor() -> Predictor:
    """``exam_scores.math.with_other_scores`` (LightGBM, a few trees), registered as version 3."""
    spec = load_spec("exam_scores")
    typed, _ = validate_frame(synthesize(spec, 300, seed=4), spec)
    task = spec.task("math")
    y = encode_target(typed, task)
    fs = feature_set(spec, task, "with_other_scores")
    oof = out_of_fold(spec, task, fs, "lightgbm", SMALL, typed, y, folds(y, task, 3, 0))
    model = build_risk_model(spec, task, "with_other_scores", fs, "lightgbm", SMALL, typed, y, oof)
    return Predictor(spec=spec, model=model, version=3)
