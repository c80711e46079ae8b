"""``retain vision``: data, train, evaluate, predict for the engagement image model.

Mounted by ``retain.cli``. Torch is imported only by ``train`` and ``evaluate`` (the vision
extra); ``predict`` runs the registered ONNX model with onnxruntime. ``--json`` prints one JSON
object on stdout; progress goes to stderr; bad input exits with code 2 and a message.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from retain.console import fail, print_json, say

__all__ = ["vision_app"]

vision_app = typer.Typer(
    help="The engagement image model: data, train, evaluate, predict.", no_args_is_help=True
)


def _folder(folder: Path | None) -> Path:
    from retain.settings import get_settings

    return folder or get_settings().resolved_vision_data_dir()


@vision_app.command("data")
def data(
    folder: Annotated[
        Path | None, typer.Option(help="Image folder (default: RETAIN_VISION_DATA_DIR).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Where the public data set is, and what a folder laid out like it holds."""
    from retain.vision.dataset import SOURCE, SOURCE_NOTE, ImageFolderError, scan

    root = _folder(folder)
    try:
        summary = scan(root).summary()
    except ImageFolderError as exc:
        if as_json:
            print_json({"source": SOURCE, "folder": str(root), "error": str(exc)})
            raise typer.Exit(2) from None
        fail(f"{exc}\nSource: {SOURCE}")
    if as_json:
        print_json({"source": SOURCE, **summary})
        return
    sys.stdout.write(f"Source: {SOURCE}\n{SOURCE_NOTE}\n\n")
    sys.stdout.write(f"{summary['root']}: {summary['images']} images in {summary['recordings']} recordings\n")
    for name, counts in summary["subclasses"].items():  # type: ignore[attr-defined]
        sys.stdout.write(f"  {name:28s} {counts['images']:5d} images {counts['recordings']:3d} recordings\n")
    sys.stdout.write(f"Positive (adverse) class: {summary['positive_class']}\n")


@vision_app.command("train")
def train(
    folder: Annotated[
        Path | None, typer.Option(help="Image folder (default: RETAIN_VISION_DATA_DIR).")
    ] = None,
    augment_copies: Annotated[
        int, typer.Option(min=0, max=8, help="Augmented variants per training frame.")
    ] = 2,
    fine_tune_blocks: Annotated[
        int,
        typer.Option(min=0, max=16, help="Also train the backbone's last N blocks end to end (slow on CPU)."),
    ] = 0,
    fine_tune_epochs: Annotated[int, typer.Option(min=1, max=50)] = 3,
    seed: Annotated[int | None, typer.Option(help="Seed (default: RETAIN_SEED).")] = None,
    no_promote: Annotated[
        bool, typer.Option("--no-promote", help="Register without asking the gate.")
    ] = False,
    card: Annotated[Path | None, typer.Option(help="Also write the model card (markdown) here.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train on whole recordings, check the ONNX export, register, promote through the gate."""
    from retain.settings import get_settings
    from retain.vision.dataset import ImageFolderError
    from retain.vision.lifecycle import ExportMismatchError, train_and_register
    from retain.vision.train import TrainOptions

    settings = get_settings()
    options = TrainOptions(
        augment_copies=augment_copies,
        fine_tune_blocks=fine_tune_blocks,
        fine_tune_epochs=fine_tune_epochs,
        seed=settings.seed if seed is None else seed,
    )
    started = time.perf_counter()
    try:
        result = train_and_register(
            settings, options, folder=folder, promote=not no_promote, progress=lambda m: say(m, started)
        )
    except (ImageFolderError, ExportMismatchError, ValueError) as exc:
        fail(str(exc))
    text = str(result.pop("model_card"))
    if card is not None:
        card.parent.mkdir(parents=True, exist_ok=True)
        card.write_text(text, encoding="utf-8")
    if as_json:
        print_json(result)
        return
    m = result["metrics"]
    sys.stdout.write(
        f"{result['model']} v{result['version']}: held-out accuracy {m.get('accuracy', float('nan')):.3f}, "
        f"F1 {m.get('macro_f1', float('nan')):.3f}, ROC-AUC {m.get('roc_auc', float('nan')):.3f} "
        f"on {int(m.get('n_rows', 0))} frames of {int(m.get('test_recordings', 0))} unseen recordings\n"
        f"{'promoted to champion' if result['promoted'] else 'not promoted'}: {result['decision']['reason']}\n"
        "Read the shortcut audit before trusting these numbers: retain vision evaluate --audit\n"
    )


@vision_app.command("evaluate")
def evaluate(
    folder: Annotated[
        Path | None, typer.Option(help="Image folder (default: RETAIN_VISION_DATA_DIR).")
    ] = None,
    audit: Annotated[
        bool, typer.Option("--audit/--no-audit", help="Run the shortcut audit (every view).")
    ] = True,
    output: Annotated[Path | None, typer.Option(help="Also write the model card (markdown) here.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The shortcut audit: the probe on full frames, faces, backgrounds, thumbnails and image sizes."""
    from retain.settings import get_settings
    from retain.vision import audit as shortcut
    from retain.vision.card import audit_section
    from retain.vision.dataset import ImageFolderError, scan
    from retain.vision.faces import VIEWS
    from retain.vision.lifecycle import cache_for, vision_home

    settings = get_settings()
    started = time.perf_counter()
    try:
        images = scan(_folder(folder))
    except ImageFolderError as exc:
        fail(str(exc))
    views = VIEWS if audit else ("full",)
    result = shortcut.run(images, cache=cache_for(settings, settings.seed), views=views, seed=settings.seed,
                          progress=lambda m: say(m, started))  # fmt: skip
    report = result.to_dict()
    if audit:
        home = vision_home(settings)
        home.mkdir(parents=True, exist_ok=True)
        (home / "audit.json").write_text(result.to_json(), encoding="utf-8")
        say(
            f"audit saved to {home / 'audit.json'}; the next `retain vision train` puts it in the model card",
            started,
        )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(audit_section(report), encoding="utf-8")
    if as_json:
        print_json(report)
        return
    sys.stdout.write(audit_section(report))


@vision_app.command("predict")
def predict(
    images: Annotated[list[Path], typer.Argument(help="JPEG or PNG files.")],
    model: Annotated[str, typer.Option(help="Registered version or alias.")] = "champion",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Score image files with the registered model (onnxruntime; no torch needed)."""
    from retain.settings import get_settings
    from retain.vision import registry
    from retain.vision.images import ImageError, ImageLimits, decode

    settings = get_settings()
    try:
        loaded = registry.load(model, settings)
    except LookupError as exc:
        fail(str(exc))
    limits = ImageLimits(settings.vision_max_upload_bytes, settings.vision_max_pixels)
    negative, positive = loaded.model.classes
    results: list[dict[str, object]] = []
    for path in images:
        try:
            image = decode(path.read_bytes(), limits)
        except (ImageError, OSError) as exc:
            results.append({"file": str(path), "error": str(exc)})
            continue
        p = float(loaded.model.predict_images([image])[0])
        results.append({"file": str(path), "probability_not_engaged": round(p, 6),
                        "label": positive if p >= 0.5 else negative})  # fmt: skip
    failed = sum(1 for r in results if "error" in r)
    if as_json:
        print_json({"model": registry.MODEL_NAME, "version": loaded.version, "predictions": results})
    else:
        for r in results:
            if "error" in r:
                sys.stdout.write(f"{r['file']}: error: {r['error']}\n")
            else:
                sys.stdout.write(
                    f"{r['file']}: {r['label']} (P(not engaged) = {r['probability_not_engaged']:.3f})\n"
                )
    if failed:
        raise typer.Exit(2)
