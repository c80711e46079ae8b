"""The dashboard's pages: each a ``render(context)`` function. (Not named ``pages``: Streamlit
would take a ``pages`` folder next to the entry script for pages of its own.)"""

from __future__ import annotations

from collections.abc import Callable

from retain.dashboard.context import Context
from retain.dashboard.sections import (
    caseload,
    engagement,
    fairness,
    impact,
    insights,
    operations,
    student,
    upload,
)

Page = Callable[[Context], None]

PAGES: dict[str, Page] = {
    "Caseload": caseload.render,
    "Student": student.render,
    "Upload": upload.render,
    "Insights": insights.render,
    "Fairness": fairness.render,
    "Intervention impact": impact.render,
    "Engagement (images)": engagement.render,
}
ADMIN_PAGES: dict[str, Page] = {"Models and operations": operations.render}
