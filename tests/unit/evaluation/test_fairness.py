"""Unit tests for retain.evaluation.fairness (synthetic data only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.data.spec import DatasetSpec
from retain.evaluation.fairness import SMALL_GROUP, bin_protected, fairness_gaps, group_metrics


@pytest.fixture
def biased() -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Same base rate in both groups, but the scorer adds risk to group B."""
    rng = np.random.default_rng(1)
    n = 2000
    group = rng.choice(["A", "B"], size=n)
    y = (rng.uniform(size=n) < 0.3).astype(int)
    scores = np.clip(0.25 + 0.35 * y + rng.normal(scale=0.1, size=n) + 0.25 * (group == "B"), 0, 1)
    flagged = (scores >= 0.5).astype(int)
    region = np.where(rng.uniform(size=n) < 0.005, "tiny island", rng.choice(["north", "south"], size=n))
    groups = pd.DataFrame({"gender": group, "region": region})
    return y, scores, flagged, groups


def test_biased_scorer_shows_selection_rate_gap(
    biased: tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame],
) -> None:
    y, scores, flagged, groups = biased
    table = group_metrics(y, scores, flagged, groups[["gender"]])
    assert list(table.columns[:3]) == ["attribute", "group", "n"]
    rows = table.set_index("group")
    assert rows.loc["B", "selection_rate"] > rows.loc["A", "selection_rate"] + 0.2
    assert rows.loc["B", "false_positive_rate"] > rows.loc["A", "false_positive_rate"]
    assert abs(rows.loc["B", "base_rate"] - rows.loc["A", "base_rate"]) < 0.05
    assert rows["n"].sum() == len(y)
    assert rows["roc_auc"].notna().all() and rows["ece"].notna().all()

    gaps = fairness_gaps(table).set_index("attribute")
    assert gaps.loc["gender", "selection_rate_gap"] > 0.2
    assert gaps.loc["gender", "selection_rate_highest"] == "B"
    assert gaps.loc["gender", "selection_rate_lowest"] == "A"
    assert gaps.loc["gender", "equalized_odds_difference"] == pytest.approx(
        max(gaps.loc["gender", "false_positive_rate_gap"], gaps.loc["gender", "true_positive_rate_gap"])
    )


def test_small_groups_are_merged_or_left_out(
    biased: tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame],
) -> None:
    y, scores, flagged, groups = biased
    table = group_metrics(y, scores, flagged, groups, min_group_size=20)
    assert (table["n"] >= 20).all()
    region = table[table["attribute"] == "region"]
    assert "tiny island" not in set(region["group"])

    # several small groups that together reach the minimum form one merged group
    small = groups.copy()
    small["region"] = [f"g{i % 100}" if i < 300 else "big" for i in range(len(small))]
    merged = group_metrics(y, scores, flagged, small[["region"]], min_group_size=20)
    assert set(merged["group"]) == {"big", SMALL_GROUP}
    assert merged.set_index("group").loc[SMALL_GROUP, "n"] == 300


def test_undefined_group_metrics_are_nan() -> None:
    y = np.array([0] * 30 + [1] * 30)
    scores = np.linspace(0, 1, 60)
    groups = pd.DataFrame({"g": ["only_negative"] * 30 + ["only_positive"] * 30})
    table = group_metrics(y, scores, (scores > 0.5).astype(int), groups).set_index("group")
    assert np.isnan(table.loc["only_negative", "false_negative_rate"])
    assert np.isnan(table.loc["only_positive", "false_positive_rate"])
    assert table["roc_auc"].isna().all()


def _spec() -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": "toy",
            "title": "Toy",
            "source": {"file": "toy.csv"},
            "stages": ["enrolment"],
            "columns": [
                {
                    "name": "gender",
                    "type": "categorical",
                    "codes": {0: "Female", 1: "Male"},
                    "protected": True,
                },
                {"name": "age", "type": "integer", "protected": True},
                {"name": "grade", "type": "float"},
                {"name": "target", "type": "categorical", "codes": ["Dropout", "Graduate"], "role": "target"},
            ],
            "tasks": [
                {
                    "name": "dropout",
                    "type": "classification",
                    "target": "target",
                    "adverse": "Dropout",
                    "negative_label": "Graduate",
                    "stages": ["enrolment"],
                    "primary_metric": "roc_auc",
                }
            ],
        }
    )


def test_bin_protected_readable_labels() -> None:
    rng = np.random.default_rng(2)
    ages = np.concatenate([rng.integers(17, 20, 300), rng.integers(20, 25, 200), rng.integers(25, 60, 100)])
    frame = pd.DataFrame(
        {"gender": rng.integers(0, 2, ages.size), "age": ages, "grade": rng.normal(size=ages.size)}
    )
    frame.loc[0, "gender"] = np.nan
    binned = bin_protected(frame, _spec())
    assert list(binned.columns) == ["gender", "age"]
    assert binned.index.equals(frame.index)
    assert set(binned["gender"]) == {"Female", "Male", "missing"}
    labels = set(binned["age"])
    assert 2 <= len(labels) <= 4
    assert any(label.endswith("+") for label in labels)
    # every age lands in a bin whose label covers it
    for age, label in zip(frame["age"], binned["age"], strict=True):
        if label.endswith("+"):
            assert age >= int(label[:-1])
        elif "-" in label:
            low, high = (int(v) for v in label.split("-"))
            assert low <= age <= high
        else:
            assert age == int(label)
