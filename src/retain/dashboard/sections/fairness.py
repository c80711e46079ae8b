"""Fairness: how each protected group fares under the champion, from recorded outcomes."""

from __future__ import annotations

import streamlit as st

from retain.dashboard import views
from retain.dashboard.context import Context
from retain.dashboard.widgets import task_picker


def render(ctx: Context) -> None:
    spec = ctx.spec
    st.title("Fairness")
    task = task_picker(ctx, "Risk of", "fairness_task")
    report = ctx.api.fairness(spec.name, task=task, period="Y")
    frame = views.fairness_frame(report["groups"], spec)
    if frame.empty:
        st.info(
            "No group is large enough yet: rates appear once outcomes are recorded for 20+ students per group."
        )
        return
    st.caption(
        "Flagged high: share of the group the model puts in the high band. Adverse outcomes caught: of the "
        "students who did drop out or fail, the share flagged (equal opportunity). Mean predicted risk "
        "against the adverse outcome rate shows whether the model is calibrated for the group. A gap over "
        f"{ctx.settings.fairness_max_gap:.0%} between groups is highlighted."
    )
    for alert in report["alerts"]:
        st.error(alert)
    for gap in report["gaps"]:
        label = spec.column(gap["feature"]).display if gap["feature"] in spec.column_map else gap["feature"]
        caught = gap.get("caught_gap")
        text = (
            f"{label} ({gap['period']}): caught gap {views.percent(caught)} "
            f"(lowest {gap.get('caught_lowest')}, highest {gap.get('caught_highest')})"
            if caught is not None
            else f"{label} ({gap['period']}): too few adverse outcomes per group to compare"
        )
        (st.warning if gap["over_limit"] else st.write)(text)
    st.dataframe(frame, hide_index=True, width="stretch")
    chart = frame.dropna(subset=["Adverse outcomes caught"])
    if not chart.empty:
        st.bar_chart(chart, x="Group", y="Adverse outcomes caught", color="Attribute", stack=False)
