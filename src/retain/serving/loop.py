"""Feedback-loop endpoints: stored drift, fairness, gate decisions, retrain jobs.

Registered by :func:`retain.serving.app.create_app` with its auth dependencies; every answer is
an aggregate or a model record, never a student. (No ``from __future__ import annotations`` here: FastAPI must see the
dependencies in the signatures as objects, and they are local to ``create_app``.)
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query
from fastapi.responses import JSONResponse

from retain.data.spec import DatasetSpec, SpecError
from retain.monitoring.metrics import ServiceMetrics
from retain.serving.jobs import JobRunner, accepted, already_running
from retain.serving.models import ModelCache
from retain.serving.security import Principal
from retain.settings import Settings
from retain.store.records import JobRecord
from retain.store.repository import Store
from retain.training import registry

Dependency = Callable[..., Coroutine[Any, Any, Principal]]


def add_loop_routes(
    app: FastAPI,
    *,
    metrics: ServiceMetrics,
    settings: Settings,
    store: Store,
    cache: ModelCache,
    jobs: JobRunner,
    spec_of: Callable[[str], DatasetSpec],
    advisor: Dependency,
    admin: Dependency,
) -> None:
    """Add the monitoring history, fairness, decisions and retrain-job endpoints to ``app``."""

    @app.get(
        "/v1/{dataset}/monitoring/drift/history",
        tags=["monitoring"],
        summary="Stored drift checks, newest first (for trends).",
    )
    def drift_history(
        dataset: str,
        who: Annotated[Principal, Depends(advisor)],
        model: Annotated[str | None, Query(max_length=300)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        spec_of(dataset)
        return [r.to_dict() for r in store.drift_results(dataset, model_name=model, limit=limit)]

    @app.get(
        "/v1/{dataset}/monitoring/fairness",
        tags=["monitoring"],
        summary="Per protected group: flagged, caught and false-alarm rates from recorded outcomes.",
    )
    def fairness(
        dataset: str,
        who: Annotated[Principal, Depends(advisor)],
        task: str | None = None,
        period: Annotated[str, Query(pattern="^[WMQY]$")] = "M",
        window: Annotated[str | None, Query(max_length=10)] = None,
    ) -> dict[str, Any]:
        from retain.monitoring.checks import check_performance
        from retain.monitoring.performance import fairness_gaps

        spec_of(dataset)
        try:
            report = check_performance(
                dataset, task, period=period, window=window, settings=settings, store=store
            )
        except (SpecError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        return {
            "dataset": dataset,
            "task": report.task,
            "max_gap": settings.fairness_max_gap,
            "groups": [g.to_dict() for g in report.groups],
            "gaps": fairness_gaps(report.groups, settings.fairness_max_gap),
            "alerts": [a for a in report.alerts if "caught range" in a],
        }

    @app.get(
        "/v1/{dataset}/monitoring/interventions",
        tags=["monitoring"],
        summary="Outcomes of flagged students with and without an intervention, matched on risk.",
    )
    def intervention_impact(
        dataset: str,
        who: Annotated[Principal, Depends(advisor)],
        task: str | None = None,
        window: Annotated[str | None, Query(max_length=10)] = None,
    ) -> dict[str, Any]:
        from datetime import UTC, datetime

        from retain.monitoring.checks import parse_window
        from retain.monitoring.impact import intervention_impact as impact

        spec = spec_of(dataset)
        try:
            t = spec.task(task) if task else spec.tasks[0]
            since = datetime.now(UTC) - parse_window(window) if window else None
        except (SpecError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        return impact(store.outcome_pairs(dataset, task=t.name, since=since), t).to_dict()

    @app.get(
        "/v1/{dataset}/monitoring/activity",
        tags=["monitoring"],
        summary="When predictions, outcomes, drift checks, decisions and stream checkpoints last happened.",
    )
    def activity(dataset: str, who: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
        from datetime import UTC, datetime, timedelta

        spec_of(dataset)
        return store.activity(dataset, since=datetime.now(UTC) - timedelta(days=1))

    @app.get(
        "/v1/{dataset}/monitoring/decisions",
        tags=["monitoring"],
        summary="The promotion gate's decisions (retrains, promotions, overrides) with their numbers.",
    )
    def decisions(
        dataset: str,
        who: Annotated[Principal, Depends(advisor)],
        model: Annotated[str | None, Query(max_length=300)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        spec_of(dataset)
        return [d.to_dict() for d in store.decisions(dataset, model_name=model, limit=limit)]

    @app.post(
        "/v1/models/{name}/retrain",
        tags=["models"],
        status_code=202,
        summary="Start the retrain flow as a background job (admin); follow it at /v1/jobs/{id}.",
    )
    def start_retrain(name: str, who: Annotated[Principal, Depends(admin)]) -> JSONResponse:
        try:
            dataset, task, stage = name.split(".", 2)
            spec = spec_of(dataset)
            if stage not in spec.task(task).stages:
                raise SpecError(f"task {task!r} has no stage {stage!r}")
        except (ValueError, SpecError) as exc:
            raise HTTPException(404, f"unknown model {name!r}: {exc}") from None
        if registry.champion_version(name) is None:
            raise HTTPException(404, f"{name} has no champion to retrain; train it first")
        running = jobs.active("retrain", name)
        if running is not None:
            return already_running(f"a retrain of {name}", running)
        actor = who.scope.actor

        def work(job: JobRecord) -> dict[str, Any]:
            # What the retrain flow runs, with the service's own settings and store.
            from retain.training.retrain import RetrainOptions, retrain

            options = RetrainOptions.from_settings(settings, trigger=f"api job {job.id}")
            result = retrain(name, options=options, settings=settings, store=store, actor=actor)
            if result.promoted:
                cache.invalidate(name)
            metrics.gate_decisions.labels(name, "retrain", str(result.promoted).lower()).inc()
            return result.to_dict()

        job = jobs.submit("retrain", name, work, params={"model": name}, actor=actor)
        store.audit("model.retrain.start", scope=who.scope, details={"model": name, "job": job.id})
        return accepted(job)

    @app.get("/v1/jobs/{job_id}", tags=["models"], summary="A background job's state and result.")
    def job(
        job_id: Annotated[str, Path(max_length=64)], who: Annotated[Principal, Depends(admin)]
    ) -> dict[str, Any]:
        found = store.get_job(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return found.to_dict()
