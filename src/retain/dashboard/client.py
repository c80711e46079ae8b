"""A typed client of the Retain API: the dashboard's only way to data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx


class ApiError(Exception):
    """An answer other than 2xx, with the API's own message."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{status}: {self.message}")

    @property
    def message(self) -> str:
        """The detail as one readable line (field problems joined)."""
        if isinstance(self.detail, list):
            parts = []
            for item in self.detail:
                if isinstance(item, dict):
                    where = item.get("field", "")
                    rows = item.get("students")
                    at = f" (rows {', '.join(map(str, rows[:10]))})" if rows else ""
                    parts.append(f"{where}: {item.get('problem', '')}{at}".strip(": "))
                else:
                    parts.append(str(item))
            return "; ".join(parts)
        return str(self.detail)


class ApiClient:
    """Calls the API at ``base_url`` with the ``X-API-Key`` header.

    Parameters
    ----------
    base_url : str
        e.g. ``http://127.0.0.1:8000``.
    key : str
        The user's API key (never logged).
    transport : httpx.BaseTransport, optional
        For tests (e.g. ``httpx.MockTransport``).
    """

    def __init__(
        self, base_url: str, key: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers={"X-API-Key": key}, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def _answer(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None and v != [] and v != ""}
        try:
            return self._answer(self._http.get(path, params=clean))
        except httpx.TransportError as exc:
            raise ApiError(
                503, f"the API at {self.base_url} cannot be reached ({type(exc).__name__})"
            ) from None

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            return self._answer(self._http.post(path, json=body, params=clean))
        except httpx.TransportError as exc:
            raise ApiError(
                503, f"the API at {self.base_url} cannot be reached ({type(exc).__name__})"
            ) from None

    # ------------------------------------------------------------------ identity, health

    def role(self) -> str:
        """The key's role (``advisor`` or ``admin``); raises ``ApiError`` for a bad key."""
        return str(self.get("/v1/ping")["pong"])

    def health(self) -> dict[str, Any]:
        """Liveness and readiness (readiness may be 503 with its body: that is an answer too)."""
        live = self._http.get("/healthz")
        ready = self._http.get("/readyz")
        return {"live": live.json(), "ready": ready.json(), "ready_status": ready.status_code}

    # ---------------------------------------------------------------------- students

    def caseload(self, dataset: str, **filters: Any) -> dict[str, Any]:
        return dict(self.get(f"/v1/{dataset}/students", **filters))

    def student(self, dataset: str, student_id: str) -> dict[str, Any]:
        return dict(self.get(f"/v1/{dataset}/students/{student_id}"))

    def explanation(self, dataset: str, student_id: str, task: str | None = None) -> dict[str, Any]:
        return dict(self.get(f"/v1/{dataset}/students/{student_id}/explanation", task=task, top_k=5))

    def predict(
        self,
        dataset: str,
        students: Sequence[dict[str, Any]],
        *,
        task: str | None = None,
        stage: str | None = None,
        explain: bool = False,
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"students": list(students), "explain": explain}
        if task:
            body["task"] = task
        if stage:
            body["stage"] = stage
        return list(self.post(f"/v1/{dataset}/predict", body)["predictions"])

    def what_if(
        self, dataset: str, student: dict[str, Any], changes: dict[str, Any], *, task: str, stage: str
    ) -> dict[str, Any]:
        body = {"student": student, "changes": changes, "task": task, "stage": stage}
        return dict(self.post(f"/v1/{dataset}/what-if", body))

    def log_intervention(self, dataset: str, student_id: str, type_: str, note: str | None) -> int:
        body = {"student_id": student_id, "type": type_, "note": note or None}
        return int(self.post(f"/v1/{dataset}/interventions", body)["id"])

    def record_outcome(self, dataset: str, student_id: str, outcome: str | float, task: str | None) -> None:
        self.post(
            f"/v1/{dataset}/outcomes",
            {"outcomes": [{"student_id": student_id, "outcome": outcome, "task": task}]},
        )

    def feedback(self, dataset: str, prediction_id: str, reason: str) -> int:
        body = {"prediction_id": prediction_id, "reason": reason, "useful": False}
        return int(self.post(f"/v1/{dataset}/feedback", body)["id"])

    # -------------------------------------------------------------------- monitoring

    def drift_history(self, dataset: str, limit: int = 50) -> list[dict[str, Any]]:
        return list(self.get(f"/v1/{dataset}/monitoring/drift/history", limit=limit))

    def performance(self, dataset: str, task: str | None = None, period: str = "M") -> dict[str, Any]:
        return dict(self.get(f"/v1/{dataset}/monitoring/performance", task=task, period=period))

    def fairness(self, dataset: str, task: str | None = None, period: str = "Y") -> dict[str, Any]:
        return dict(self.get(f"/v1/{dataset}/monitoring/fairness", task=task, period=period))

    def intervention_impact(self, dataset: str, task: str | None = None) -> dict[str, Any]:
        return dict(self.get(f"/v1/{dataset}/monitoring/interventions", task=task))

    def activity(self, dataset: str) -> dict[str, Any]:
        return dict(self.get(f"/v1/{dataset}/monitoring/activity"))

    def decisions(self, dataset: str, limit: int = 20) -> list[dict[str, Any]]:
        return list(self.get(f"/v1/{dataset}/monitoring/decisions", limit=limit))

    # ------------------------------------------------------------------------ models

    def models(self) -> list[dict[str, Any]]:
        return list(self.get("/v1/models"))

    def promote(
        self, name: str, version: int, *, force: bool = False, reason: str | None = None
    ) -> dict[str, Any]:
        return dict(
            self.post(f"/v1/models/{name}/promote", None, version=version, force=force, reason=reason)
        )

    def rollback(self, name: str) -> dict[str, Any]:
        return dict(self.post(f"/v1/models/{name}/rollback"))

    def retrain(self, name: str) -> dict[str, Any]:
        return dict(self.post(f"/v1/models/{name}/retrain"))

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.get(f"/v1/jobs/{job_id}"))

    # ---------------------------------------------------------------------- vision

    def engagement(self, image: bytes, content_type: str = "image/jpeg") -> dict[str, Any]:
        """P(not engaged) for one webcam frame; the image is sent once and stored nowhere."""
        try:
            response = self._http.post(
                "/v1/vision/engagement/predict", content=image, headers={"Content-Type": content_type}
            )
        except httpx.TransportError as exc:
            raise ApiError(
                503, f"the API at {self.base_url} cannot be reached ({type(exc).__name__})"
            ) from None
        return dict(self._answer(response))
