"""The FastAPI application: predictions, explanations, what-if, models, health and metrics.

``create_app`` builds the app; routes are generated per dataset from the specs so the OpenAPI
page documents every field. All scoring goes through ``retain.predictor.Predictor``.
"""

import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from mlflow.exceptions import MlflowException
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import OperationalError

from retain import __version__
from retain.data.spec import DatasetSpec, SpecError, list_specs, load_spec
from retain.data.validate import DataValidationError
from retain.monitoring.metrics import ServiceMetrics
from retain.predictor import Predictor
from retain.scoring import ScoringError, missing_fields, resolve_target, validation_detail
from retain.serving import schemas
from retain.serving.batching import Answer, PredictionBatcher
from retain.serving.explain_routes import add_explanation_route
from retain.serving.jobs import JobRunner
from retain.serving.loop import add_loop_routes
from retain.serving.middleware import LimitsAndMetrics, PredictShortcut, Shortcut
from retain.serving.models import ModelCache
from retain.serving.security import Authenticator, KeyCache, Principal, has_role
from retain.serving.vision_routes import add_vision_routes
from retain.settings import Settings, get_settings
from retain.store.group_commit import GroupCommitWriter
from retain.store.repository import AccessDeniedError, Store
from retain.training import registry
from retain.vision.service import EngagementService
from retain.whatif import WhatIfError, apply_changes, counterfactuals

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


class _State:
    def __init__(self, settings: Settings, auth: Authenticator, store: Store) -> None:
        self.settings = settings
        self.auth = auth
        self.keys = KeyCache(auth, settings.api_key_cache_seconds)
        self.store = store
        self.writer = GroupCommitWriter(store)
        self.batcher = PredictionBatcher(self.writer)
        self.cache = ModelCache(settings.model_refresh_seconds, settings=settings)
        self.metrics = ServiceMetrics()
        self.jobs = JobRunner(store, lambda kind, status: self.metrics.jobs.labels(kind, status).inc())
        self.engagement = EngagementService(settings)
        self.started = time.time()
        self.specs: dict[str, DatasetSpec] = {name: load_spec(name) for name in list_specs()}
        self.shortcuts: dict[str, Shortcut] = {}  # predict paths answered by ``PredictShortcut``


class OutcomeIn(BaseModel):
    student_id: str = Field(max_length=200)
    outcome: str | float = Field(
        description="The real outcome: a class label or a value (e.g. a final grade)."
    )
    task: str | None = None
    event_id: str | None = Field(default=None, max_length=200)


class OutcomesIn(BaseModel):
    outcomes: list[OutcomeIn] = Field(min_length=1, max_length=10_000)


class InterventionIn(BaseModel):
    student_id: str = Field(max_length=200)
    type: str = Field(
        max_length=100, description="A type from the institution's catalogue (RETAIN_INTERVENTION_TYPES)."
    )
    note: str | None = Field(default=None, max_length=4000)


class FeedbackIn(BaseModel):
    prediction_id: str = Field(max_length=64)
    reason: str = Field(min_length=1, max_length=2000)
    useful: bool | None = False


def create_app(
    settings: Settings | None = None, auth: Authenticator | None = None, store: Store | None = None
) -> FastAPI:
    """Build the service. ``auth`` checks API keys (default: the key store)."""
    s = settings or get_settings()
    registry.configure(s)
    store = store or Store.from_settings(s)
    state = _State(s, auth or store, store)
    app = FastAPI(
        title="Retain",
        version=__version__,
        description="Student early-warning predictions, explanations and what-if analysis. "
        "Authenticate with the `X-API-Key` header.",
    )
    app.state.retain = state
    shortcuts = state.shortcuts  # filled as the dataset routes are added

    async def may_predict(key: str) -> bool:
        found = await state.keys.principal(key)
        return found is not None and has_role(found, "advisor")

    # innermost of the middleware: inside the body limit, the request metrics and CORS
    app.add_middleware(PredictShortcut, shortcuts=shortcuts, allowed=may_predict)
    if s.api_cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=s.api_cors_origins, allow_methods=["*"], allow_headers=["*"]
        )

    app.add_middleware(LimitsAndMetrics, metrics=state.metrics, max_body_bytes=s.api_max_body_bytes)

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, exc: OperationalError) -> JSONResponse:
        return JSONResponse(
            {"detail": "the database is unavailable; nothing was stored, please retry"}, status_code=503
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ())[1:]) or "body",
                "problem": err.get("msg", ""),
            }
            for err in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    # The dependencies are ``async``: a cached key costs a dict lookup, and a sync dependency would
    # cost a thread-pool hop on every request. Only a lookup goes to the key store, off the loop.
    async def principal(key: Annotated[str | None, Depends(_api_key)]) -> Principal:
        if not key:
            raise HTTPException(401, "missing X-API-Key header")
        found = await state.keys.principal(key)
        if found is None:
            raise HTTPException(401, "unknown, expired or revoked API key")
        return found

    async def advisor(p: Annotated[Principal, Depends(principal)]) -> Principal:
        if not has_role(p, "advisor"):
            raise HTTPException(403, "this key may not do that")
        return p

    async def admin(p: Annotated[Principal, Depends(principal)]) -> Principal:
        if not has_role(p, "admin"):
            raise HTTPException(403, "admin role required")
        return p

    add_vision_routes(
        app,
        settings=s,
        store=state.store,
        jobs=state.jobs,
        service=state.engagement,
        advisor=advisor,
        admin=admin,
        on_prediction=lambda label, version: state.metrics.predictions.labels(
            "vision.engagement", label
        ).inc(),
    )

    def _predictor(spec: DatasetSpec, task: str, stage: str) -> Predictor:
        try:
            return state.cache.get(spec, task, stage)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None

    def add_dataset_routes(spec: DatasetSpec) -> None:
        predict_model = schemas.predict_request_model(spec, s.api_max_batch)
        read_predict = schemas.predict_request_reader(spec, s.api_max_batch)
        whatif_model = schemas.whatif_request_model(spec)
        documented.append(predict_model)

        def parse(raw: bytes) -> tuple[schemas.PredictRequest, Predictor, list[str | None]]:
            # The body is read into plain dicts by the documented model's rules (plain JSON checked
            # in one pass, anything else through pydantic: ``schemas.predict_request_reader``), and
            # the answer is serialised once with orjson: no model objects built, dumped, re-validated.
            try:
                body = read_predict(raw)
            except ValidationError as exc:
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
                ) from None
            records = body["students"]
            event_id = body.get("event_id")
            n = len(records)
            event_ids = [
                None if event_id is None else (event_id if n == 1 else f"{event_id}/{i}") for i in range(n)
            ]
            try:
                task, stage = resolve_target(spec, body.get("task"), body.get("stage"), records)
                missing_fields(spec, task, stage, records)
            except ScoringError as exc:
                raise HTTPException(422, exc.detail) from None
            return body, _predictor(spec, task, stage), event_ids

        def respond(body: schemas.PredictRequest, predictor: Predictor, answer: Answer) -> bytes:
            scored, stored = answer
            outputs = scored.outputs
            for out, saved in zip(outputs, stored, strict=True):
                out["prediction_id"] = saved.id
                if not saved.created:  # a repeated event id: answer with what was stored then
                    out.update(risk_score=saved.risk_score, risk_band=saved.risk_band, duplicate=True)
            if body.get("explain", False):
                for out, found in zip(outputs, scored.explain(body.get("top_k", 3)), strict=True):
                    out["reasons"] = [r.to_dict() for r in found]
            state.metrics.count_predictions(
                predictor.model_name, predictor.version, (o["risk_band"] for o in outputs)
            )
            return schemas.predict_response_json(outputs)

        async def score(raw: bytes) -> tuple[schemas.PredictRequest, Predictor, Answer]:
            body, predictor, event_ids = parse(raw)
            try:
                # scored and stored together with the other requests of this turn of the loop
                answer = await state.batcher.predict(predictor, body["students"], event_ids)
            except ScoringError as exc:
                raise HTTPException(422, exc.detail) from None
            return body, predictor, answer

        async def predict(request: Request, who: Annotated[Principal, Depends(advisor)]) -> Response:
            return Response(respond(*await score(await request.body())), media_type="application/json")

        async def predict_fast(raw: bytes) -> bytes | None:
            # ``PredictShortcut``: the same answer, or None where the route above must answer (an
            # error, raised before anything of this request was stored)
            try:
                scored = await score(raw)
            except Exception:
                return None
            return respond(*scored)

        async def what_if(body: Any, who: Annotated[Principal, Depends(advisor)]) -> dict[str, Any]:
            record = body.student.model_dump(exclude_unset=True)
            try:
                task, stage = resolve_target(spec, body.task, body.stage, [record])
                missing_fields(spec, task, stage, [record])
            except ScoringError as exc:
                raise HTTPException(422, exc.detail) from None
            predictor = _predictor(spec, task, stage)
            try:
                student = predictor.prepare([record])
                changed = apply_changes(spec, predictor.model, student, dict(body.changes))
            except DataValidationError as exc:
                raise HTTPException(422, validation_detail(exc)) from None
            except WhatIfError as exc:
                raise HTTPException(422, str(exc)) from None
            before = predictor.model.score(student)
            after = predictor.model.score(changed)
            suggestions = counterfactuals(
                spec,
                spec.task(task),
                predictor.model,
                changed,
                max_changes=body.max_changes,
            )
            return {
                "student_id": str(student["student_id"].iloc[0]),
                "model_name": predictor.model_name,
                "model_version": predictor.version,
                "before": {"risk_score": float(before.risk[0]), "risk_band": str(before.band[0])},
                "after": {"risk_score": float(after.risk[0]), "risk_band": str(after.band[0])},
                "actionable": [f for f in spec.actionable if f in predictor.model.features],
                "counterfactuals": [c.to_dict() for c in suggestions],
            }

        what_if.__annotations__["body"] = whatif_model  # the spec-generated model documents the body
        path = f"/v1/{spec.name}/predict"
        app.post(
            path,
            response_model=schemas.PredictResponse,
            tags=[spec.name],
            summary=f"Risk predictions: {spec.title}",
            openapi_extra=schemas.request_body(predict_model),
        )(predict)
        shortcuts[path] = Shortcut(app.router.routes[-1], predict_fast)
        app.post(
            f"/v1/{spec.name}/what-if", tags=[spec.name], summary=f"What-if and counterfactuals: {spec.title}"
        )(what_if)

    documented: list[type[BaseModel]] = []  # bodies parsed by hand, documented by their models
    for spec in state.specs.values():
        add_dataset_routes(spec)
    schemas.document_bodies(app, documented)

    @app.post("/v1/{dataset}/predict", include_in_schema=False)
    async def unknown_dataset(dataset: str) -> None:
        raise HTTPException(404, f"unknown dataset {dataset!r}; known: {sorted(state.specs)}")

    def _spec(dataset: str) -> DatasetSpec:
        if dataset not in state.specs:
            raise HTTPException(404, f"unknown dataset {dataset!r}; known: {sorted(state.specs)}")
        return state.specs[dataset]

    # Endpoints below touch the store or MLflow synchronously; as plain ``def`` FastAPI runs them
    # in its thread pool, so a slow query never blocks the event loop.
    @app.post("/v1/{dataset}/outcomes", tags=["feedback loop"], summary="Record real outcomes (labels).")
    def outcomes(
        dataset: str, body: OutcomesIn, who: Annotated[Principal, Depends(advisor)]
    ) -> dict[str, Any]:
        spec = _spec(dataset)
        ids = []
        for item in body.outcomes:
            if item.task is not None and item.task not in [t.name for t in spec.tasks]:
                raise HTTPException(422, f"task: unknown task {item.task!r}")
            ids.append(
                state.store.record_outcome(
                    dataset,
                    item.student_id,
                    item.outcome,
                    task=item.task,
                    event_id=item.event_id,
                    scope=who.scope,
                )
            )
        return {"recorded": len(ids), "ids": ids}

    @app.post("/v1/{dataset}/interventions", tags=["feedback loop"], summary="Record an intervention.")
    def interventions(
        dataset: str, body: InterventionIn, who: Annotated[Principal, Depends(advisor)]
    ) -> dict[str, Any]:
        _spec(dataset)
        if body.type not in s.intervention_types:
            raise HTTPException(422, f"type: {body.type!r} is not in the catalogue {s.intervention_types}")
        try:
            new_id = state.store.record_intervention(
                dataset, body.student_id, body.type, note=body.note, scope=who.scope
            )
        except AccessDeniedError:
            raise HTTPException(404, "student_id: no such student in your caseload") from None
        return {"id": new_id}

    @app.post(
        "/v1/{dataset}/feedback",
        tags=["feedback loop"],
        summary="'This prediction is not useful', with a reason.",
    )
    def feedback(
        dataset: str, body: FeedbackIn, who: Annotated[Principal, Depends(advisor)]
    ) -> dict[str, Any]:
        _spec(dataset)
        try:
            new_id = state.store.record_feedback(
                body.prediction_id, body.reason, useful=body.useful, scope=who.scope
            )
        except LookupError:
            raise HTTPException(404, "prediction_id: no such prediction in your caseload") from None
        return {"id": new_id}

    @app.get(
        "/v1/{dataset}/students", tags=["students"], summary="The caseload: students ranked by latest risk."
    )
    def students(
        dataset: str,
        who: Annotated[Principal, Depends(advisor)],
        task: str | None = None,
        band: Annotated[list[str] | None, Query()] = None,
        programme: str | None = None,
        cohort: str | None = None,
        stage: str | None = None,
        rising: bool = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        _spec(dataset)
        for b in band or []:
            if b not in ("low", "medium", "high"):
                raise HTTPException(422, f"band: {b!r} is not one of low, medium, high")
        page = state.store.caseload(
            dataset,
            scope=who.scope,
            task=task,
            band=band,
            programme=programme,
            cohort=cohort,
            stage=stage,
            rising=rising,
            limit=limit,
            offset=offset,
        )
        return {
            "total": page.total,
            "students": [
                {
                    k: (v.isoformat() if hasattr(v, "isoformat") else v)
                    for k, v in e.__dict__.items()
                    if k != "student_key"
                }
                for e in page.entries
            ],
        }

    @app.get("/v1/{dataset}/students/{student_id}", tags=["students"], summary="One student's history.")
    def student(dataset: str, student_id: str, who: Annotated[Principal, Depends(advisor)]) -> dict[str, Any]:
        _spec(dataset)
        try:
            history = state.store.student_history(dataset, student_id, who.scope)
        except (AccessDeniedError, LookupError):
            raise HTTPException(404, "student_id: no such student in your caseload") from None
        return {
            "student_id": student_id,
            "dataset": dataset,
            "name": history.roster.name if history.roster else None,
            "programme": history.roster.programme if history.roster else None,
            "predictions": [p.to_dict() for p in history.predictions],
            "interventions": [i.__dict__ | {"at": i.at.isoformat()} for i in history.interventions],
            "outcomes": [o.__dict__ | {"recorded_at": o.recorded_at.isoformat()} for o in history.outcomes],
            "feedback": [f.__dict__ | {"at": f.at.isoformat()} for f in history.feedback],
        }

    @app.get(
        "/v1/{dataset}/monitoring/drift",
        tags=["monitoring"],
        summary="Drift of the champion's recent traffic against its training reference.",
    )
    def monitoring_drift(
        dataset: str,
        who: Annotated[Principal, Depends(advisor)],
        task: str | None = None,
        stage: str | None = None,
        window: Annotated[str | None, Query(max_length=10, description="e.g. 7d, 12h, 2w")] = "7d",
        last: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    ) -> dict[str, Any]:
        from retain.monitoring.checks import check_drift, store_drift

        _spec(dataset)
        try:
            check = check_drift(dataset, task, stage, window=window, last=last, settings=s, store=state.store)
        except (SpecError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        stored = store_drift(check, state.store)
        report, m = check.report, state.metrics
        m.drift_share.labels(check.model_name).set(
            report.share_drifted if report.enough_data else float("nan")
        )
        m.prediction_drift.labels(check.model_name).set(float(report.prediction_drift))
        for f in report.features:
            if f.judged:
                m.feature_drift.labels(check.model_name, f.feature).set(float(f.drifted))
        return {**check.to_dict(), "id": stored}

    @app.get(
        "/v1/{dataset}/monitoring/performance",
        tags=["monitoring"],
        summary="Live performance and group rates from recorded outcomes, with alerts.",
    )
    def monitoring_performance(
        dataset: str,
        who: Annotated[Principal, Depends(advisor)],
        task: str | None = None,
        period: Annotated[str, Query(pattern="^[WMQY]$")] = "M",
        window: Annotated[str | None, Query(max_length=10)] = None,
    ) -> dict[str, Any]:
        from retain.monitoring.checks import check_performance

        _spec(dataset)
        try:
            report = check_performance(
                dataset, task, period=period, window=window, settings=s, store=state.store
            )
        except (SpecError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        judged = [p for p in report.periods if p.judged]
        if judged:
            latest = judged[-1]
            for metric, value in latest.metrics.items():
                state.metrics.live_metric.labels(dataset, report.task, str(latest.model_version), metric).set(
                    value
                )
        state.metrics.alerts.labels(dataset, report.task).set(len(report.alerts))
        return report.to_dict()

    add_explanation_route(
        app, settings=s, store=state.store, spec_of=_spec, predictor_of=_predictor, advisor=advisor
    )
    add_loop_routes(
        app,
        metrics=state.metrics,
        settings=s,
        store=state.store,
        cache=state.cache,
        jobs=state.jobs,
        spec_of=_spec,
        advisor=advisor,
        admin=admin,
    )

    @app.get("/v1/models", response_model=list[schemas.ModelVersion], tags=["models"])
    def models(who: Annotated[Principal, Depends(advisor)]) -> list[schemas.ModelVersion]:
        return [
            schemas.ModelVersion(name=v.name, version=v.version, aliases=list(v.aliases), metrics=v.metrics)
            for v in registry.list_versions()
        ]

    @app.post("/v1/models/{name}/promote", tags=["models"])
    def promote(
        name: str,
        version: int,
        who: Annotated[Principal, Depends(admin)],
        force: bool = False,
        reason: str | None = None,
    ) -> dict[str, Any]:
        from retain.training.promote import promote as run_promote

        try:
            previous = registry.champion_version(name)
            decision = run_promote(name, version, force=force, reason=reason, settings=s)
        except (LookupError, SpecError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        except MlflowException as exc:
            raise HTTPException(404, f"model {name!r} version {version}: {exc.message}") from None
        state.cache.invalidate(name)
        kind = "override" if force else "promote"
        state.metrics.gate_decisions.labels(name, kind, str(decision.promote).lower()).inc()
        state.store.record_decision(
            name,
            kind,
            promoted=decision.promote,
            metric=decision.metric,
            reason=decision.reason,
            margin=decision.margin,
            champion_version=previous,
            challenger_version=version,
            champion_score=decision.champion,
            challenger_score=decision.candidate,
            actor=who.scope.actor,
        )
        state.store.audit(
            "model.promote",
            scope=who.scope,
            details={
                "model": name,
                "version": version,
                "force": force,
                "reason": reason,
                "promoted": decision.promote,
            },
        )
        return decision.to_dict()

    @app.post("/v1/models/{name}/rollback", tags=["models"])
    def rollback(name: str, who: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
        try:
            version = registry.rollback(name)
        except LookupError as exc:
            raise HTTPException(422, str(exc)) from None
        except MlflowException as exc:
            raise HTTPException(404, f"model {name!r}: {exc.message}") from None
        state.cache.invalidate(name)
        state.store.audit("model.rollback", scope=who.scope, details={"model": name, "version": version})
        return {"name": name, "champion": version}

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "uptime_s": round(time.time() - state.started, 1)}

    @app.get("/readyz", tags=["operations"])
    async def readyz(response: Response) -> dict[str, Any]:
        champions = {}
        for spec in state.specs.values():
            for t in spec.tasks:
                for st in t.stages:
                    champions[spec.model_name(t.name, st)] = registry.champion_version(
                        spec.model_name(t.name, st)
                    )
        try:
            state.store.authenticate("readiness-probe")
            database = True
        except OperationalError:
            database = False
        ready = database and any(v is not None for v in champions.values())
        if not ready:
            response.status_code = 503
        return {
            "ready": ready,
            "database": database,
            "champions": champions,
            "loaded": state.cache.loaded(),
            "native": state.cache.native(),
        }

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/ping", tags=["operations"], summary="Trivial authenticated endpoint (benchmarks).")
    async def ping(who: Annotated[Principal, Depends(advisor)]) -> dict[str, str]:
        return {"pong": who.role}

    return app
