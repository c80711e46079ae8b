"""MLflow tracking and model registry: the only module that talks to MLflow.

Embedded default: a SQLite store and a local artifact folder under ``RETAIN_HOME``; production
points ``RETAIN_TRACKING_URI`` (or ``MLFLOW_TRACKING_URI``) at a server with PostgreSQL and S3.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from retain.settings import Settings, get_settings
from retain.training.artifact import RiskModel

CHAMPION = "champion"
PREVIOUS = "previous-champion"
_PIP_REQUIREMENTS = ["retain", "scikit-learn", "lightgbm", "xgboost-cpu", "pandas", "numpy"]


def configure(settings: Settings | None = None) -> str:
    """Point MLflow at the configured store (creating the embedded one) and return its URI."""
    import mlflow

    s = settings or get_settings()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = s.resolved_tracking_uri()
    if uri.startswith("sqlite:///"):
        s.mlflow_dir.mkdir(parents=True, exist_ok=True)
    # mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into os.environ; keep the user's
    # environment as it was so a later configure() with other settings is not overridden by it.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(s.registry_uri or uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return uri


def experiment_id(dataset: str, settings: Settings | None = None) -> str:
    """The experiment of a dataset (created with a local artifact location on first use)."""
    import mlflow

    s = settings or get_settings()
    name = f"{s.experiment_prefix}/{dataset}"
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    uri = s.resolved_tracking_uri()
    location = s.artifact_location() if uri.startswith("sqlite:") or uri.startswith("file:") else None
    return str(mlflow.create_experiment(name, artifact_location=location))


def git_commit() -> str:
    """The current git commit of the project, or ``unknown`` outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _pyfunc_class() -> type:
    import mlflow.pyfunc

    class RetainModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
        """MLflow wrapper: validated canonical features in, risk, band and prediction out."""

        def __init__(self, risk_model: RiskModel) -> None:
            self.risk_model = risk_model

        def predict(
            self, context: object, model_input: pd.DataFrame, params: dict[str, object] | None = None
        ) -> pd.DataFrame:
            scores = self.risk_model.score(model_input)
            return pd.DataFrame(
                {"risk_score": scores.risk, "risk_band": scores.band, "prediction": scores.predicted}
            )

    return RetainModel


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered model version with the facts the CLI and API show."""

    name: str
    version: int
    run_id: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    created: int
    tags: dict[str, str]


def log_risk_model(
    model: RiskModel,
    registered_name: str,
    input_example: pd.DataFrame | None = None,
) -> int:
    """Log the model to the active run and register a new version; returns the version number."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    wrapper = _pyfunc_class()(model)
    signature = None
    if input_example is not None:
        signature = infer_signature(input_example, wrapper.predict(None, input_example))
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=wrapper,
        pip_requirements=_PIP_REQUIREMENTS,
        signature=signature,
        input_example=input_example,
        registered_model_name=registered_name,
        await_registration_for=60,
    )
    return int(info.registered_model_version)


def load_risk_model(name: str, ref: str = CHAMPION) -> tuple[RiskModel, int]:
    """Load a registered model by alias (``champion``) or version number."""
    import mlflow.pyfunc
    from mlflow import MlflowClient

    client = MlflowClient()
    if ref.isdigit():
        version = int(ref)
        uri = f"models:/{name}/{version}"
    else:
        mv = client.get_model_version_by_alias(name, ref)
        version = int(mv.version)
        uri = f"models:/{name}/{version}"
    loaded = mlflow.pyfunc.load_model(uri)
    wrapper = loaded.unwrap_python_model()
    return wrapper.risk_model, version


def champion_version(name: str) -> int | None:
    """The version that holds the ``champion`` alias, if any."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return int(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def set_champion(name: str, version: int) -> int | None:
    """Give ``version`` the champion alias; the old champion becomes ``previous-champion``."""
    from mlflow import MlflowClient

    client = MlflowClient()
    old = champion_version(name)
    if old is not None and old != version:
        client.set_registered_model_alias(name, PREVIOUS, str(old))
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return old


def rollback(name: str) -> int:
    """Move the champion alias back to the previous champion; returns the restored version."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        previous = int(client.get_model_version_by_alias(name, PREVIOUS).version)
    except MlflowException:
        raise LookupError(f"model {name!r} has no previous champion to roll back to") from None
    current = champion_version(name)
    client.set_registered_model_alias(name, CHAMPION, str(previous))
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, str(current))
    return previous


def _aliases_by_version(registered: object) -> dict[int, list[str]]:
    raw = getattr(registered, "aliases", {}) or {}
    out: dict[int, list[str]] = {}
    items = raw.items() if isinstance(raw, dict) else ((a.alias, a.version) for a in raw)
    for alias, version in items:
        out.setdefault(int(version), []).append(str(alias))
    return out


def list_versions(name_filter: str | None = None) -> list[RegisteredVersion]:
    """Every registered version (newest first), with aliases and the run's test metrics."""
    from mlflow import MlflowClient

    client = MlflowClient()
    out: list[RegisteredVersion] = []
    for rm in client.search_registered_models():
        if name_filter and not rm.name.startswith(name_filter):
            continue
        alias_map = _aliases_by_version(rm)
        for mv in client.search_model_versions(f"name='{rm.name}'"):
            metrics: dict[str, float] = {}
            if mv.run_id:
                run = client.get_run(mv.run_id)
                metrics = {k: float(v) for k, v in run.data.metrics.items() if k.startswith("test_")}
            out.append(
                RegisteredVersion(
                    name=rm.name,
                    version=int(mv.version),
                    run_id=mv.run_id or "",
                    aliases=tuple(sorted(alias_map.get(int(mv.version), []))),
                    metrics=metrics,
                    created=int(mv.creation_timestamp or 0),
                    tags=dict(mv.tags or {}),
                )
            )
    return sorted(out, key=lambda v: (v.name, -v.version))


def delete_version(name: str, version: int) -> None:
    """Remove a registered version (used when a run fails after registering)."""
    from mlflow import MlflowClient

    MlflowClient().delete_model_version(name, str(version))


def artifact_dir() -> Path:
    """A scratch folder for files that are logged and then discarded."""
    return Path(tempfile.mkdtemp(prefix="retain-"))
