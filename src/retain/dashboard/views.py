"""Pure shaping of API answers for the screen: readable labels, never raw codes or column names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from retain.data.spec import DatasetSpec

BAND_LABELS = {"low": "Low", "medium": "Medium", "high": "High"}
STAGE_WORDS = {
    "enrolment": "at enrolment, before any grades",
    "semester_1": "after the first semester",
    "semester_2": "after the second semester",
}


def stage_words(stage: str) -> str:
    """How early a warning was made, in words."""
    return STAGE_WORDS.get(stage, stage.replace("_", " "))


def programme_label(spec: DatasetSpec, code: str | None) -> str:
    """A programme's readable name (the code only when the spec has no label for it)."""
    if code is None:
        return "unknown"
    column = spec.programme_column
    if column is None:
        return str(code)
    return spec.column(column).readable(code)


def programme_options(spec: DatasetSpec) -> dict[str, str]:
    """Readable programme name -> code, for a filter."""
    column = spec.programme_column
    if column is None or not spec.column(column).codes:
        return {}
    codes = spec.column(column).codes or {}
    return {label: code for code, label in sorted(codes.items(), key=lambda kv: kv[1])}


def caseload_frame(spec: DatasetSpec, students: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The caseload as the screen shows it, ranked by risk (highest first)."""
    rows = []
    for s in students:
        change = s.get("change")
        rows.append(
            {
                "Student": s.get("name") or s.get("student_id") or "(no id)",
                "Student id": s.get("student_id"),
                "Risk": float(s["risk_score"]),
                "Band": BAND_LABELS.get(str(s["risk_band"]), str(s["risk_band"])),
                "Change": None if change is None else float(change),
                "Rising": bool(change is not None and change > 0.05),
                "Warning made": stage_words(str(s["stage"])),
                "Programme": programme_label(spec, s.get("programme")),
                "Cohort": s.get("cohort") or "",
                "Predicted": str(s.get("predicted_at", ""))[:10],
            }
        )
    frame = pd.DataFrame(rows, columns=[
        "Student", "Student id", "Risk", "Band", "Change", "Rising", "Warning made", "Programme",
        "Cohort", "Predicted",
    ])  # fmt: skip
    return frame.sort_values("Risk", ascending=False, kind="stable").reset_index(drop=True)


def worklist(frame: pd.DataFrame, capacity: int) -> pd.DataFrame:
    """An advisor's worklist: the ``capacity`` highest-risk students of the caseload."""
    return frame.head(max(0, capacity)).reset_index(drop=True)


def risk_trend(predictions: Sequence[dict[str, Any]], task: str) -> pd.DataFrame:
    """Risk over time for one task (one row per prediction)."""
    rows = [
        {
            "When": pd.Timestamp(p["created_at"]),
            "Risk": float(p["risk_score"]),
            "Stage": stage_words(p["stage"]),
        }
        for p in predictions
        if p.get("task") == task
    ]
    return pd.DataFrame(rows, columns=["When", "Risk", "Stage"])


def percent(value: float | None) -> str:
    return "unknown" if value is None else f"{100 * value:.0f}%"


def outcome_choices(spec: DatasetSpec, task: str) -> list[str]:
    """What an advisor may record as a task's real outcome (the target's readable classes)."""
    t = spec.task(task)
    if t.classes:
        return list(t.classes)
    target = spec.column_map.get(t.target)
    if target is not None and target.codes:
        return list(target.codes.values())
    return [t.adverse, t.negative_label] if t.adverse and t.negative_label else []


def fairness_frame(groups: Sequence[dict[str, Any]], spec: DatasetSpec) -> pd.DataFrame:
    """Group rates with readable column names."""
    rows = [
        {
            "Attribute": spec.column(g["feature"]).display
            if g["feature"] in spec.column_map
            else g["feature"],
            "Group": g["group"],
            "Period": g["period"],
            "Students": g["n"],
            "Adverse outcome rate": g["adverse_rate"],
            "Mean predicted risk": g.get("mean_risk"),
            "Flagged high": g["flagged_rate"],
            "Adverse outcomes caught": g["caught"],
            "False alarms": g["false_alarms"],
            "Missed (false negative rate)": None if g["caught"] is None else 1 - g["caught"],
        }
        for g in groups
    ]
    return pd.DataFrame(rows)


def model_frame(models: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Registered versions with their role and headline held-out metrics."""
    rows = []
    for m in models:
        metrics = m.get("metrics", {})
        aliases = m.get("aliases", [])
        rows.append(
            {
                "Model": m["name"],
                "Version": m["version"],
                "Role": "champion"
                if "champion" in aliases
                else ("previous champion" if "previous-champion" in aliases else "challenger"),
                "ROC AUC": metrics.get("test_roc_auc"),
                "Macro F1": metrics.get("test_macro_f1"),
                "RMSE": metrics.get("test_rmse"),
            }
        )
    return pd.DataFrame(rows, columns=["Model", "Version", "Role", "ROC AUC", "Macro F1", "RMSE"])
