"""Models and operations (admin): health, versions, drift, decisions, retrain, promote, rollback."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from retain.dashboard import views
from retain.dashboard.client import ApiError
from retain.dashboard.context import Context


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return (
        f"{hours // 24} d {hours % 24} h"
        if hours >= 24
        else (f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min")
    )


def _when(stamp: str | None) -> str:
    return "never" if stamp is None else stamp[:16].replace("T", " ") + " UTC"


def render(ctx: Context) -> None:
    spec = ctx.spec
    st.title("Models and operations")
    health = ctx.api.health()
    ready = health["ready"]
    left, middle, right, fourth = st.columns(4)
    live = health["live"]
    left.metric("API", "up" if live.get("status") == "ok" else "down", help=f"version {live.get('version')}")
    middle.metric("Uptime", _duration(float(live.get("uptime_s", 0.0))))
    right.metric("Ready", "yes" if ready.get("ready") else "no")
    fourth.metric("Database", "reachable" if ready.get("database") else "unreachable")
    activity = ctx.api.activity(spec.name)
    st.subheader("Activity")
    st.write(
        f"Last scoring: {_when(activity['last_prediction_at'])} "
        f"({activity['predictions_since']} predictions in the last 24 hours, API, stream and batch). "
        f"Last outcome recorded: {_when(activity['last_outcome_at'])}. "
        f"Last drift check: {_when(activity['last_drift_check_at'])}. "
        f"Last gate decision: {_when(activity['last_decision_at'])}."
    )
    shards = activity["stream_checkpoints"]
    if shards:
        st.caption("Stream workers (their last checkpoint per shard):")
        st.dataframe(pd.DataFrame(shards), hide_index=True)
    else:
        st.caption(
            "No stream worker has checkpointed (Redis Streams acknowledge in Redis; Kinesis shards appear here)."
        )
    models = [m for m in ctx.api.models() if m["name"].startswith(f"{spec.name}.")]
    frame = views.model_frame(models)
    st.subheader("Versions")
    st.dataframe(frame, hide_index=True, width="stretch")
    drift = ctx.api.drift_history(spec.name, limit=20)
    st.subheader("Drift")
    if drift:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Checked": d["at"][:16].replace("T", " "),
                        "Model": d["model_name"],
                        "Window": d["window"],
                        "Predictions": d["n_current"],
                        "Share drifted": d["share_drifted"],
                        "Drifted features": ", ".join(
                            spec.column(f).display if f in spec.column_map else f for f in d["drifted"]
                        ),
                        "Prediction drift": d["prediction_drift"],
                    }
                    for d in drift
                ]
            ),
            hide_index=True,
        )
    else:
        st.write("No drift check yet (`retain flows run monitor` or the monitoring API).")
    st.subheader("Gate decisions")
    decisions = ctx.api.decisions(spec.name, limit=10)
    if not decisions:
        st.write("No decision yet: one is recorded at every retrain, promotion or override.")
    if decisions:
        last = decisions[0]
        verdict = "promoted" if last["promoted"] else "kept the champion"
        st.info(
            f"Last decision ({last['at'][:16].replace('T', ' ')}, {last['kind']} of {last['model_name']}): {verdict}. {last['reason']}"
        )
    names = sorted({m["name"] for m in models})
    if not names:
        return
    st.subheader("Act on a model")
    name = st.selectbox("Model", names, key="ops_model")
    left, middle, right = st.columns(3)
    if left.button("Retrain from new outcomes", key="ops_retrain"):
        try:
            started = ctx.api.retrain(name)
            st.session_state["ops_job"] = started["job"]["id"]
        except ApiError as exc:
            st.error(exc.message)
    versions = sorted({int(m["version"]) for m in models if m["name"] == name}, reverse=True)
    version = middle.selectbox("Version", versions, key="ops_version")
    if middle.button("Promote through the gate", key="ops_promote"):
        try:
            decision = ctx.api.promote(name, int(version))
            st.write(decision["reason"])
        except ApiError as exc:
            st.error(exc.message)
    if right.button("Roll back", key="ops_rollback"):
        try:
            st.write(f"champion is now version {ctx.api.rollback(name)['champion']}")
        except ApiError as exc:
            st.error(exc.message)
    job_id = st.session_state.get("ops_job")
    if job_id:
        job = ctx.api.job(job_id)
        st.write(f"Retrain job {job_id[:8]}: {job['status']}")
        if job["status"] == "succeeded":
            st.write(job["result"]["reason"])
        elif job["status"] == "failed":
            st.error(job["error"])
        elif st.button("Refresh", key="ops_refresh"):
            time.sleep(0.1)
            st.rerun()
