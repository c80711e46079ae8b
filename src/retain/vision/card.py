"""The engagement model's card: what it was trained on, how it scores, what it relies on, and how
(not) to use it. Markdown, logged with every registered version."""

from __future__ import annotations

from typing import Any

RESPONSIBLE_USE = """\
## Responsible use
- **Opt-in only.** Webcam images of students are personal data, and of minors often. Use this model
  only where students (or their guardians) have opted in with informed consent, with the purpose,
  retention and who sees the results written down, and with an equally good option for those who
  decline.
- **Never a sole basis for a decision about a student.** A frame says how a face looked for a
  moment on one camera, not whether a student is learning. Treat a score as a prompt for a human
  conversation, alongside the academic record, and never for grading, discipline or surveillance.
- **It has not been shown to work on people it has not seen.** See the shortcut audit: on this
  data, high accuracy is reachable from the room, the clothes and the camera, and accuracy falls
  when whole sub-classes (other sessions, some with other people and rooms) are held out. Validate it on your own consented data, across the
  groups you serve, before any use.
- Retain stores no uploaded image: the API decodes it in memory, scores it and returns the score.
"""


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3f}"
    return str(value)


def audit_section(audit: dict[str, Any] | None) -> str:
    """The shortcut audit as a table of accuracy and ROC-AUC by view and protocol, with findings."""
    if not audit:
        return "## Shortcut audit\nNot run for this version: `retain vision evaluate --audit`.\n"
    lines = [
        "## Shortcut audit",
        f"{audit['frames']} frames in {audit['recordings']} recordings; {audit['frames_with_face']} with a "
        "detected face (the views are compared on those; the last rows use every frame).",
        "Accuracy / ROC-AUC of a logistic-regression probe, out of sample: a held-out split of whole "
        "recordings; leave one recording out; leave one sub-class of each class out (other sessions, and for "
        "some sub-classes other people and rooms).",
        "",
        _row(["view", "held-out recordings", "leave-one-recording-out", "leave-one-sub-class-pair-out"]),
        _row(["---"] * 4),
    ]
    for view, by_protocol in audit["scores"].items():
        cells = [view]
        for protocol in ("holdout", "recording", "subclass"):
            score = by_protocol.get(protocol, {})
            cells.append(
                f"{_fmt(score.get('accuracy', float('nan')))} / {_fmt(score.get('roc_auc', float('nan')))}"
            )
        lines.append(_row(cells))
    size = audit["image_size_probe"]
    lines += [
        "",
        f"Image width and height alone (leave one recording out): accuracy {_fmt(size['accuracy'])}, "
        f"ROC-AUC {_fmt(size['roc_auc'])} (always guessing the larger class: {_fmt(size['majority_accuracy'])}).",
        "",
        "Faces found by the detector: "
        + ", ".join(f"{k} {v:.0%}" for k, v in sorted(audit["face_found"].items()))
        + ".",
        "",
        "### What the data can and cannot support",
    ]
    lines += [f"- {finding}" for finding in audit.get("findings", [])]
    lines.append(
        "- What it can support: testing that the pipeline, the export and the API work, and comparing "
        "methods under the same grouped evaluation. What it cannot support: any claim that a model "
        "detects engagement in people it has not seen."
    )
    return "\n".join(lines) + "\n"


def render(
    version: int | None,
    metrics: dict[str, float],
    confusion: list[list[int]],
    subclass_error: dict[str, float],
    params: dict[str, Any],
    classes: tuple[str, str],
    audit: dict[str, Any] | None,
) -> str:
    """The model card's markdown."""
    title = f"# Model card: vision.engagement{f' v{version}' if version else ''}"
    negative, positive = classes
    lines = [
        title,
        "",
        f"Predicts P({positive}) from one webcam frame. EfficientNet-Lite0 with ImageNet weights "
        "(frozen; optional fine-tuning of the last blocks), a linear head, exported to ONNX and served "
        "with onnxruntime.",
        "",
        "## Data and evaluation",
        "Student Engagement Dataset (Kaggle joyee19/studentengagement; licence unknown, development "
        f"only). Held out: {int(metrics.get('test_recordings', 0))} whole recordings, "
        f"{int(metrics.get('n_rows', 0))} frames; no frame of a held-out recording was trained on.",
        "",
        _row(["metric", "held-out value"]),
        _row(["---", "---"]),
    ]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "pr_auc", "brier", "ece"):
        if key in metrics:
            lines.append(_row([key, _fmt(metrics[key])]))
    lines += [
        "",
        f"Confusion matrix (rows: truth {negative}, {positive}; columns: predicted): {confusion}",
        "",
        "Error rate per sub-class: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(subclass_error.items())),
        "",
        "Training: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())),
        "",
        "**Accuracy on this data proves nothing by itself**: each class was recorded from a few people in "
        "a few rooms. Read the audit below before reading the metrics above.",
        "",
        audit_section(audit),
        RESPONSIBLE_USE,
    ]
    return "\n".join(lines)
