"""Train, check, register and (through the gate) promote the engagement model: what
``retain vision train`` and the API's retrain job both call.

Steps: scan the image folder; train (:mod:`retain.vision.train`); export to ONNX and check that
onnxruntime gives the same probabilities as torch on held-out frames (a mismatch above
``ONNX_TOLERANCE`` stops here, nothing is registered); score the current champion on the same
held-out recordings; register the new version with its card; promote it if the gate agrees.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from retain.settings import Settings, get_settings
from retain.training import registry as tabular_registry
from retain.vision import registry
from retain.vision.card import render
from retain.vision.dataset import ImageFolder, scan
from retain.vision.embeddings import EmbeddingCache
from retain.vision.images import normalise, read, square
from retain.vision.runtime import OnnxEngagementModel, export_onnx
from retain.vision.train import TrainOptions, train

Progress = Callable[[str], None]
#: Largest allowed difference between torch's and onnxruntime's probabilities.
ONNX_TOLERANCE = 1e-4
_PARITY_FRAMES = 16


class ExportMismatchError(RuntimeError):
    """onnxruntime does not reproduce the torch model within the tolerance."""


def vision_home(settings: Settings) -> Path:
    return settings.home / "vision"


def cache_for(settings: Settings, seed: int) -> EmbeddingCache:
    return EmbeddingCache(vision_home(settings) / "embeddings", seed=seed)


def saved_audit(settings: Settings) -> dict[str, Any] | None:
    """The last audit written by ``retain vision evaluate --audit``, if any."""
    path = vision_home(settings) / "audit.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def held_out_inputs(folder: ImageFolder, rows: np.ndarray) -> np.ndarray:
    """Normalised backbone inputs of the given frames."""
    return normalise(np.stack([square(read(str(folder.items[i].path))) for i in rows]))


def onnx_parity(network: Any, model: OnnxEngagementModel, inputs: np.ndarray) -> float:
    """Largest absolute difference of P(positive) between torch and onnxruntime."""
    import torch

    with torch.no_grad():
        expected = torch.softmax(network(torch.from_numpy(inputs)), dim=1)[:, 1].numpy()
    return float(np.max(np.abs(model.predict_inputs(inputs) - expected)))


def train_and_register(
    settings: Settings | None = None,
    options: TrainOptions | None = None,
    *,
    folder: Path | None = None,
    promote: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train on the image folder, register the version, promote it through the gate."""
    s = settings or get_settings()
    options = options or TrainOptions(seed=s.seed)
    images = scan(folder or s.resolved_vision_data_dir())
    trained = train(images, options, cache=cache_for(s, options.seed), progress=progress)
    onnx_bytes = export_onnx(trained.network)
    served = OnnxEngagementModel.from_bytes(onnx_bytes, trained.classes)
    test_inputs = held_out_inputs(images, trained.split.test)
    # Held-out frames (what is served) and noise (probabilities away from 0 and 1, where a
    # confident model's saturated softmax could not show a difference).
    noise = np.random.default_rng(options.seed).normal(0, 1, (4, *test_inputs.shape[1:])).astype(np.float32)
    parity = onnx_parity(trained.network, served, np.concatenate([test_inputs[:_PARITY_FRAMES], noise]))
    if parity > ONNX_TOLERANCE:
        raise ExportMismatchError(
            f"onnxruntime differs from torch by {parity:.2e} (tolerance {ONNX_TOLERANCE:.0e})"
        )
    candidate = float(trained.metrics.get(registry.PRIMARY_METRIC, float("nan")))
    champion_score = None
    champion = registry.champion_version(s)
    if champion is not None:
        from sklearn.metrics import roc_auc_score

        current = registry.load("champion", s)
        labels = images.labels[trained.split.test]
        champion_score = float(roc_auc_score(labels, current.model.predict_inputs(test_inputs)))
    decision = registry.gate(candidate, champion_score)
    params = {
        **trained.options.to_params(),
        "backbone": "efficientnet-lite0",
        "epochs_run": trained.epochs_run,
    }
    metrics = {**trained.metrics, "onnx_max_abs_diff": parity, "train_seconds": trained.seconds}
    if champion_score is not None:
        metrics["champion_roc_auc_same_recordings"] = champion_score
    audit = saved_audit(s)
    card = render(
        None, trained.metrics, trained.confusion, trained.subclass_error, params, trained.classes, audit
    )
    artifacts = {
        "model_card.md": card,
        "evaluation.json": json.dumps(
            {"metrics": trained.metrics, "confusion": trained.confusion, "subclass_error": trained.subclass_error,
             "gate": decision.to_dict()}, indent=2),
    }  # fmt: skip
    if audit:
        artifacts["audit.json"] = json.dumps(audit, indent=2)
    version, run_id = registry.log_and_register(onnx_bytes, trained.classes, params, metrics, artifacts, s)
    promoted = bool(promote and decision.promote)
    if promoted:
        tabular_registry.set_champion(registry.MODEL_NAME, version)
    if progress:
        progress(
            f"registered {registry.MODEL_NAME} v{version}; {'promoted' if promoted else 'not promoted'}: {decision.reason}"
        )
    return {
        "model": registry.MODEL_NAME,
        "version": version,
        "run_id": run_id,
        "promoted": promoted,
        "decision": decision.to_dict(),
        "metrics": {k: v for k, v in metrics.items() if np.isfinite(v)},
        "confusion": trained.confusion,
        "subclass_error": trained.subclass_error,
        "model_card": card.replace(
            "# Model card: vision.engagement", f"# Model card: vision.engagement v{version}", 1
        ),
    }
