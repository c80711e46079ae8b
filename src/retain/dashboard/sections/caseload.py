"""Caseload: students ranked by risk, filtered, with a worklist sized to the advisor's capacity."""

from __future__ import annotations

import streamlit as st

from retain.dashboard import views
from retain.dashboard.context import Context
from retain.dashboard.widgets import task_picker


def render(ctx: Context) -> None:
    spec = ctx.spec
    st.title("Caseload")
    st.caption(f"{spec.title}: students ranked by their latest risk.")
    left, middle, right = st.columns(3)
    with left:
        task = task_picker(ctx, "Risk of", "caseload_task")
    bands = middle.multiselect("Band", list(views.BAND_LABELS.values()), key="caseload_bands")
    stages = {views.stage_words(s): s for s in spec.task(task).stages}
    stage_label = right.selectbox("Warning made", ["any time", *stages], key="caseload_stage")
    left, middle, right = st.columns(3)
    programmes = views.programme_options(spec)
    programme = left.selectbox("Programme", ["all", *programmes], key="caseload_programme")
    cohort = middle.text_input("Cohort", key="caseload_cohort")
    rising = right.checkbox("Only rising risk", key="caseload_rising")
    capacity = st.number_input(
        "How many students can you see this term?",
        min_value=1,
        max_value=1000,
        value=40,
        key="caseload_capacity",
    )
    by_label = {label: band for band, label in views.BAND_LABELS.items()}
    page = ctx.api.caseload(
        spec.name,
        task=task,
        band=[by_label[b] for b in bands],
        stage=stages.get(stage_label),
        programme=programmes.get(programme),
        cohort=cohort or None,
        rising=rising or None,
        limit=int(capacity),
    )
    frame = views.caseload_frame(spec, page["students"])
    if frame.empty:
        st.info("No students match. Predictions appear here once students are scored.")
        return
    st.subheader(f"Your {len(frame)} highest-risk students (of {page['total']})")
    st.dataframe(
        frame.drop(columns=["Student id"]),
        hide_index=True,
        width="stretch",
        column_config={
            "Risk": st.column_config.ProgressColumn("Risk", min_value=0.0, max_value=1.0, format="percent"),
            "Change": st.column_config.NumberColumn("Change", format="%+.2f"),
            "Rising": st.column_config.CheckboxColumn("Rising"),
        },
    )
    st.download_button(
        "Download the worklist (CSV)",
        frame.to_csv(index=False).encode("utf-8"),
        file_name=f"worklist-{spec.name}.csv",
        mime="text/csv",
    )
    ids = [str(i) for i in frame["Student id"] if i]
    if ids:
        chosen = st.selectbox("Open a student", ids, key="caseload_open")
        if st.button("Open student", key="caseload_open_button"):
            st.session_state["student_id"] = chosen
            st.session_state["retain_goto"] = "Student"
            st.rerun()
