"""Intervention impact: did flagged students who were helped do better than similar ones who were not?"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from retain.dashboard import views
from retain.dashboard.context import Context
from retain.dashboard.widgets import task_picker


def render(ctx: Context) -> None:
    spec = ctx.spec
    st.title("Intervention impact")
    task = task_picker(ctx, "Outcome of", "impact_task")
    report = ctx.api.intervention_impact(spec.name, task=task)
    if report["simulated"]:
        st.warning("These figures include simulated interventions (from `retain simulate`), not real ones.")
    st.caption(report["caution"])
    left, middle, right = st.columns(3)
    left.metric("Flagged students with an outcome", report["n_flagged"])
    middle.metric("Helped", report["n_helped"])
    right.metric("Not helped", report["n_other"])
    difference = report["difference"]
    if difference is None:
        st.info(
            "Too few helped or not-helped students with a recorded outcome to compare yet (30 of each needed)."
        )
        return
    low, high = report["ci_low"], report["ci_high"]
    direction = "fewer" if difference < 0 else "more"
    st.subheader(
        f"Helped students had {abs(100 * difference):.0f} percentage points {direction} adverse outcomes "
        f"than similar-risk students who were not helped"
    )
    if low is not None and high is not None:
        st.write(f"95% interval: {100 * low:+.0f} to {100 * high:+.0f} points (bootstrap over students).")
    strata = pd.DataFrame(
        [
            {
                "Risk at the time": f"{views.percent(s['low'])} to {views.percent(s['high'])}",
                "Helped": s["n_helped"],
                "Not helped": s["n_other"],
                "Adverse outcome rate, helped": s["adverse_helped"],
                "Adverse outcome rate, not helped": s["adverse_other"],
            }
            for s in report["strata"]
        ]
    )
    st.dataframe(strata, hide_index=True, width="stretch")
