"""Insights: distributions, outcome rates by group and corrected group comparisons.

The same content as ``retain report eda`` (``retain.insights``), on the dataset's file in the data
folder (or the demo's synthetic students): what the institution's data says, not the model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from retain.dashboard.context import Context
from retain.data.spec import DatasetSpec
from retain.insights.eda import EdaReport


def data_file(ctx: Context) -> Path | None:
    """The dataset's file in the data folder, else the demo's synthetic students, else ``None``."""
    spec = ctx.spec
    for path in (
        ctx.settings.data_dir / spec.source.file,
        ctx.settings.home / "synthetic" / f"{spec.name}.csv",
    ):
        if path.exists():
            return path
    return None


@st.cache_data(show_spinner="Comparing groups...", max_entries=8)
def _report(dataset: str, path: str, modified: float) -> EdaReport:
    from retain.data.load import load_raw
    from retain.data.spec import load_spec
    from retain.data.validate import validate_frame
    from retain.insights.eda import build_eda

    spec: DatasetSpec = load_spec(dataset)
    raw = load_raw(spec, Path(path))
    typed, _ = validate_frame(raw, spec, required=[c.name for c in spec.columns if c.name in raw.columns])
    return build_eda(typed, spec, source=Path(path).name)


def _table(report: EdaReport, protected: bool) -> pd.DataFrame:
    frame = report.comparisons_frame()
    if frame.empty:
        return frame
    frame = frame[frame["section"] == ("protected" if protected else "general")]
    return frame.rename(
        columns={
            "outcome": "Outcome", "group": "Compared by", "test": "Test", "p_adjusted": "Adjusted p",
            "effect_name": "Effect size", "effect": "Effect", "magnitude": "Magnitude", "n": "Students",
            "sentence": "In words",
        }
    )[["Outcome", "Compared by", "Test", "Adjusted p", "Effect size", "Effect", "Magnitude", "Students", "In words"]]  # fmt: skip


def render(ctx: Context) -> None:
    from retain.insights.report import plot_comparison

    st.title("Insights")
    path = data_file(ctx)
    if path is None:
        st.info(
            f"No data file for {ctx.spec.title} in {ctx.settings.data_dir}: "
            f"`retain data download {ctx.spec.name}` fetches the public example."
        )
        return
    report = _report(ctx.spec.name, str(path), path.stat().st_mtime)
    st.caption(
        f"{report.n_rows} students in {path.name}. Tests: Welch t-test, Welch ANOVA or Kruskal-Wallis, "
        "chi-square; p-values corrected for the number of comparisons (Holm). Associations, not causes."
    )
    findings = report.findings(False)
    st.subheader(f"{len(findings)} differences that hold after correction")
    for c in findings[:8]:
        st.markdown(f"- {c.sentence}")
    for c in findings[:3]:
        st.pyplot(plot_comparison(c), clear_figure=True)
    st.subheader("Every comparison")
    st.dataframe(_table(report, protected=False), hide_index=True, width="stretch")
    st.subheader("By protected attributes")
    st.caption("Described for fairness; these are not levers to act on.")
    for c in report.findings(True)[:5]:
        st.markdown(f"- {c.sentence}")
    st.dataframe(_table(report, protected=True), hide_index=True, width="stretch")
