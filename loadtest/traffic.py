"""Request bodies for the load test, importable without locust (the unit tests post one of each).

Students are synthetic (``retain.data.synth.synthesize`` on the ``dropout`` spec) without the
target and without semester-2 columns, so the API infers stage ``semester_1`` and the champion
``dropout.dropout.semester_1`` scores them. Every builder takes a ``random.Random`` so a run is
reproducible given the seed.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

DATASET = "dropout"
TASK = "dropout"
BATCH_SIZE = 50
# Actionable features of the semester-1 model whose what-if values are always valid (0/1 codes).
_FLAGS = ("tuition_fees_up_to_date", "scholarship_holder", "debtor")

Student = dict[str, Any]


def make_students(n: int = 1000, seed: int = 2024) -> list[Student]:
    """``n`` synthetic semester-1 students (JSON-ready: missing values are ``None``)."""
    import pandas as pd

    from retain.data.spec import load_spec
    from retain.data.synth import synthesize

    frame = synthesize(load_spec(DATASET), n, seed=seed).drop(columns=["target"])
    frame = frame[[c for c in frame.columns if not c.startswith("units_2nd")]]
    records = frame.to_dict(orient="records")
    return [{str(k): (None if pd.isna(v) else _plain(v)) for k, v in r.items()} for r in records]


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones (``json`` cannot encode ``np.int64``)."""
    return value.item() if hasattr(value, "item") else value


def predict_body(students: list[Student], rng: random.Random) -> dict[str, Any]:
    """One student, with an idempotency key (as an advisor's screen or the stream would send)."""
    return {
        "students": [rng.choice(students)],
        "task": TASK,
        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
    }


def batch_body(students: list[Student], rng: random.Random, size: int = BATCH_SIZE) -> dict[str, Any]:
    """A batch of ``size`` distinct students (a nightly job or a caseload refresh)."""
    return {"students": rng.sample(students, min(size, len(students))), "task": TASK}


def explain_body(students: list[Student], rng: random.Random) -> dict[str, Any]:
    """One student with the top reasons in plain words."""
    return {"students": [rng.choice(students)], "task": TASK, "explain": True, "top_k": 3}


def what_if_body(students: list[Student], rng: random.Random) -> dict[str, Any]:
    """One student and one or two changes to actionable features, with valid values."""
    student = rng.choice(students)
    changes: dict[str, int] = {rng.choice(_FLAGS): rng.randint(0, 1)}
    enrolled = student.get("units_1st_sem_enrolled")
    approved = student.get("units_1st_sem_approved")
    if rng.random() < 0.5 and enrolled is not None and approved is not None:
        changes["units_1st_sem_approved"] = int(min(enrolled, approved + 1))
    return {"student": student, "task": TASK, "changes": changes, "max_changes": 2}


def caseload_params(rng: random.Random) -> dict[str, Any]:
    """Query of the caseload page: top of the list, sometimes one band, sometimes rising risk."""
    params: dict[str, Any] = {"task": TASK, "limit": rng.choice([20, 50, 100])}
    if rng.random() < 0.5:
        params["band"] = rng.choice(["high", "medium"])
    if rng.random() < 0.2:
        params["rising"] = "true"
    return params


def student_path(student_id: str) -> str:
    """One student's history."""
    return f"/v1/{DATASET}/students/{student_id}"


PREDICT_PATH = f"/v1/{DATASET}/predict"
WHAT_IF_PATH = f"/v1/{DATASET}/what-if"
CASELOAD_PATH = f"/v1/{DATASET}/students"


ENGAGEMENT_PATH = "/v1/vision/engagement/predict"
#: Synthetic 640 x 360 webcam-like frames (drawn shapes, no person): the upload's size and decode
#: cost are realistic, the content is not (the model's accuracy is not what a load test measures).
FRAMES = sorted((Path(__file__).resolve().parent / "frames").glob("*.jpg"))


def frame_bytes(rng: random.Random) -> bytes:
    """The JPEG bytes of one of the bundled synthetic frames."""
    return rng.choice(FRAMES).read_bytes()

