"""Realistic mixed traffic for the Retain API (run it from its own venv; see loadtest/README.md).

Mix (task weights): single predictions 50, batches of 50 students 10, predictions with
explanations 15, what-ifs 10, caseload reads 10, one student's history 5, and an engagement
image upload 5 (tag ``vision``: leave it out with ``--exclude-tags vision`` on a server without
an engagement model). Students are synthetic
(``traffic.make_students``) and built once at startup; the API key comes from ``RETAIN_API_KEY``.
Any non-2xx answer counts as a failure in locust's statistics.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, tag, task

sys.path.insert(0, str(Path(__file__).resolve().parent))
import traffic

STUDENTS: list[traffic.Student] = []


@events.init.add_listener
def _build_students(environment: Any, **kwargs: Any) -> None:
    n = int(os.environ.get("RETAIN_LOADTEST_STUDENTS", "1000"))
    STUDENTS[:] = traffic.make_students(n, seed=int(os.environ.get("RETAIN_LOADTEST_SEED", "2024")))


class Advisor(HttpUser):
    """An advisor's screen and the jobs around it, all through the public API."""

    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        key = os.environ.get("RETAIN_API_KEY")
        if not key:
            raise RuntimeError("set RETAIN_API_KEY to an advisor or admin key (retain keys create ...)")
        self.client.headers["X-API-Key"] = key
        self.rng = random.Random()
        self.seen: list[str] = []  # student ids this user has scored, for history reads

    def _predict(self, body: dict[str, Any], name: str) -> None:
        with self.client.post(traffic.PREDICT_PATH, json=body, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            ids = [p["student_id"] for p in response.json()["predictions"]]
            self.seen = (self.seen + ids)[-200:]

    @task(50)
    def predict_one(self) -> None:
        self._predict(traffic.predict_body(STUDENTS, self.rng), "predict 1")

    @task(10)
    def predict_batch(self) -> None:
        self._predict(traffic.batch_body(STUDENTS, self.rng), f"predict {traffic.BATCH_SIZE}")

    @task(15)
    def predict_explained(self) -> None:
        self._predict(traffic.explain_body(STUDENTS, self.rng), "predict 1 explain")

    @task(10)
    def what_if(self) -> None:
        self.client.post(traffic.WHAT_IF_PATH, json=traffic.what_if_body(STUDENTS, self.rng), name="what-if")

    @task(10)
    def caseload(self) -> None:
        self.client.get(traffic.CASELOAD_PATH, params=traffic.caseload_params(self.rng), name="caseload")

    @task(5)
    def student(self) -> None:
        if not self.seen:  # nothing scored yet by this user: score one first
            self.predict_one()
            return
        self.client.get(traffic.student_path(self.rng.choice(self.seen)), name="student history")

    @tag("vision")
    @task(5)
    def engagement_image(self) -> None:
        self.client.post(
            traffic.ENGAGEMENT_PATH,
            data=traffic.frame_bytes(self.rng),
            headers={"Content-Type": "image/jpeg"},
            name="engagement image",
        )

