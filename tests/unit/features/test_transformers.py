"""Unit tests for ``retain.features.transformers``: scikit-learn API and derived-feature values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from retain.features.transformers import CodeCleaner, DerivedFeatures

SPECS = [("rate", "ratio", "approved", "enrolled"), ("trend", "difference", "g2", "g1")]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "approved": [3.0, 0.0, 2.0, np.nan, 4.0, 5.0],
            "enrolled": [6.0, 0.0, 0.0, 6.0, np.nan, 5.0],
            "g1": [10.0, 12.0, np.nan, 11.0, 9.0, 14.0],
            "g2": [12.0, 11.0, 13.0, 11.0, 9.0, np.nan],
        }
    )


def test_fit_returns_self_and_learns_input_names() -> None:
    t = DerivedFeatures(SPECS)
    assert t.fit(_frame()) is t
    assert list(t.feature_names_in_) == ["approved", "enrolled", "g1", "g2"]
    assert t.n_features_in_ == 4


def test_ratio_values() -> None:
    out = DerivedFeatures(SPECS).fit_transform(_frame())
    rate = out["rate"].to_numpy()
    assert rate[0] == pytest.approx(0.5)
    assert rate[1] == 0.0  # 0 / 0
    assert rate[2] == 0.0  # 2 / 0
    assert np.isnan(rate[3])  # numerator missing
    assert np.isnan(rate[4])  # denominator missing
    assert rate[5] == pytest.approx(1.0)


def test_difference_values() -> None:
    trend = DerivedFeatures(SPECS).fit_transform(_frame())["trend"].to_numpy()
    assert trend[0] == 2.0
    assert trend[1] == -1.0
    assert np.isnan(trend[2])
    assert np.isnan(trend[5])


def test_inputs_kept_and_derived_appended() -> None:
    frame = _frame()
    out = DerivedFeatures(SPECS).fit_transform(frame)
    assert list(out.columns) == ["approved", "enrolled", "g1", "g2", "rate", "trend"]
    pd.testing.assert_frame_equal(out[frame.columns], frame)
    assert list(frame.columns) == ["approved", "enrolled", "g1", "g2"]  # input untouched


def test_string_inputs_are_coerced() -> None:
    frame = pd.DataFrame({"approved": ["3", "x"], "enrolled": ["6", "2"], "g1": ["1", "1"], "g2": ["2", "2"]})
    out = DerivedFeatures(SPECS).fit_transform(frame)
    assert out["rate"].iloc[0] == pytest.approx(0.5)
    assert np.isnan(out["rate"].iloc[1])


def test_transform_reorders_to_fitted_columns() -> None:
    t = DerivedFeatures(SPECS).fit(_frame())
    shuffled = _frame()[["g2", "g1", "enrolled", "approved"]]
    out = t.transform(shuffled)
    assert list(out.columns) == ["approved", "enrolled", "g1", "g2", "rate", "trend"]


def test_feature_names_out() -> None:
    t = DerivedFeatures(SPECS).fit(_frame())
    assert list(t.get_feature_names_out()) == ["approved", "enrolled", "g1", "g2", "rate", "trend"]


def test_unknown_op_raises() -> None:
    with pytest.raises(ValueError, match="unknown derived-feature op 'product'"):
        DerivedFeatures([("p", "product", "g1", "g2")]).fit_transform(_frame())


def test_no_specs_is_identity() -> None:
    frame = _frame()
    pd.testing.assert_frame_equal(DerivedFeatures().fit_transform(frame), frame)


def test_clone_keeps_params() -> None:
    t = clone(DerivedFeatures(SPECS))
    assert list(t.specs) == SPECS
    assert not hasattr(t, "feature_names_in_")


def test_code_cleaner_makes_text_and_keeps_missing() -> None:
    frame = pd.DataFrame({"course": ["33", None, "171"], "mode": [1, 2, np.nan]})
    cleaner = CodeCleaner()
    assert cleaner.fit(frame) is cleaner
    out = cleaner.transform(frame)
    assert out["course"].tolist()[0] == "33"
    assert pd.isna(out["course"].iloc[1])
    assert isinstance(out["mode"].iloc[0], str)
    assert pd.isna(out["mode"].iloc[2])
    assert out.dtypes.eq(object).all()
    assert list(cleaner.get_feature_names_out()) == ["course", "mode"]
