"""Controls several pages share."""

from __future__ import annotations

import streamlit as st

from retain.dashboard.context import Context


def task_picker(ctx: Context, label: str, key: str) -> str:
    """Choose a task by its description; opens on the first task that has scored students."""
    spec = ctx.spec
    names = {t.description or t.name: t.name for t in spec.tasks}
    scored = [
        text for text, name in names.items() if ctx.api.caseload(spec.name, task=name, limit=1)["total"]
    ]
    default = list(names).index(scored[0]) if scored else 0
    return names[st.selectbox(label, list(names), index=default, key=key)]
