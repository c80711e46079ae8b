"""Assemble a model card for a trained stage: metrics, baselines, fairness, importance, plots."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from retain.data.spec import DatasetSpec, Task
from retain.evaluation.explain import permutation_importance_table, shap_importance_table
from retain.evaluation.fairness import bin_protected, fairness_gaps, group_metrics
from retain.evaluation.report import ModelCard, render_model_card
from retain.training.artifact import RiskModel

log = logging.getLogger(__name__)


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) else 0


def _thresholds_text(task: Task, model: RiskModel) -> str:
    medium, high = model.band_cutoffs
    objective = task.objective
    if objective.kind == "recall":
        why = f"the high band catches {objective.recall:.0%} of adverse outcomes in cross-validation"
    else:
        why = (
            f"advisor capacity: the top {objective.high_fraction:.0%} of students are high risk and the next "
            f"{objective.medium_fraction:.0%} medium, on cross-validated scores"
        )
    text = f"Risk = P({task.adverse or 'below pass mark'}). Bands: high >= {high:.3f}, medium >= {medium:.3f}; {why}."
    if model.class_weights:
        weights = ", ".join(
            f"{label} x{w:.2f}" for label, w in zip(model.labels, model.class_weights, strict=True)
        )
        text += f" Predicted class = argmax of probabilities weighted ({weights}) to maximise cross-validated macro-F1."
    return text


def _adverse_truth(task: Task, model: RiskModel, y: np.ndarray) -> np.ndarray:
    if task.is_classification:
        return (y == model.adverse_index).astype(int)
    return (y < (task.pass_mark or 0)).astype(int)


def fairness_tables(
    spec: DatasetSpec, task: Task, model: RiskModel, X: pd.DataFrame, y: np.ndarray
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Per-group rates on held-out rows for the spec's protected attributes."""
    protected = [c for c in spec.protected if c in X.columns]
    if not protected:
        return None, None
    scores = model.score(X)
    flagged = (scores.band == "high").astype(int)
    groups = bin_protected(X[protected].reset_index(drop=True), spec)
    table = group_metrics(_adverse_truth(task, model, y), scores.risk, flagged, groups)
    return table, fairness_gaps(table)


def importance_table(
    task: Task, model: RiskModel, X: pd.DataFrame, y: np.ndarray, seed: int
) -> tuple[pd.DataFrame, str]:
    """Mean |SHAP| per raw feature; permutation importance where SHAP cannot run."""
    inputs = X.reindex(columns=list(model.features))
    try:
        return shap_importance_table(
            model.pipeline, inputs, max_rows=400, seed=seed
        ), "mean |SHAP| on held-out rows (permutation importance: importance_permutation.csv)"
    except Exception as exc:  # SHAP does not support every estimator; fall back honestly
        log.info("SHAP failed (%s); using permutation importance", exc)
    scoring = ("roc_auc" if not task.is_multiclass else "neg_log_loss") if task.is_classification else "r2"
    table = permutation_importance_table(model.pipeline, inputs, y, scoring=scoring, n_repeats=3, seed=seed)
    return table, f"permutation importance ({scoring}) on held-out rows"


def permutation_table(
    task: Task, model: RiskModel, X: pd.DataFrame, y: np.ndarray, seed: int
) -> pd.DataFrame:
    """Permutation importance of raw features on held-out rows (drop in the task's score)."""
    inputs = X.reindex(columns=list(model.features))
    scoring = ("roc_auc" if not task.is_multiclass else "neg_log_loss") if task.is_classification else "r2"
    table = permutation_importance_table(model.pipeline, inputs, y, scoring=scoring, n_repeats=3, seed=seed)
    return table.assign(scoring=scoring)


def write_model_card(
    spec: DatasetSpec,
    task: Task,
    result: object,
    model: RiskModel,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    out_dir: Path,
    commit: str,
    importance: bool = True,
) -> dict[str, Path]:
    """Render the Markdown and HTML card (with plots) of a trained stage into ``out_dir``."""
    from retain.training.train import StageResult

    assert isinstance(result, StageResult)
    labels = {c.name: c.display for c in spec.columns}
    labels.update({d.name: d.label or d.name for d in spec.derived})
    fairness, gaps = fairness_tables(spec, task, model, X_test, y_test)
    imp, method = (
        importance_table(task, model, X_test, y_test, _int(model.meta.get("seed", 42)))
        if importance
        else (None, "")
    )
    protected = {spec.column(c).display: spec.column(c).is_feature_candidate for c in spec.protected}
    proba = model.predict_proba(X_test) if task.is_classification else None
    card = ModelCard(
        model_name=result.model_name,
        dataset_title=spec.title,
        task_name=task.name,
        task_description=task.description,
        task_type="classification" if task.is_classification else "regression",
        stage=result.stage,
        features=[labels.get(f, f) for f in model.features],
        protected_attributes=protected,
        data_version=str(model.meta.get("data_hash", "")),
        git_commit=commit,
        seed=_int(model.meta.get("seed", 42)),
        training_rows=result.n_train,
        evaluation_rows=result.n_test,
        evaluation_method=(
            f"{_int(model.meta.get('cv_folds', 5))}-fold stratified cross-validation on the training part; "
            f"metrics below on a stratified {result.n_test}-row hold-out the model never saw"
        ),
        metrics=result.test_metrics,
        labels=list(task.labels),
        y_true=y_test,
        proba=proba,
        y_pred=None if task.is_classification else model.predict_value(X_test),
        baselines={
            "cross-validated " + result.kind: result.cv_metrics,
            **{f"cross-validated {k}": v for k, v in result.baselines.items()},
        },
        thresholds=_thresholds_text(task, model),
        fairness=fairness,
        fairness_gaps=gaps,
        importance=imp,
        importance_method=method,
        feature_labels=labels,
        limitations=(
            "Trained on one institution's historical records; patterns may not transfer to other "
            "institutions, programmes or years without retraining and monitoring. Features known only "
            "after the stage named above are not used."
        ),
    )
    paths = render_model_card(card, out_dir)
    if importance and imp is not None:
        imp.to_csv(out_dir / "importance_shap.csv", index=False)
        perm = permutation_table(task, model, X_test, y_test, _int(model.meta.get("seed", 42)))
        perm.to_csv(out_dir / "importance_permutation.csv", index=False)
        paths["importance_permutation"] = out_dir / "importance_permutation.csv"
    return paths
