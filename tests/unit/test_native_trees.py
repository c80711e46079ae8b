"""Unit tests for ``retain.native_trees``: compiled forests predict exactly what LightGBM predicts."""

from __future__ import annotations

import pickle
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from retain.native_trees import (
    UnsupportedForestError,
    cache_key,
    compile_lightgbm,
    parse_lightgbm,
)

N_FEATURES = 8


def _data(n: int, seed: int, classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    x[:, 3] = rng.integers(0, 2, n)  # a one-hot-like column
    x[rng.random(x.shape) < 0.1] = np.nan
    signal = np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) - np.nan_to_num(x[:, 3])
    if classes is None:
        return x, signal + rng.normal(size=n) * 0.3
    cuts = np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1])
    return x, np.searchsorted(cuts, signal)


def _booster(objective: str, seed: int = 0, **params: object) -> lgb.Booster:
    classes = {"binary": 2, "multiclass": 3}.get(objective)
    x, y = _data(600, seed, classes)
    settings: dict[str, object] = {
        "objective": objective,
        "num_leaves": 15,
        "min_data_in_leaf": 5,
        "learning_rate": 0.1,
        "verbose": -1,
        "seed": seed,
        "deterministic": True,
        "num_threads": 1,
        **params,
    }
    if objective == "multiclass":
        settings["num_class"] = 3
    return lgb.train(settings, lgb.Dataset(x, y), num_boost_round=40)


def _hard_inputs(booster: lgb.Booster, n: int = 3000, seed: int = 1) -> np.ndarray:
    """Random rows plus every value LightGBM treats specially: NaN, +-0, tiny, on the threshold."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)) * 2
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.05] = 0.0
    x[rng.random(x.shape) < 0.05] = -0.0
    x[rng.random(x.shape) < 0.05] = 1e-36
    x[rng.random(x.shape) < 0.05] = -1e-36
    model = booster.dump_model()
    thresholds: list[tuple[int, float]] = []

    def walk(node: dict[str, object]) -> None:
        if "split_feature" in node:
            thresholds.append((int(node["split_feature"]), float(node["threshold"])))  # type: ignore[arg-type]
            walk(node["left_child"])  # type: ignore[arg-type]
            walk(node["right_child"])  # type: ignore[arg-type]

    for tree in model["tree_info"]:
        walk(tree["tree_structure"])
    rows = rng.integers(0, n, len(thresholds))
    for row, (feature, threshold) in zip(rows, thresholds, strict=True):
        x[row, feature] = threshold  # exactly on a split: goes left
    return x


@pytest.mark.parametrize(
    ("objective", "params"),
    [
        ("binary", {}),
        ("binary", {"zero_as_missing": True}),  # missing type Zero
        ("binary", {"use_missing": False}),  # missing type None: NaN reads as 0.0
        ("multiclass", {}),
        ("regression", {}),
        ("regression", {"use_missing": False}),
        ("binary", {"min_data_in_leaf": 10_000}),  # single-leaf trees
    ],
)
def test_predictions_equal_lightgbm_bit_for_bit(objective: str, params: dict[str, object]) -> None:
    booster = _booster(objective, **params)
    forest = compile_lightgbm(booster.model_to_string())
    x = _hard_inputs(booster)
    want = booster.predict(x, num_threads=1)
    got = forest.predict(x)
    assert got.shape == want.shape
    assert np.array_equal(got, want), np.nanmax(np.abs(got - want))
    assert np.array_equal(forest.predict(x[:1]), want[:1])  # one row, as the API scores
    assert np.array_equal(forest.predict(x, threads=3), want)  # split across threads


def test_best_iteration_is_what_booster_predict_uses() -> None:
    x, y = _data(600, 3, 2)
    xv, yv = _data(300, 4, 2)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 31, "learning_rate": 0.3},
        lgb.Dataset(x, y),
        num_boost_round=200,
        valid_sets=[lgb.Dataset(xv, yv)],
        callbacks=[lgb.early_stopping(5, verbose=False)],
        keep_training_booster=True,  # all trees stay; predict uses the best iteration
    )
    assert 0 < booster.best_iteration < booster.num_trees()
    forest = compile_lightgbm(booster.model_to_string(num_iteration=None))
    assert forest.n_trees == booster.best_iteration
    assert np.array_equal(forest.predict(xv), booster.predict(xv))


def test_unsupported_models_are_refused() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, N_FEATURES))
    x[:, 2] = rng.integers(0, 6, 400)
    y = np.isin(x[:, 2], [1, 3, 4]).astype(int)
    categorical = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1},
        lgb.Dataset(x, y, categorical_feature=[2]),
        num_boost_round=10,
    )
    assert "num_cat=1" in categorical.model_to_string()
    with pytest.raises(UnsupportedForestError, match="categorical"):
        parse_lightgbm(categorical.model_to_string())
    linear = lgb.train(
        {"objective": "regression", "verbose": -1, "linear_tree": True},
        lgb.Dataset(np.nan_to_num(x), y.astype(float)),
        num_boost_round=5,
    )
    with pytest.raises(UnsupportedForestError, match="linear"):
        parse_lightgbm(linear.model_to_string())
    poisson = lgb.train({"objective": "poisson", "verbose": -1}, lgb.Dataset(x, y + 1.0), num_boost_round=5)
    with pytest.raises(UnsupportedForestError, match="objective"):
        parse_lightgbm(poisson.model_to_string())
    with pytest.raises(UnsupportedForestError):
        parse_lightgbm("not a model")


def test_wrong_shapes_are_refused() -> None:
    forest = compile_lightgbm(_booster("binary").model_to_string())
    with pytest.raises(ValueError, match="8 columns"):
        forest.predict(np.zeros((3, N_FEATURES + 1)))
    assert forest.predict(np.zeros((0, N_FEATURES))).shape == (0,)


def test_machine_code_is_cached_and_verified(tmp_path: Path) -> None:
    booster = _booster("multiclass", seed=2)
    text = booster.model_to_string()
    first = compile_lightgbm(text, cache_dir=tmp_path)
    cached = tmp_path / f"{cache_key(text)}.o"
    assert cached.is_file()
    written = cached.stat().st_mtime_ns
    again = compile_lightgbm(text, cache_dir=tmp_path)  # loaded, not compiled
    assert cached.stat().st_mtime_ns == written
    x = _hard_inputs(booster, n=500)
    assert np.array_equal(again.predict(x), first.predict(x))
    cached.write_bytes(cached.read_bytes()[:-100])  # damaged: compiled afresh, never executed
    repaired = compile_lightgbm(text, cache_dir=tmp_path)
    assert np.array_equal(repaired.predict(x), booster.predict(x))
    other = _booster("multiclass", seed=3).model_to_string()
    assert cache_key(other) != cache_key(text)


def test_compiled_forest_is_not_pickled() -> None:
    forest = compile_lightgbm(_booster("binary").model_to_string())
    with pytest.raises(TypeError, match="machine code"):
        pickle.dumps(forest)
