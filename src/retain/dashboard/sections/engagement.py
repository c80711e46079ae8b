"""Engagement (images): score one consented webcam frame, with the model's limits in plain view.

The page states the responsible-use rules before the upload, asks the user to confirm the
student's consent, and sends the image to the API once (nothing is stored, here or there).
"""

from __future__ import annotations

import streamlit as st

from retain.dashboard.client import ApiError
from retain.dashboard.context import Context

CAUTION = (
    "This model has **not** been shown to recognise engagement in people it has not seen: on its "
    "public training data, the room, the clothes and the camera predict the label as well as the face "
    "does (see the shortcut audit in docs/vision.md). Use a score only as a prompt for a conversation, "
    "never as the basis of a decision about a student."
)
CONSENT = "The student has opted in to webcam engagement scoring, with informed consent."


def render(ctx: Context) -> None:
    st.title("Engagement (images)")
    st.warning(CAUTION)
    consent = st.checkbox(CONSENT, key="engagement_consent")
    uploaded = st.file_uploader(
        "A webcam frame (JPEG or PNG)", type=["jpg", "jpeg", "png"], key="engagement_file"
    )
    if uploaded is None:
        st.caption("Images are scored in memory and discarded; none is stored.")
        return
    if not consent:
        st.error("Confirm the student's consent first; nothing was sent.")
        return
    content_type = "image/png" if uploaded.name.lower().endswith(".png") else "image/jpeg"
    try:
        result = ctx.api.engagement(uploaded.getvalue(), content_type)
    except ApiError as exc:
        st.error(f"The image was not scored: {exc.message}")
        return
    left, right = st.columns([1, 2])
    left.image(uploaded.getvalue(), caption="The frame (not stored)", use_container_width=True)
    probability = float(result["probability_not_engaged"])
    right.metric("P(not engaged)", f"{probability:.0%}")
    right.write(f"Reading: **{result['label']}** (model {result['model']} v{result['version']}).")
    right.caption("One frame is one moment on one camera; look at the student's record and talk with them.")
