"""Upload: score a CSV of students; problems shown by row and column; results downloadable."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from retain.dashboard import views
from retain.dashboard.client import ApiError
from retain.dashboard.context import Context
from retain.dashboard.widgets import task_picker


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    clean = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in clean.to_dict(orient="records")]


def render(ctx: Context) -> None:
    spec = ctx.spec
    st.title("Score a file")
    st.caption(
        "A CSV with one student per row and the columns of the dataset (names as in the data dictionary)."
    )
    task = task_picker(ctx, "Risk of", "upload_task")
    uploaded = st.file_uploader("Students (CSV)", type=["csv"], key="upload_file")
    if uploaded is None:
        return
    try:
        from retain.data.load import canonicalize, read_csv_text

        frame = canonicalize(read_csv_text(uploaded.getvalue().decode("utf-8-sig")), spec)
    except (UnicodeDecodeError, ValueError) as exc:
        st.error(f"The file cannot be read: {exc}")
        return
    if frame.empty:
        st.error("The file has no rows.")
        return
    batch = ctx.settings.api_max_batch
    results: list[dict[str, object]] = []
    records = _records(frame)
    try:
        for start in range(0, len(records), batch):
            results += ctx.api.predict(spec.name, records[start : start + batch], task=task)
    except ApiError as exc:
        st.error("The file does not match the dataset; nothing was scored past the first problem batch.")
        if isinstance(exc.detail, list):
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "Column": d.get("field"),
                            "Problem": d.get("problem"),
                            "Rows": ", ".join(str(start + r) for r in d.get("students", [])[:20]),
                            "Found": ", ".join(map(str, d.get("found", [])[:5])),
                            "Expected": d.get("expected", ""),
                        }
                        for d in exc.detail
                        if isinstance(d, dict)
                    ]
                ),
                hide_index=True,
            )
        else:
            st.write(exc.message)
        return
    out = pd.DataFrame(
        {
            "Student id": [r["student_id"] for r in results],
            "Risk": [r["risk_score"] for r in results],
            "Band": [views.BAND_LABELS.get(str(r["risk_band"]), r["risk_band"]) for r in results],
            "Warning made": [views.stage_words(str(r["stage"])) for r in results],
        }
    )
    st.success(f"Scored {len(out)} students.")
    st.dataframe(out, hide_index=True, width="stretch")
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    st.download_button(
        "Download the results (CSV)", buffer.getvalue().encode(), file_name=f"risk-{spec.name}.csv"
    )
