"""The engagement model in MLflow: logged as ONNX, registered, promoted through the one gate.

Registered name ``vision.engagement``, alias ``champion`` like the tabular models. The run holds
the parameters, the held-out metrics (whole recordings), the confusion matrix, the error rate
per sub-class, the model card and, when it has been run, the shortcut audit. Nothing in it
identifies a person: no image or file name is logged, only counts and rates.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retain.settings import Settings, get_settings
from retain.training import registry
from retain.training.gate import GateDecision, decide
from retain.vision.runtime import OnnxEngagementModel

MODEL_NAME = "vision.engagement"
EXPERIMENT = "engagement-images"
PRIMARY_METRIC = "roc_auc"
#: A challenger must beat the champion's held-out ROC-AUC by this much to be promoted.
MARGIN = 0.01
_PIP = ["retain", "onnxruntime", "numpy", "pillow"]


@dataclass(frozen=True)
class LoadedEngagementModel:
    """A registered version ready to serve."""

    model: OnnxEngagementModel
    version: int
    metrics: dict[str, float]


def log_and_register(
    onnx_bytes: bytes,
    classes: tuple[str, str],
    params: dict[str, Any],
    metrics: dict[str, float],
    artifacts: dict[str, str],
    settings: Settings | None = None,
) -> tuple[int, str]:
    """Log a run with the ONNX model and register a version; returns (version, run id).

    ``artifacts`` maps file names to text contents (model card, audit JSON...).
    """
    import mlflow
    import mlflow.onnx
    import onnx

    s = settings or get_settings()
    registry.configure(s)
    with mlflow.start_run(experiment_id=registry.experiment_id(EXPERIMENT, s)) as run:
        mlflow.set_tags(
            {"retain.model": MODEL_NAME, "git_commit": registry.git_commit(), "classes": json.dumps(classes)}
        )
        mlflow.log_params({k: v for k, v in params.items() if v is not None})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in artifacts.items():
                (Path(tmp) / name).write_text(text, encoding="utf-8")
                mlflow.log_artifact(str(Path(tmp) / name))
        info = mlflow.onnx.log_model(
            onnx.load_from_string(onnx_bytes),
            name="model",
            registered_model_name=MODEL_NAME,
            pip_requirements=_PIP,
            save_as_external_data=False,
            metadata={"classes": list(classes)},
            await_registration_for=60,
        )
        return int(info.registered_model_version), run.info.run_id


def load(
    ref: str = registry.CHAMPION, settings: Settings | None = None, threads: int = 0
) -> LoadedEngagementModel:
    """Load a registered version (alias or number) into onnxruntime; ``LookupError`` if none."""
    import mlflow
    import mlflow.onnx
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    s = settings or get_settings()
    registry.configure(s)
    client = MlflowClient()
    try:
        mv = (
            client.get_model_version(MODEL_NAME, ref)
            if ref.isdigit()
            else client.get_model_version_by_alias(MODEL_NAME, ref)
        )
    except MlflowException:
        raise LookupError(
            f"no registered engagement model {MODEL_NAME!r} at {ref!r}: run `retain vision train`"
        ) from None
    proto = mlflow.onnx.load_model(f"models:/{MODEL_NAME}/{mv.version}")
    run = client.get_run(str(mv.run_id))
    classes = tuple(json.loads(run.data.tags.get("classes", '["Engaged", "Not engaged"]')))
    model = OnnxEngagementModel.from_bytes(proto.SerializeToString(), classes, threads)
    return LoadedEngagementModel(model, int(mv.version), dict(run.data.metrics))


def gate(candidate: float, champion: float | None) -> GateDecision:
    """The promotion rule: held-out ROC-AUC on the same recordings, by ``MARGIN``."""
    return decide(PRIMARY_METRIC, candidate, champion, greater_is_better=True, margin=MARGIN)


def champion_version(settings: Settings | None = None) -> int | None:
    registry.configure(settings or get_settings())
    return registry.champion_version(MODEL_NAME)
