"""The demo: train what is not trained yet and summarise, on real data or synthetic data."""

from __future__ import annotations

from collections.abc import Callable

from retain.data.spec import list_specs, load_spec
from retain.settings import get_settings
from retain.training import registry
from retain.training.train import TrainOptions, train


def run_demo(rows: int = 2000, progress: Callable[[str], None] | None = None) -> list[dict[str, str]]:
    """Train every dataset's missing champions; synthesise data where the data folder has none."""
    settings = get_settings()
    say = progress or (lambda _m: None)
    registry.configure(settings)
    summary: list[dict[str, str]] = []
    for name in list_specs():
        spec = load_spec(name)
        path = settings.data_dir / spec.source.file
        source = "example data"
        data_path = None
        if not path.exists():
            from retain.data.synth import synthesize_to_file

            data_path = settings.home / "synthetic" / f"{spec.name}.csv"
            if not data_path.exists():
                say(f"{name}: no data in {settings.data_dir}; generating {rows} synthetic students")
                synthesize_to_file(spec, rows, data_path, seed=settings.seed)
            source = "synthetic"
        for task in spec.tasks:
            missing = [
                s for s in task.stages if registry.champion_version(spec.model_name(task.name, s)) is None
            ]
            for stage in missing:
                train(
                    name, task.name, stage, TrainOptions(data_path=data_path, importance=True), settings, say
                )
            for stage in task.stages:
                model_name = spec.model_name(task.name, stage)
                version = registry.champion_version(model_name)
                metrics = {}
                for v in registry.list_versions(model_name):
                    if v.version == version and v.name == model_name:
                        metrics = v.metrics
                keys = ["test_roc_auc", "test_macro_f1", "test_rmse", "test_r2"]
                shown = ", ".join(f"{k[5:]} {metrics[k]:.3f}" for k in keys if k in metrics)
                summary.append(
                    {"model": model_name, "version": str(version), "data": source, "metrics": shown}
                )
    return summary


def train_engagement(progress: Callable[[str], None] | None = None) -> dict[str, str] | None:
    """Train the engagement image model when its images are present and it has no champion.

    Returns the summary row, or ``None`` when there are no images or the vision extra (torch) is
    not installed: the image model is optional, the demo runs without it.
    """
    settings = get_settings()
    say = progress or (lambda _m: None)
    folder = settings.resolved_vision_data_dir()
    if not folder.is_dir():
        say(f"engagement images: none in {folder}; skipping the image model (see `retain vision data`)")
        return None
    try:
        import torch  # noqa: F401
    except ImportError:
        say("engagement images found, but the vision extra is not installed: pip install 'retain[vision]'")
        return None
    from retain.vision import registry as vision_registry
    from retain.vision.lifecycle import train_and_register

    if vision_registry.champion_version(settings) is None:
        say("engagement images: training the image model (embeddings are cached for later runs)")
        train_and_register(settings, progress=say)
    loaded = vision_registry.load("champion", settings)
    m = loaded.metrics
    shown = ", ".join(f"{k} {m[k]:.3f}" for k in ("roc_auc", "macro_f1") if k in m)
    return {
        "model": vision_registry.MODEL_NAME,
        "version": str(loaded.version),
        "data": "example images",
        "metrics": shown + " (unseen recordings; see the shortcut audit)",
    }


_FIRST = (
    "Ana",
    "Bruno",
    "Carla",
    "Diogo",
    "Eva",
    "Filipe",
    "Gabriela",
    "Hugo",
    "Inês",
    "João",
    "Lara",
    "Miguel",
)
_LAST = ("Almeida", "Barros", "Costa", "Duarte", "Esteves", "Ferreira", "Gomes", "Lopes", "Martins", "Nunes")


def seed_caseload(dataset: str = "dropout", stage: str = "semester_1", rows: int = 200, seed: int = 7) -> int:
    """Score a synthetic intake into the store, with a synthetic roster, so the dashboard has a
    caseload to show; returns how many predictions are new (none on a second run)."""
    import pandas as pd

    from retain.batch.score import store_predictions
    from retain.data.synth import synthesize
    from retain.predictor import Predictor
    from retain.store.repository import Scope, Store

    settings = get_settings()
    spec = load_spec(dataset)
    students = synthesize(spec, rows, seed=seed + 1000)
    students[spec.id.column] = [f"{spec.id.prefix}demo-{n:04d}" for n in range(len(students))]
    store = Store.from_settings(settings)
    created = 0
    try:
        for task in spec.tasks:
            if (
                stage not in task.stages
                or registry.champion_version(spec.model_name(task.name, stage)) is None
            ):
                continue
            predictor = Predictor.from_registry(dataset, task.name, stage, settings=settings)
            created += store_predictions(predictor, students, store, source=f"demo{seed}")
        roster = pd.DataFrame(
            {
                "student_id": students[spec.id.column],
                "name": [
                    f"{_FIRST[n % len(_FIRST)]} {_LAST[(n // len(_FIRST)) % len(_LAST)]}" for n in range(rows)
                ],
                "programme": students[spec.programme_column] if spec.programme_column else None,
            }
        )
        store.import_roster(roster, dataset=dataset, scope=Scope.admin("demo"))
    finally:
        store.close()
    return created
