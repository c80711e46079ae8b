"""Student: risk, how early, trend, reasons, what-if, suggested interventions, and the forms."""

from __future__ import annotations

from typing import Any

import streamlit as st

from retain.dashboard import views
from retain.dashboard.client import ApiError
from retain.dashboard.context import Context
from retain.palette import BAND_COLOURS


def _what_if(ctx: Context, explanation: dict[str, Any]) -> None:
    features = explanation["features"]
    actionable = [f for f in features if f["actionable"]]
    if not actionable:
        return
    st.subheader("What if")
    st.caption("Change what the student or the institution can act on, and see the new risk.")
    changes: dict[str, Any] = {}
    columns = st.columns(min(3, len(actionable)))
    for position, f in enumerate(actionable):
        slot = columns[position % len(columns)]
        key = f"whatif_{f['name']}"
        if f["type"] == "boolean":
            on = bool(f["value"]) if f["value"] is not None else False
            value: Any = int(slot.toggle(f["label"], value=on, key=key))
        elif f.get("codes"):
            labels = list(f["codes"].values())
            codes = list(f["codes"])
            index = codes.index(str(f["value"])) if str(f["value"]) in codes else 0
            value = codes[labels.index(slot.selectbox(f["label"], labels, index=index, key=key))]
        else:
            low, high = f.get("min"), f.get("max")
            current = float(f["value"]) if f["value"] is not None else float(low or 0)
            value = slot.number_input(
                f["label"],
                value=current,
                min_value=float(low) if low is not None else None,
                max_value=float(high) if high is not None else None,
                key=key,
            )
        if value != f["value"]:
            changes[f["name"]] = value
    if st.button("Recompute risk", key="whatif_go"):
        record = {f["name"]: f["value"] for f in features}
        record[ctx.spec.id.column] = explanation["student_id"]
        try:
            result = ctx.api.what_if(
                ctx.spec.name, record, changes, task=explanation["task"], stage=explanation["stage"]
            )
        except ApiError as exc:
            st.error(exc.message)
            return
        before, after = result["before"], result["after"]
        st.metric(
            "Risk with these changes",
            views.percent(after["risk_score"]),
            delta=f"{100 * (after['risk_score'] - before['risk_score']):+.0f} points",
            delta_color="inverse",
        )
        for option in result.get("counterfactuals", []):
            st.write(f"- {option.get('text') or option}")


def _forms(ctx: Context, explanation: dict[str, Any]) -> None:
    sid = explanation["student_id"]
    st.subheader("Log what happened")
    left, right = st.columns(2)
    with left.form("intervention"):
        st.markdown("**An intervention**")
        suggested = [s["type"] for s in explanation["suggestions"]]
        catalogue = [t for t in ctx.settings.intervention_types]
        order = suggested + [t for t in catalogue if t not in suggested]
        kind = st.selectbox("Type", order, key="intervention_type")
        note = st.text_area("Note", key="intervention_note", max_chars=4000)
        if st.form_submit_button("Log intervention"):
            ctx.api.log_intervention(ctx.spec.name, sid, kind, note)
            st.success(f"Logged: {kind}")
    with right.form("outcome"):
        st.markdown("**The real outcome**")
        choices = views.outcome_choices(ctx.spec, explanation["task"])
        outcome = st.selectbox("Outcome", choices, key="outcome_value")
        if st.form_submit_button("Record outcome"):
            ctx.api.record_outcome(ctx.spec.name, sid, outcome, explanation["task"])
            st.success(f"Recorded: {outcome}")
    with st.form("feedback"):
        reason = st.text_input("Why is this prediction not useful?", key="feedback_reason")
        if st.form_submit_button("This prediction is not useful") and reason:
            ctx.api.feedback(ctx.spec.name, explanation["prediction"]["id"], reason)
            st.success("Thank you: your feedback is stored with the prediction.")


def render(ctx: Context) -> None:
    st.title("Student")
    sid = st.text_input("Student id", value=st.session_state.get("student_id", ""), key="student_lookup")
    if not sid:
        st.info("Open a student from the caseload, or type a student id.")
        return
    st.session_state["student_id"] = sid
    try:
        history = ctx.api.student(ctx.spec.name, sid)
        explanation = ctx.api.explanation(ctx.spec.name, sid)
    except ApiError as exc:
        st.warning(exc.message if exc.status == 404 else f"{exc.status}: {exc.message}")
        return
    name = history.get("name") or sid
    current = explanation["current"]
    band = current["risk_band"]
    st.header(name)
    left, middle, right = st.columns(3)
    left.metric("Risk now", views.percent(current["risk_score"]))
    middle.markdown(
        f"<span style='background:{BAND_COLOURS.get(band, '#777')};color:white;"
        f"padding:0.3em 0.8em;border-radius:1em'>{views.BAND_LABELS.get(band, band)} risk</span>",
        unsafe_allow_html=True,
    )
    right.write(f"Warning made {views.stage_words(explanation['stage'])}")
    trend = views.risk_trend(history["predictions"], explanation["task"])
    if len(trend) > 1:
        st.line_chart(trend, x="When", y="Risk")
    st.subheader("Why")
    for reason in explanation["reasons"]:
        marker = ":red[raises]" if reason["direction"] == "raises risk" else ":blue[lowers]"
        st.markdown(f"- {reason['label']}: **{reason['value']}** ({marker} risk)")
    if explanation["suggestions"]:
        st.subheader("Suggested interventions")
        for s in explanation["suggestions"]:
            addressed = "; ".join(r.rsplit(" (", 1)[0] for r in s["reasons"])
            st.markdown(f"- **{s['type'].capitalize()}**: {s['description']} *(addresses {addressed})*")
    _what_if(ctx, explanation)
    _forms(ctx, explanation)
    if history["interventions"] or history["outcomes"]:
        st.subheader("History")
        for item in history["interventions"]:
            st.write(
                f"{item['at'][:10]}: {item['type']}" + (f" ({item['note']})" if item.get("note") else "")
            )
        for item in history["outcomes"]:
            st.write(f"{item['recorded_at'][:10]}: outcome {item['outcome']}")
