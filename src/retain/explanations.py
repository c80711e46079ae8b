"""Why a student is at risk, in plain words: per-student contributions turned into reasons.

Contributions come from the model itself where it can give them exactly and fast (LightGBM and
XGBoost TreeSHAP via ``pred_contrib``; linear models as coefficient times standardised value),
with shap's explainers as the fallback. They are summed back to the spec's raw columns (one-hot
codes to their column) and derived features, then the largest become reasons with readable values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from retain.data.spec import DatasetSpec
from retain.features.build import raw_column_of
from retain.training.artifact import RiskModel


@dataclass(frozen=True)
class Reason:
    """One reason behind a student's risk."""

    feature: str
    label: str
    value: str
    contribution: float
    direction: str
    text: str

    def to_dict(self) -> dict[str, object]:
        return {
            "feature": self.feature,
            "label": self.label,
            "value": self.value,
            "contribution": round(self.contribution, 4),
            "direction": self.direction,
            "text": self.text,
        }


def _transformed(model: RiskModel, frame: pd.DataFrame) -> pd.DataFrame:
    prep = model.pipeline.named_steps["prep"]
    return prep.transform(frame.reindex(columns=model.features))


def _native_contributions(model: RiskModel, Xt: pd.DataFrame | np.ndarray) -> np.ndarray | None:
    """(n, f) contributions to the model output for the adverse class (or the value)."""
    estimator = model.pipeline.named_steps["model"]
    n, f = Xt.shape
    name = type(estimator).__name__
    if name.startswith("LGBM"):
        raw = np.asarray(
            estimator.booster_.predict(np.asarray(Xt, dtype=float), pred_contrib=True), dtype=float
        )
        if raw.shape[1] == f + 1:
            return raw[:, :f]
        k = raw.shape[1] // (f + 1)
        block = raw.reshape(n, k, f + 1)
        return block[:, model.adverse_index, :f]
    if name.startswith("XGB"):
        import xgboost

        raw = np.asarray(
            estimator.get_booster().predict(xgboost.DMatrix(Xt), pred_contribs=True), dtype=float
        )
        if raw.ndim == 3:
            return raw[:, model.adverse_index, :f]
        return raw[:, :f]
    if hasattr(estimator, "coef_"):
        coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=float))
        row = coef[model.adverse_index] if coef.shape[0] > 1 else coef[0]
        values = np.asarray(Xt, dtype=float)
        centre = np.asarray(getattr(model, "meta", {}).get("feature_means", np.zeros(f)), dtype=float)
        if centre.shape != (f,):
            centre = np.zeros(f)
        return (values - centre) * row
    return None


def contributions(
    model: RiskModel,
    frame: pd.DataFrame,
    matrix: np.ndarray | None = None,
    names: list[str] | None = None,
) -> pd.DataFrame:
    """Signed contributions per raw feature (and derived feature) for each row of ``frame``.

    Positive values raise the model output: the adverse class's score for classification, the
    predicted value for regression. ``matrix``/``names``: the already transformed features (the
    fast path's), which saves transforming ``frame`` again.
    """
    Xt: pd.DataFrame | np.ndarray
    if matrix is None or names is None:
        transformed = _transformed(model, frame)
        names = [str(c) for c in transformed.columns]
        Xt = transformed
    else:
        Xt = matrix
    values = _native_contributions(model, Xt)
    if values is None:
        from retain.evaluation.explain import local_contributions

        return local_contributions(model.pipeline, frame.reindex(columns=model.features), model.adverse_index)
    targets = [*model.features]
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        prefix, _, remainder = name.partition("__")
        key = remainder if prefix == "derived" else raw_column_of(name, targets)
        out[key] = out.get(key, np.zeros(len(frame))) + values[:, j]
    return pd.DataFrame(out, index=frame.index)


def _readable(spec: DatasetSpec, feature: str, row: pd.Series) -> tuple[str, str]:
    """(label, readable value) of a raw or derived feature for one student."""
    derived = {d.name: d for d in spec.derived}
    if feature in derived:
        d = derived[feature]
        a, b = row.get(d.a), row.get(d.b)
        label = d.label or feature.replace("_", " ")
        if d.op == "ratio" and pd.notna(a) and pd.notna(b):
            return label, f"{spec.column(d.a).readable(a)} of {spec.column(d.b).readable(b)}"
        if pd.notna(a) and pd.notna(b):
            return label, f"{float(a) - float(b):+.1f}"
        return label, "unknown"
    if feature in spec.column_map:
        col = spec.column(feature)
        value = row.get(feature)
        return col.display, ("missing" if value is None or pd.isna(value) else col.readable(value))
    return feature.replace("_", " "), ""


def reasons(
    spec: DatasetSpec,
    model: RiskModel,
    frame: pd.DataFrame,
    top_k: int = 3,
    matrix: np.ndarray | None = None,
    names: list[str] | None = None,
) -> list[list[Reason]]:
    """The ``top_k`` reasons per student (largest absolute contributions), in plain words."""
    table = contributions(model, frame, matrix, names)
    risk_sign = 1.0 if model.is_classification else -1.0  # a higher value means a lower risk
    out: list[list[Reason]] = []
    for position in range(len(frame)):
        row = frame.iloc[position]
        contrib = table.iloc[position]
        order = np.argsort(-np.abs(contrib.to_numpy()))[:top_k]
        found: list[Reason] = []
        for idx in order:
            feature = str(contrib.index[idx])
            value = float(contrib.iloc[idx])
            if value == 0.0:
                continue
            effect = risk_sign * value
            direction = "raises risk" if effect > 0 else "lowers risk"
            label, readable = _readable(spec, feature, row)
            text = f"{label}: {readable} ({direction})" if readable else f"{label} ({direction})"
            found.append(Reason(feature, label, readable, effect, direction, text))
        out.append(found)
    return out
