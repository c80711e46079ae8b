"""Background jobs of the service: one at a time, each with its state in the store's ``jobs`` table.

A job is queued in the store first, so a caller can follow it by id (``GET /v1/jobs/{id}``);
one worker thread runs the jobs in order, so two retrains never compete for the machine. A job's
failure is its result (``failed`` with the error), never the service's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fastapi.responses import JSONResponse

from retain.store.records import JobRecord
from retain.store.repository import Store

log = logging.getLogger(__name__)

Work = Callable[[JobRecord], dict[str, Any]]


class JobRunner:
    """Runs jobs on one background thread and records how each ended."""

    def __init__(self, store: Store, on_finish: Callable[[str, str], None] | None = None) -> None:
        self.store = store
        self._on_finish = on_finish or (lambda kind, status: None)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retain-job")
        self._futures: dict[str, Future[None]] = {}

    def active(self, kind: str, target: str) -> JobRecord | None:
        """A queued or running job of this kind and target, if any."""
        for status in ("running", "queued"):
            for job in self.store.jobs(status=status):
                if job.kind == kind and job.target == target:
                    return job
        return None

    def submit(
        self,
        kind: str,
        target: str,
        work: Work,
        *,
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> JobRecord:
        """Queue ``work`` (called with the job) and return the queued job."""
        job = self.store.create_job(kind, target, params=params, actor=actor)
        self._futures[job.id] = self._executor.submit(self._run, job, work)
        return job

    def _run(self, job: JobRecord, work: Work) -> None:
        if not self.store.start_job(job.id):
            return
        try:
            result = work(job)
        except Exception as exc:  # the job fails, the service does not
            log.warning("job %s (%s %s) failed: %s", job.id, job.kind, job.target, exc)
            self.store.finish_job(job.id, error=f"{type(exc).__name__}: {exc}")
            self._on_finish(job.kind, "failed")
        else:
            self.store.finish_job(job.id, result=result)
            self._on_finish(job.kind, "succeeded")
        finally:
            self._futures.pop(job.id, None)

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until a job of this process is done (tests and shutdown)."""
        future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout=timeout)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def accepted(job: JobRecord) -> JSONResponse:
    """202 with the queued job and where to follow it."""
    return JSONResponse(
        {"job": job.to_dict(), "status_url": f"/v1/jobs/{job.id}"},
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


def already_running(what: str, job: JobRecord) -> JSONResponse:
    """409: one job of this kind and target at a time."""
    return JSONResponse({"detail": f"{what} is already {job.status}", "job": job.to_dict()}, status_code=409)
