"""The ``retain`` command line: thin commands that parse, call the library and print.

Machine output: ``--json`` prints exactly one JSON object on stdout; progress and logs go to
stderr. Bad input ends with a readable message and exit code 2, never a stack trace.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from retain.batch.backend import Backend
from retain.insights.cli import report_app
from retain.vision.cli import vision_app

app = typer.Typer(
    help="Retain: student early-warning models, from data to predictions.", no_args_is_help=True
)
data_app = typer.Typer(help="Datasets: list, show, validate, download, synthesise.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models: list, promote, roll back.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys: create, list, revoke, rotate (only hashes are stored).", no_args_is_help=True
)
roster_app = typer.Typer(help="The roster (names and contacts, encrypted at rest).", no_args_is_help=True)
privacy_app = typer.Typer(help="Data protection: purge, erase, export.", no_args_is_help=True)
stream_app = typer.Typer(help="Streaming predictions: the worker, replaying events.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(roster_app, name="roster")
app.add_typer(privacy_app, name="privacy")
monitor_app = typer.Typer(help="Monitoring: drift and live performance.", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")
outcomes_app = typer.Typer(help="Real outcomes: the feedback loop's labels.", no_args_is_help=True)
app.add_typer(outcomes_app, name="outcomes")
app.add_typer(stream_app, name="stream")
flows_app = typer.Typer(help="Prefect flows: run one locally, or serve the schedules.", no_args_is_help=True)
flows_run_app = typer.Typer(help="Run one flow now (locally, no server needed).", no_args_is_help=True)
flows_app.add_typer(flows_run_app, name="run")
app.add_typer(flows_app, name="flows")
app.add_typer(report_app, name="report")
app.add_typer(vision_app, name="vision")
db_app = typer.Typer(help="The store's database: migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")

err = Console(stderr=True)
out = Console()


def _quiet_libraries() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "optuna", "urllib3", "git"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _friendly_errors() -> Iterator[None]:
    """Turn the library's expected errors into a message and exit code 2."""
    from retain.data.download import DownloadError
    from retain.data.load import DataError
    from retain.data.spec import SpecError
    from retain.data.validate import DataValidationError
    from retain.training.fit import TrainingError

    try:
        yield
    except DataValidationError as exc:
        _fail(f"the data does not match the spec\n{exc.report.summary()}")
    except (SpecError, DataError, TrainingError, DownloadError, LookupError, FileNotFoundError) as exc:
        _fail(str(exc))


@app.callback()
def _check_settings() -> None:
    # Every command reads the settings; a bad RETAIN_* value (or .env line) is named here, once,
    # instead of ending whichever command first reads it with a traceback.
    from pydantic import ValidationError

    from retain.settings import get_settings

    try:
        get_settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            name = "_".join(str(part) for part in error.get("loc", ()))
            where = f"RETAIN_{name.upper()}" if name else "the settings"
            problems.append(f"  {where}: {error.get('msg', 'invalid')}")
        _fail("invalid settings (environment or .env):\n" + "\n".join(problems))


def _progress() -> Callable[[str], None]:
    started = time.perf_counter()

    def say(message: str) -> None:
        err.print(f"[dim]{time.perf_counter() - started:7.1f}s[/] {message}", highlight=False)

    return say


@contextmanager
def _bar(total: int, label: str) -> Iterator[tuple[Any, Any]]:
    """A progress bar on stderr (models done out of total, elapsed time)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as bar:
        job = bar.add_task(label, total=total)
        yield bar, job


def _json_default(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _print_json(payload: object) -> None:
    sys.stdout.write(json.dumps(_clean(payload), default=_json_default, indent=2) + "\n")


# ----------------------------------------------------------------------------- data


@data_app.command("list")
def data_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the datasets whose spec is known, with tasks, stages and data presence."""
    from retain.data.load import dataset_path
    from retain.data.spec import list_specs, load_spec

    table = Table("dataset", "title", "tasks", "stages", "data file")
    rows: list[dict[str, object]] = []
    with _friendly_errors():
        for name in list_specs():
            spec = load_spec(name)
            path = dataset_path(spec)
            rows.append(
                {
                    "name": name,
                    "title": spec.title,
                    "tasks": [t.name for t in spec.tasks],
                    "stages": spec.stages,
                    "data_file": str(path),
                    "present": path.exists(),
                }
            )
            table.add_row(
                name,
                spec.title,
                ", ".join(t.name for t in spec.tasks),
                ", ".join(spec.stages),
                str(path) if path.exists() else f"missing ({path})",
            )
    if as_json:
        _print_json({"datasets": rows})
        return
    out.print(table)


@data_app.command("show")
def data_show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a dataset spec: columns, codes, tasks and the features of each stage."""
    from retain.data.spec import load_spec

    with _friendly_errors():
        spec = load_spec(name)
    if as_json:
        _print_json(spec.model_dump(mode="json"))
        return
    out.print(f"[bold]{spec.title}[/] ({spec.name}); source: {spec.source.homepage or spec.source.url}")
    table = Table("column", "source header", "type", "stage", "roles")
    for col in spec.columns:
        roles = [r for r, on in (("protected", col.protected), ("actionable", col.actionable)) if on]
        if col.role != "feature":
            roles.insert(0, col.role)
        table.add_row(col.name, col.header, col.type.value, col.stage or "", ", ".join(roles))
    out.print(table)
    for task in spec.tasks:
        out.print(
            f"[bold]task {task.name}[/] ({task.type.value}, metric {task.primary_metric}): {task.description}"
        )
        for stage in task.stages:
            out.print(f"  {stage}: {len(spec.features(task, stage))} features")


@data_app.command("validate")
def data_validate(
    name: str,
    file: Path,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Validate FILE against the dataset spec NAME; exit 1 when it has errors."""
    from retain.data.load import canonicalize, ensure_student_id, read_table
    from retain.data.spec import load_spec
    from retain.data.validate import validate_frame

    with _friendly_errors():
        spec = load_spec(name)
        frame = ensure_student_id(canonicalize(read_table(file), spec), spec)
        _, report = validate_frame(frame, spec)
    if as_json:
        _print_json(report.to_dict())
    else:
        (out if report.ok else err).print(report.summary(), highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@data_app.command("download")
def data_download(
    name: str,
    dest: Annotated[Path | None, typer.Option(help="Folder to write to (default: RETAIN_DATA_DIR).")] = None,
    url: Annotated[str | None, typer.Option(help="Override the spec's source URL (e.g. a mirror).")] = None,
) -> None:
    """Download a dataset from its official public source into the data folder."""
    from retain.data.download import download
    from retain.data.spec import load_spec
    from retain.settings import get_settings

    with _friendly_errors():
        spec = load_spec(name)
        path = download(spec, dest or get_settings().data_dir, url=url)
    out.print(f"wrote {path}")


@data_app.command("synth")
def data_synth(
    name: str,
    rows: Annotated[int, typer.Option(min=1, help="Number of synthetic students.")] = 1000,
    output: Annotated[Path | None, typer.Option(help="CSV or Parquet file (default: data folder).")] = None,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Generate realistic synthetic students from a spec (no real data needed)."""
    from retain.data.spec import load_spec
    from retain.data.synth import synthesize_to_file
    from retain.settings import get_settings

    with _friendly_errors():
        spec = load_spec(name)
        target = output or get_settings().data_dir / spec.source.file
        synthesize_to_file(spec, rows, target, seed=seed)
    out.print(f"wrote {rows} synthetic rows to {target}")


# ----------------------------------------------------------------------------- train / tune


def _results_table(results: list[Any]) -> Table:
    table = Table("model", "kind", "rows", "primary (test)", "key test metrics", "version", "champion", "s")
    for r in results:
        from retain.data.spec import load_spec

        task = load_spec(r.dataset).task(r.task)
        test = {k: v["value"] for k, v in r.test_metrics.items()}
        keys = ["roc_auc", "macro_f1", "accuracy", "ece"] if task.is_classification else ["rmse", "mae", "r2"]
        shown = ", ".join(f"{k} {test[k]:.3f}" for k in keys if k in test)
        primary = test.get(task.primary_metric, float("nan"))
        promoted = "" if r.decision is None else ("yes" if r.decision.promote else "kept")
        table.add_row(
            r.model_name,
            r.kind,
            f"{r.n_train}+{r.n_test}",
            f"{task.primary_metric} {primary:.3f}",
            shown,
            str(r.version or ""),
            promoted,
            f"{r.seconds:.0f}",
        )
    return table


@app.command()
def train(
    dataset: Annotated[str | None, typer.Option(help="Dataset name (see `retain data list`).")] = None,
    task: Annotated[str | None, typer.Option(help="Task (default: every task).")] = None,
    stage: Annotated[str | None, typer.Option(help="Stage (default: every stage).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every bundled dataset, task and stage.")] = False,
    trials: Annotated[
        int, typer.Option(help="Run an Optuna search of N trials first (0: reuse tuned params).")
    ] = 0,
    timeout: Annotated[float | None, typer.Option(help="Time budget of the search in seconds.")] = None,
    data: Annotated[Path | None, typer.Option(help="Train on this file instead of the data folder.")] = None,
    baselines: Annotated[
        str, typer.Option(help="Comma-separated baselines to cross-validate.")
    ] = "majority,linear",
    kind: Annotated[
        str | None, typer.Option(help="Force a model family (lightgbm, xgboost, forest, linear).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train, evaluate on held-out rows, register, and promote through the gate."""
    _quiet_libraries()
    from retain.training.train import TrainOptions, count_stages, train_all
    from retain.training.train import train as run_train

    if not all_ and dataset is None:
        _fail("give --dataset NAME or --all")
    options = TrainOptions(baselines=tuple(b for b in baselines.split(",") if b), data_path=data, kind=kind)
    say = _progress()
    with _friendly_errors():
        if trials > 0 or timeout:
            from retain.training.tune import tune_many

            tune_many(dataset, task, stage, trials=trials or 50, timeout=timeout, save=True, progress=say)
        total = count_stages(None if all_ else dataset, task, stage)
        with _bar(total, "training") as (bar, job):

            def advance(result: Any) -> None:
                bar.advance(job)

            def report(message: str) -> None:
                bar.update(job, description=message[:70])

            results = (
                train_all(options, progress=report, stage_done=advance)
                if all_
                else run_train(dataset or "", task, stage, options, progress=report, stage_done=advance)
            )
    if as_json:
        _print_json({"models": [r.summary() for r in results]})
    else:
        out.print(_results_table(results))


@app.command()
def tune(
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    task: Annotated[str | None, typer.Option()] = None,
    stage: Annotated[str | None, typer.Option()] = None,
    trials: Annotated[int, typer.Option(help="Number of Optuna trials per model.")] = 50,
    timeout: Annotated[float | None, typer.Option(help="Seconds per model.")] = None,
    kinds: Annotated[str, typer.Option(help="Model families to search.")] = "lightgbm",
    save: Annotated[bool, typer.Option(help="Write the best parameters to configs/params.yaml.")] = True,
) -> None:
    """Search hyperparameters with Optuna (cross-validated, pruned) and keep the best in the repo."""
    _quiet_libraries()
    from retain.training.tune import tune_many

    with _friendly_errors():
        results = tune_many(
            dataset,
            task,
            stage,
            trials=trials,
            timeout=timeout,
            kinds=tuple(kinds.split(",")),
            save=save,
            progress=_progress(),
        )
    table = Table("model", "kind", "metric", "best CV", "trials")
    for name, tuned in results.items():
        table.add_row(name, tuned.kind, tuned.metric or "", f"{tuned.cv_score:.4f}", str(tuned.trials))
    out.print(table)


@app.command()
def evaluate(
    dataset: Annotated[str, typer.Option()],
    task: Annotated[str, typer.Option()],
    stage: Annotated[str, typer.Option()],
    data: Annotated[Path, typer.Option(help="A labelled CSV or Parquet file.")],
    model: Annotated[str, typer.Option(help="Alias or version of the registered model.")] = "champion",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The registered model's metrics on a labelled file the model never saw."""
    _quiet_libraries()
    from retain.evaluation.evaluate import evaluate_model
    from retain.predictor import Predictor
    from retain.training.fit import encode_target

    with _friendly_errors():
        predictor = Predictor.from_registry(dataset, task, stage, model)
        spec = predictor.spec
        t = spec.task(task)
        from retain.data.load import canonicalize, ensure_student_id, read_table
        from retain.data.validate import validate_frame

        frame = ensure_student_id(canonicalize(read_table(data), spec), spec)
        typed, report = validate_frame(frame, spec, required=[*predictor.features, t.target])
        report.raise_for_errors()
        unlabelled = int(typed[t.target].isna().sum())
        if unlabelled:
            err.print(f"{unlabelled} row(s) without an outcome are not evaluated")
            typed = typed[typed[t.target].notna()].reset_index(drop=True)
        if typed.empty:
            _fail("no labelled rows to evaluate")
        y = encode_target(typed, t)
        metrics = evaluate_model(predictor.model, t, typed, y)
    payload = {
        "model_name": predictor.model_name,
        "model_version": predictor.version,
        **metrics,
    }
    if as_json:
        _print_json(payload)
        return
    table = Table("metric", "value")
    for key, value in payload.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out.print(table)


@app.command()
def predict(
    dataset: Annotated[str, typer.Option()],
    task: Annotated[str, typer.Option()],
    stage: Annotated[str, typer.Option()],
    input: Annotated[
        Path,
        typer.Option("--input", help="CSV or Parquet of students, or a folder of *.parquet/*.csv parts."),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", help="A .parquet or .csv file, or a folder (no suffix) of Parquet parts."),
    ],
    model: Annotated[str, typer.Option(help="Alias or version.")] = "champion",
    backend: Annotated[
        Backend, typer.Option(help="local: stream in chunks in this process; dask: map over a Dask cluster.")
    ] = Backend.local,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address (RETAIN_DASK_SCHEDULER; default: a LocalCluster)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="LocalCluster worker processes (RETAIN_DASK_WORKERS).")
    ] = None,
    chunk_rows: Annotated[
        int | None, typer.Option(min=1, help="Rows per chunk: the memory bound (RETAIN_BATCH_CHUNK_ROWS).")
    ] = None,
    store: Annotated[
        bool, typer.Option("--store/--no-store", help="Also keep the predictions in the store (local).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Score a file or a folder of partitions with the registered model (the output schema of
    Predictor.predict). `retain score` is the same command."""
    _quiet_libraries()
    from retain.batch.score import score_files
    from retain.predictor import Predictor

    if store and backend is Backend.dask:
        _fail("--store needs the local backend (the dask backend only writes files)")
    with _friendly_errors():
        predictor = Predictor.from_registry(dataset, task, stage, model)
        db = _store() if store else None
        try:
            summary = score_files(
                predictor,
                input,
                output,
                backend=backend,
                chunk_rows=chunk_rows,
                scheduler=scheduler,
                workers=workers,
                store=db,
            )
        finally:
            if db is not None:
                db.close()
    if as_json:
        _print_json(
            {
                "model_name": predictor.model_name,
                "model_version": predictor.version,
                "backend": summary.backend,
                "rows": summary.rows,
                "bands": summary.bands,
                "output": str(summary.output),
                "parts": summary.parts,
                "stored": store,
            }
        )
        return
    err.print(
        f"scored {summary.rows} students with {predictor.model_name} v{predictor.version} "
        f"({summary.backend}): {summary.bands}"
    )
    out.print(f"wrote {output}")


app.command("score", help="Alias of `retain predict`: score a file or folder, locally or on Dask.")(predict)


# ----------------------------------------------------------------------------- models


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Argument(help="Only names starting with this.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Registered models, versions, aliases and held-out metrics."""
    _quiet_libraries()
    from retain.training import registry

    registry.configure()
    versions = registry.list_versions(name)
    if as_json:
        _print_json({"versions": [v.__dict__ for v in versions]})
        return
    table = Table("model", "version", "aliases", "held-out metrics")
    for v in versions:
        keys = ["test_roc_auc", "test_macro_f1", "test_accuracy", "test_rmse", "test_r2"]
        shown = ", ".join(f"{k[5:]} {v.metrics[k]:.3f}" for k in keys if k in v.metrics)
        table.add_row(v.name, str(v.version), ", ".join(v.aliases), shown)
    out.print(table)


@models_app.command("promote")
def models_promote(
    name: str,
    version: int,
    force: Annotated[bool, typer.Option(help="Skip the gate (an audited override).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why the override (required with --force).")] = None,
) -> None:
    """Make VERSION the champion of NAME if it beats the champion on the same held-out data."""
    _quiet_libraries()
    from retain.training.promote import promote

    with _friendly_errors():
        decision = promote(name, version, force=force, reason=reason)
    (out if decision.promote else err).print(decision.reason)
    if not decision.promote:
        raise typer.Exit(1)


@models_app.command("rollback")
def models_rollback(name: str) -> None:
    """Move the champion alias back to the previous champion."""
    _quiet_libraries()
    from retain.training import registry

    registry.configure()
    with _friendly_errors():
        version = registry.rollback(name)
    out.print(f"{name}: champion is now version {version}")


# ----------------------------------------------------------------------------- keys, roster, privacy


def _store() -> Any:
    from retain.store.repository import Store

    return Store.from_settings()


def _cli_scope() -> Any:
    import getpass

    from retain.store.repository import Scope

    return Scope.admin(actor=f"cli:{getpass.getuser()}")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="advisor or admin")],
    programme: Annotated[list[str] | None, typer.Option(help="Programme(s) an advisor covers.")] = None,
    student: Annotated[list[str] | None, typer.Option(help="Student id(s) in an advisor's caseload.")] = None,
    expires_days: Annotated[float | None, typer.Option(help="Days until the key expires.")] = None,
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create an API key; the secret is shown once."""
    if role not in ("advisor", "admin"):
        _fail(f"role must be advisor or admin, not {role!r}")
    store = _store()
    caseload = list(student or [])  # raw ids: the store pseudonymises them
    key_id, secret = store.create_key(
        role,
        programmes=programme or [],
        caseload=caseload,
        expires_in_days=expires_days,
        name=name,
        scope=_cli_scope(),
    )
    if as_json:
        _print_json({"key_id": key_id, "secret": secret, "role": role})
    else:
        out.print(f"key {key_id} ({role}); secret (shown once): {secret}")


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Keys with role, scope and state (never secrets)."""
    keys = _store().list_keys(include_inactive=True)
    rows = [{k: (str(v) if v is not None else None) for k, v in key.__dict__.items()} for key in keys]
    if as_json:
        _print_json({"keys": rows})
        return
    table = Table(*(rows[0].keys() if rows else ["id"]))
    for row in rows:
        table.add_row(*[str(v or "") for v in row.values()])
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once."""
    if not _store().revoke_key(key_id, scope=_cli_scope()):
        _fail(f"no active key {key_id!r}")
    out.print(f"revoked {key_id}")


@keys_app.command("rotate")
def keys_rotate(key_id: str, grace_hours: Annotated[float, typer.Option()] = 0.0) -> None:
    """Replace a key with a new secret (the old one stays valid for the grace period)."""
    with _friendly_errors():
        new_id, secret = _store().rotate_key(key_id, grace_hours=grace_hours, scope=_cli_scope())
    out.print(f"key {new_id} replaces {key_id}; secret (shown once): {secret}")


@roster_app.command("import")
def roster_import(
    file: Path,
    dataset: Annotated[str | None, typer.Option(help="Dataset the roster belongs to (default: all).")] = None,
) -> None:
    """Import a roster CSV (student_id, name, contact, programme, advisor); names are encrypted."""
    from retain.data.load import read_table

    with _friendly_errors():
        frame = read_table(file)
        missing = [c for c in ("student_id", "name") if c not in frame.columns]
        if missing:
            _fail(
                f"roster file lacks column(s) {missing}; expected student_id, name, contact, programme, advisor"
            )
        try:
            count = _store().import_roster(frame, dataset=dataset, scope=_cli_scope())
        except ValueError as exc:
            _fail(str(exc))
    out.print(f"imported {count} roster rows")


@privacy_app.command("purge")
def privacy_purge(
    older_than_days: Annotated[
        int | None, typer.Option(min=0, help="Default: RETAIN_RETENTION_DAYS.")
    ] = None,
) -> None:
    """Delete everything older than the retention period (audited)."""
    counts = _store().purge(older_than_days, scope=_cli_scope())
    out.print(counts)


@privacy_app.command("erase")
def privacy_erase(student_id: str, dataset: Annotated[str | None, typer.Option()] = None) -> None:
    """Delete every row about a student, roster included (audited by pseudonym only)."""
    counts = _store().erase(student_id, _cli_scope(), dataset=dataset)
    out.print(counts)


@privacy_app.command("export")
def privacy_export(student_id: str, dataset: Annotated[str | None, typer.Option()] = None) -> None:
    """A subject-access export of everything stored about a student, as JSON on stdout."""
    _print_json(_store().export(student_id, _cli_scope(), dataset=dataset))


# ----------------------------------------------------------------------------- monitor


@monitor_app.command("drift")
def monitor_drift(
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    task: Annotated[str | None, typer.Option(help="Task (default: the spec's first).")] = None,
    stage: Annotated[str | None, typer.Option(help="Stage (default: the task's last).")] = None,
    window: Annotated[str, typer.Option(help="Recent traffic to compare: 30m, 12h, 7d, 2w.")] = "7d",
    last: Annotated[int | None, typer.Option(min=1, help="Only the last N predictions.")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Folder for the HTML report (default: RETAIN_HOME/reports).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Drift of recent predictions' inputs and outputs against the champion's training reference."""
    from retain.monitoring.checks import check_drift, parse_window, store_drift, write_report
    from retain.settings import get_settings

    with _friendly_errors():
        try:
            parse_window(window)
        except ValueError as exc:
            _fail(str(exc))
        store = _store()
        try:
            check = check_drift(dataset, task, stage, window=window, last=last, store=store)
            stored = store_drift(check, store)
        finally:
            store.close()
        path = write_report(check, report or get_settings().home / "reports")
    r = check.report
    if as_json:
        _print_json({**check.to_dict(), "html": str(path), "id": stored})
        return
    table = Table(title=f"Drift of {check.model_name} v{check.model_version} ({check.window})")
    for column in ("feature", "test", "statistic", "p-value", "status"):
        table.add_column(column)
    for f in sorted(r.features + r.predictions, key=lambda x: (not x.drifted, x.feature)):
        status = "[red]drifted[/]" if f.drifted else ("ok" if f.judged else "[dim]not judged[/]")
        p = "" if f.p_value is None else f"{f.p_value:.3g}"
        table.add_row(f.feature, f.test, f"{f.statistic:.3g}", p, status)
    out.print(table)
    if not r.enough_data:
        out.print(f"not enough data: {r.n_current} predictions in the window, {r.options.min_samples} needed")
    else:
        verdict = "[red]dataset drift[/]" if r.dataset_drift else "no dataset drift"
        out.print(
            f"{verdict}: {len(r.drifted)} of {len(r.judged)} features drifted ({r.share_drifted:.0%}); "
            f"prediction drift: {'yes' if r.prediction_drift else 'no'}"
        )
    err.print(f"report: {path}")


@monitor_app.command("performance")
def monitor_performance(
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    task: Annotated[str | None, typer.Option(help="Task (default: the spec's first).")] = None,
    period: Annotated[str, typer.Option(help="Period of outcomes: W, M, Q or Y.")] = "M",
    window: Annotated[
        str | None, typer.Option(help="Only outcomes recorded in the last 30d, 12w, ...")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Live performance: predictions against the outcomes recorded later, by version, period and group."""
    from retain.monitoring.checks import check_performance

    if period not in ("W", "M", "Q", "Y"):
        _fail(f"period {period!r}: use W, M, Q or Y")
    with _friendly_errors():
        try:
            report = check_performance(dataset, task, period=period, window=window)
        except ValueError as exc:
            _fail(str(exc))
    if as_json:
        _print_json(report.to_dict())
        return
    table = Table(title=f"Live performance of {dataset}.{report.task} ({report.primary_metric})")
    for column in ("version", "period", "outcomes", "adverse", report.primary_metric, "recall (adverse)"):
        table.add_column(column)
    for p in report.periods:
        main = p.metrics.get(report.primary_metric)
        recall = p.metrics.get("recall_adverse")
        table.add_row(
            str(p.model_version),
            p.period,
            str(p.n),
            str(p.n_adverse),
            "too few" if not p.judged else (f"{main:.3f}" if main is not None else ""),
            "" if recall is None else f"{recall:.2f}",
        )
    out.print(table)
    if report.unmatched:
        out.print(f"{report.unmatched} outcomes say nothing about this task (unknown labels)")
    for alert in report.alerts:
        out.print(f"[red]alert:[/] {alert}")


@outcomes_app.command("import")
def outcomes_import(
    file: Path,
    dataset: Annotated[str, typer.Option(help="Dataset the outcomes belong to.")],
) -> None:
    """Record real outcomes from a CSV (student_id, outcome; optional task, recorded_at, event_id)."""
    from retain.data.load import read_table
    from retain.data.spec import load_spec
    from retain.monitoring.outcomes import OutcomeFileError, outcome_rows

    with _friendly_errors():
        spec = load_spec(dataset)
        try:
            rows = outcome_rows(read_table(file), spec)
        except OutcomeFileError as exc:
            _fail(str(exc))
        store, scope = _store(), _cli_scope()
        for row in rows:
            store.record_outcome(
                dataset,
                row.student_id,
                row.outcome,
                task=row.task,
                event_id=row.event_id,
                recorded_at=row.recorded_at,
                scope=scope,
            )
        store.close()
    out.print(f"recorded {len(rows)} outcomes (repeated rows are recorded once)")


# ----------------------------------------------------------------------------- retrain, flows


def _print_retrain(result: dict[str, Any]) -> None:
    if "skipped" in result:
        out.print(f"no retrain: {result['skipped']}")
        return
    rows = result["rows"]
    test = result["paired_test"]
    verdict = "[green]promoted[/]" if result["promoted"] else "[yellow]champion stays[/]"
    out.print(
        f"{result['model_name']}: champion v{result['champion_version']} {result['metric']} "
        f"{result['champion_score']:.4f}, challenger v{result['challenger_version']} "
        f"{result['challenger_score']:.4f} on {rows['fresh_test']} fresh held-out students "
        f"(trained on {rows['reference']} reference + {rows['fresh_train']} newly labelled)"
    )
    out.print(
        f"paired bootstrap ({test['rounds']} rounds): gain {test['improvement']:+.4f}, "
        f"lower {1 - test['alpha']:.0%} bound {test['low']:+.4f}, p = {test['p_value']:.3f}; "
        f"margin {result['margin']:.4f}"
    )
    out.print(f"{verdict}: {result['reason']}")


@models_app.command("retrain")
def models_retrain(
    name: Annotated[str, typer.Argument(help="dataset.task.stage")],
    data: Annotated[
        Path | None, typer.Option(help="Reference data (default: the data folder's file).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Retrain from recorded outcomes; promote only if the paired gate says the challenger is better."""
    _quiet_libraries()
    from retain.settings import get_settings
    from retain.training.retrain import RetrainOptions, retrain

    with _friendly_errors():
        options = RetrainOptions.from_settings(get_settings(), data_path=data)
        result = retrain(name, options=options, actor="cli", progress=_progress()).to_dict()
    if as_json:
        _print_json(result)
    else:
        _print_retrain(result)


def _run_flow(name: str, call: Callable[[], dict[str, Any]]) -> None:
    err.print(f"running flow {name} (Prefect; a temporary local server starts when none is configured)")
    with _friendly_errors():
        result = call()
    _print_json(result)


@flows_run_app.command("train")
def flows_run_train(
    dataset: Annotated[str, typer.Option()],
    task: Annotated[str | None, typer.Option()] = None,
    stage: Annotated[str | None, typer.Option()] = None,
    data: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Train, evaluate, register and gate (prints JSON)."""
    _quiet_libraries()
    from retain.flows import configure_prefect

    configure_prefect()
    from retain.flows.train import train_flow

    _run_flow("train", lambda: train_flow(dataset, task, stage, str(data) if data else None))


@flows_run_app.command("batch_score")
def flows_run_batch_score(
    dataset: Annotated[str, typer.Option()],
    task: Annotated[str, typer.Option()],
    stage: Annotated[str, typer.Option()],
    input: Annotated[Path, typer.Option("--input")],
    output: Annotated[Path, typer.Option("--output")],
    store: Annotated[bool, typer.Option("--store/--no-store", help="Also keep them in the store.")] = True,
) -> None:
    """Score a file; the predictions also go to the store for the dashboard (prints JSON)."""
    _quiet_libraries()
    from retain.flows import configure_prefect

    configure_prefect()
    from retain.flows.score import batch_score_flow

    _run_flow("batch_score", lambda: batch_score_flow(dataset, task, stage, str(input), str(output), store))


@flows_run_app.command("monitor")
def flows_run_monitor(
    dataset: Annotated[str, typer.Option()],
    task: Annotated[str | None, typer.Option()] = None,
    stage: Annotated[str | None, typer.Option()] = None,
    window: Annotated[str, typer.Option()] = "7d",
    retrain: Annotated[
        bool, typer.Option("--retrain/--no-retrain", help="Retrain where alerts call for it.")
    ] = False,
    data: Annotated[Path | None, typer.Option(help="Reference data for retrains.")] = None,
) -> None:
    """Drift and live performance of every champion; stored and reported (prints JSON)."""
    _quiet_libraries()
    from retain.flows import configure_prefect

    configure_prefect()
    from retain.flows.monitor import monitor_flow

    _run_flow(
        "monitor", lambda: monitor_flow(dataset, task, stage, window, retrain, str(data) if data else None)
    )


@flows_run_app.command("retrain")
def flows_run_retrain(
    model: Annotated[str, typer.Option(help="dataset.task.stage")],
    data: Annotated[Path | None, typer.Option(help="Reference data (default: the data folder's).")] = None,
) -> None:
    """Retrain one model through the paired gate (prints JSON)."""
    _quiet_libraries()
    from retain.flows import configure_prefect

    configure_prefect()
    from retain.flows.retrain import retrain_flow

    _run_flow("retrain", lambda: retrain_flow(model, "manual", "cli", str(data) if data else None))


@flows_app.command("serve")
def flows_serve(
    dataset: Annotated[list[str] | None, typer.Option(help="Datasets to monitor (default: all).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the deployments and stop.")] = False,
) -> None:
    """Register the cron schedules (RETAIN_FLOW_SCHEDULES) with a Prefect server and run them."""
    _quiet_libraries()
    from retain.data.spec import list_specs
    from retain.flows import configure_prefect

    configure_prefect()
    from retain.flows.schedules import deployments

    with _friendly_errors():
        planned = deployments(dataset or list_specs())
    for d in planned:
        schedules = [str(getattr(x.schedule, "cron", x.schedule)) for x in (d.schedules or [])]
        out.print(f"{d.name}: flow {d.flow_name}, cron {', '.join(schedules)}, parameters {d.parameters}")
    if dry_run or not planned:
        return
    from prefect import serve as prefect_serve

    prefect_serve(*planned)


@app.command()
def simulate(
    dataset: Annotated[str, typer.Option()] = "dropout",
    scenario: Annotated[str, typer.Option(help="drift or stable")] = "drift",
    seed: Annotated[int, typer.Option()] = 7,
    reference_rows: Annotated[int, typer.Option(min=200)] = 2000,
    intake_rows: Annotated[int, typer.Option(min=200)] = 1200,
    force_retrain: Annotated[bool, typer.Option(help="Retrain even when nothing calls for it.")] = False,
    home: Annotated[
        Path | None, typer.Option(help="Where the run keeps its state (default: RETAIN_HOME/simulate/...).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The whole feedback loop on one machine: stream a new intake, detect drift, record outcomes,
    retrain, and print the gate's decision. Embedded store and registry; deterministic for a seed."""
    _quiet_libraries()
    from retain.feedback_loop import fresh_home
    from retain.feedback_loop import simulate as run_simulation
    from retain.settings import get_settings
    from retain.simulation import SCENARIOS

    if scenario not in SCENARIOS:
        _fail(f"scenario {scenario!r}: choose one of {list(SCENARIOS)}")
    folder = fresh_home(home or get_settings().home / "simulate", scenario, seed)
    os.environ["RETAIN_HOME"] = str(folder)
    os.environ["RETAIN_DATABASE_URL"] = f"sqlite:///{folder / 'retain.db'}"
    os.environ["RETAIN_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow' / 'mlflow.db'}"
    get_settings.cache_clear()
    with _friendly_errors():
        result = run_simulation(
            dataset,
            scenario,
            seed=seed,
            reference_rows=reference_rows,
            intake_rows=intake_rows,
            force_retrain=force_retrain,
            progress=_progress(),
        )
    if as_json:
        _print_json(result.to_dict())
        return
    out.print(
        f"champion {result.model_name} v{result.champion_version}: {result.metric} "
        f"{result.champion_test_metric:.4f} on held-out training rows"
    )
    s = result.streamed
    out.print(f"stream: {s['sent']} events, {s['scored']} scored, {s['dead_letters']} dead letters")
    d = result.drift
    if d:
        out.print(
            f"drift: {len(d['drifted'])} feature(s) drifted ({', '.join(d['drifted']) or 'none'}); "
            f"dataset drift {'yes' if d['dataset_drift'] else 'no'}, prediction drift "
            f"{'yes' if d['prediction_drift'] else 'no'}"
        )
    if result.live_metric is not None:
        out.print(
            f"live {result.metric} on the intake's {result.outcomes} outcomes: {result.live_metric:.4f}"
        )
    impact = result.impact
    if impact.get("difference") is not None:
        out.print(
            f"simulated interventions: {impact['n_helped']} of {impact['n_flagged']} flagged students helped; "
            f"adverse outcomes {100 * impact['difference']:+.0f} points against similar-risk students "
            f"(95% interval {100 * impact['ci_low']:+.0f} to {100 * impact['ci_high']:+.0f})"
        )
    for trigger in result.triggers:
        out.print(f"[red]alert:[/] {trigger}")
    if result.retrain is not None:
        _print_retrain(result.retrain)
    out.print(f"champion now: v{result.final_champion}   (state in {folder}, {result.seconds:.0f} s)")


# ----------------------------------------------------------------------------- serve


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: RETAIN_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: RETAIN_API_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default: RETAIN_API_WORKERS).")
    ] = None,
) -> None:
    """Start the prediction API under uvicorn."""
    _quiet_libraries()
    import uvicorn

    from retain.monitoring.metrics import MULTIPROCESS_ENV, multiprocess_dir
    from retain.settings import get_settings

    s = get_settings()
    n = workers or s.api_workers

    def run() -> None:
        uvicorn.run(
            "retain.serving.app:create_app",
            factory=True,
            host=host or s.api_host,
            port=port or s.api_port,
            workers=n,
            log_level="warning",
            access_log=False,
        )

    os.environ["RETAIN_API_WORKERS"] = str(n)  # the workers share the CPUs (Settings.api_predict_threads)
    own = multiprocess_dir()
    if own is not None:  # the caller's own metrics folder (prometheus_client needs it to exist)
        Path(own).mkdir(parents=True, exist_ok=True)
    if n == 1 or own is not None:
        run()
        return
    # Several workers: their metrics meet in a fresh folder, so /metrics reports all of them
    with tempfile.TemporaryDirectory(prefix="retain-metrics-") as folder:
        os.environ[MULTIPROCESS_ENV] = folder
        try:
            run()
        finally:
            del os.environ[MULTIPROCESS_ENV]  # the folder goes with the server


# ----------------------------------------------------------------------------- dashboard


def _dashboard_command(port: int, api_url: str) -> tuple[list[str], dict[str, str]]:
    import importlib.util

    if importlib.util.find_spec("streamlit") is None:
        _fail("the dashboard needs Streamlit: pip install streamlit")
    script = Path(__file__).resolve().parent / "dashboard" / "app.py"
    command = [
        sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
        "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    env = {**os.environ, "RETAIN_DASHBOARD_API_URL": api_url}
    return command, env


@app.command()
def dashboard(
    port: Annotated[int | None, typer.Option(help="Port (default: RETAIN_DASHBOARD_PORT).")] = None,
    api_url: Annotated[str | None, typer.Option(help="The API (default: RETAIN_DASHBOARD_API_URL).")] = None,
) -> None:
    """Start the educator dashboard (Streamlit); sign in with an API key."""
    from retain.settings import get_settings

    s = get_settings()
    command, env = _dashboard_command(port or s.dashboard_port, api_url or s.dashboard_api_url)
    err.print(f"dashboard: http://127.0.0.1:{port or s.dashboard_port}")
    os.execvpe(command[0], command, env)


# ----------------------------------------------------------------------------- demo


@app.command()
def demo(
    rows: Annotated[int, typer.Option(help="Synthetic rows per dataset when no data is present.")] = 2000,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve", help="Then start the API.")] = False,
    vision: Annotated[
        bool,
        typer.Option(
            "--vision/--no-vision", help="Also train the engagement image model when its images are present."
        ),
    ] = True,
) -> None:
    """Train what is not trained yet (synthetic data where none is present), summarise, and serve."""
    _quiet_libraries()
    from retain.demo import run_demo, train_engagement

    with _friendly_errors():
        summary = run_demo(rows=rows, progress=_progress())
        if vision:
            row = train_engagement(progress=_progress())
            if row is not None:
                summary.append(row)
    table = Table("model", "version", "data", "held-out metrics")
    for row in summary:
        table.add_row(row["model"], str(row["version"]), row["data"], row["metrics"])
    out.print(table)
    if not serve_api:
        return
    from retain.settings import get_settings

    s = get_settings()
    from retain.demo import seed_caseload

    with _friendly_errors():
        added = seed_caseload()
    if added:
        err.print(f"scored {added} predictions of 200 synthetic students for the dashboard's caseload")
    store = _store()
    _, advisor_key = store.create_key(
        "advisor", programmes=["9254", "9500", "9147", "GP", "MS"], name="demo advisor", expires_in_days=7
    )
    _, admin_key = store.create_key("admin", name="demo admin", expires_in_days=7)
    store.close()
    url = f"http://{s.api_host}:{s.api_port}"
    out.print(f"\nAPI: {url}   (OpenAPI page: {url}/docs)")
    out.print(f"advisor key (7 days): {advisor_key}")
    out.print(f"admin key (7 days):   {admin_key}")
    out.print(f"try: curl -s -H 'X-API-Key: {advisor_key}' {url}/v1/models | head -c 400")
    import subprocess

    command, env = _dashboard_command(s.dashboard_port, url)
    board = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out.print(
        f"dashboard: http://127.0.0.1:{s.dashboard_port}   (sign in with a key above)\nstop with Ctrl-C"
    )
    try:
        serve(None, None, None)
    finally:
        board.terminate()
        board.wait(timeout=10)


# ----------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target Alembic revision.")] = "head",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the store's migrations (RETAIN_DATABASE_URL) once, before the services start."""
    from retain.settings import get_settings
    from retain.store.db import current_revision, head_revision, make_engine, upgrade

    with _friendly_errors():
        engine = make_engine(get_settings().resolved_database_url())
        try:
            before = current_revision(engine)
            upgrade(revision=revision, engine=engine)
            after = current_revision(engine)
        finally:
            engine.dispose()
    result = {"from": before, "to": after, "head": head_revision()}
    if as_json:
        _print_json(result)
    else:
        out.print(f"store migrated from {before or 'empty'} to {after} (head {result['head']})")


# ----------------------------------------------------------------------------- stream


@stream_app.command("worker")
def stream_worker(
    source: Annotated[
        str, typer.Option(help="Events: redis://host:port/db?stream=S&group=G, kinesis://..., memory://S.")
    ],
    sink: Annotated[str, typer.Option(help="Predictions: redis://host:port/db?stream=S, kinesis://...")],
    dead_letter: Annotated[
        str | None, typer.Option(help="Dead letters (default: the source stream + '-dead-letter').")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Micro-batch size (RETAIN_STREAM_BATCH_SIZE).")
    ] = None,
    max_wait_ms: Annotated[
        int | None, typer.Option(help="Longest a micro-batch waits to fill (RETAIN_STREAM_MAX_WAIT_MS).")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics on this port.")] = None,
) -> None:
    """Score events from a stream until SIGTERM/SIGINT (then finish the batches read, exit 0)."""
    _quiet_libraries()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from retain.streaming.base import StreamError
    from retain.streaming.worker import serve as serve_stream

    with _friendly_errors():
        try:
            stats = serve_stream(
                source,
                sink,
                dead_letter,
                batch_size=batch_size,
                max_wait_ms=max_wait_ms,
                metrics_port=metrics_port,
            )
        except StreamError as exc:
            _fail(str(exc))
    err.print(
        f"stopped: {stats.events} events, {stats.outputs} predictions ({stats.duplicates} repeated), "
        f"{stats.dead_letters} dead letters, {stats.abandoned} left for redelivery"
    )


@stream_app.command("replay")
def stream_replay(
    dataset: Annotated[str, typer.Option(help="Dataset (spec) name.")],
    to: Annotated[str, typer.Option("--to", help="Stream URL to send events to.")],
    rate: Annotated[float, typer.Option(help="Events per second (0: as fast as possible).")],
    count: Annotated[
        int | None, typer.Option(help="Events to send (default: every record of the file, or 1000).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="CSV or Parquet of students (default: synthetic).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed sends the same event ids.")] = 42,
    task: Annotated[
        str | None, typer.Option(help="Task named in each event (default: the worker's default).")
    ] = None,
    stage: Annotated[
        str | None, typer.Option(help="Send records as of this stage and name it in each event.")
    ] = None,
) -> None:
    """Send student records as stream events at a steady rate (a simulated student-information system)."""
    _quiet_libraries()
    from retain.data.spec import load_spec
    from retain.streaming.base import StreamError
    from retain.streaming.replay import events, load_records, replay
    from retain.streaming.urls import open_sink

    with _friendly_errors():
        try:
            spec = load_spec(dataset)
            records = load_records(spec, file=file, count=count, seed=seed, task=task, stage=stage)
            target = open_sink(to)
            try:
                stats = replay(
                    events(spec, records, count=count, seed=seed, task=task, stage=stage),
                    target,
                    rate=rate,
                )
            finally:
                target.close()
        except StreamError as exc:
            _fail(str(exc))
    err.print(f"sent {stats.sent} events in {stats.seconds:.1f}s ({stats.rate:,.0f}/s)")


@stream_app.command("schema")
def stream_schema(
    output: Annotated[Path | None, typer.Option(help="Write the schema files into this folder.")] = None,
) -> None:
    """Print the stream event's JSON Schema, or write all three message schemas into a folder."""
    from retain.streaming.messages import json_schemas, schema_text, write_schemas

    if output is None:
        out.print_json(schema_text(json_schemas()["stream-message.schema.json"]))
        return
    for path in write_schemas(output):
        err.print(f"wrote {path}")


def main() -> None:  # pragma: no cover - console entry point
    app()
