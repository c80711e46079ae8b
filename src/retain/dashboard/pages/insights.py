"""Insights: distributions, outcome rates by group and group comparisons (retain.insights)."""

from __future__ import annotations

import streamlit as st

from retain.dashboard.context import Context


def render(ctx: Context) -> None:
    st.title("Insights")
    st.info("Group comparisons of the example data are being added (see `retain report eda`).")
