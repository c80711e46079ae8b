"""The shortcut audit: what could a model of this data be relying on, apart from engagement?

Every number is out-of-sample. The same simple probe (standardised features, L2 logistic
regression) is fitted on each *view* of the images (:mod:`retain.vision.faces`) under three
protocols, from easiest to hardest:

* ``holdout``: the training pipeline's split, whole recordings held out;
* ``recording``: leave one recording out, every recording in turn (pooled out-of-fold scores);
* ``subclass``: leave one Engaged and one Not-engaged sub-class out together, every pair in turn.
  Each sub-class is its own set of recording sessions; in the public data some people and rooms
  appear in one sub-class only and one person appears in several, so this is the closest the data
  comes to "a new session, and sometimes a new person and room".

It also fits the probe on the image's width and height alone: any accuracy above chance there
is a label leak from how the recordings were made. Views that need a face are compared on the
frames where the detector found one, and the full and thumbnail views are reported on the same
frames too, so the comparison is like for like; the miss rate per sub-class is reported.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from retain.vision.dataset import ImageFolder, group_split
from retain.vision.embeddings import EmbeddingCache, compute
from retain.vision.faces import VIEWS, View

Progress = Callable[[str], None]
PROTOCOLS = ("holdout", "recording", "subclass")


@dataclass(frozen=True)
class AuditResult:
    """Scores by view and protocol, the size-only probe and the face detector's misses."""

    scores: dict[str, dict[str, dict[str, float]]]  # view -> protocol -> {accuracy, roc_auc, n}
    image_size_probe: dict[str, float]
    face_found: dict[str, float]  # sub-class -> share of frames with a detected face
    frames: int
    frames_with_face: int
    recordings: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores,
            "image_size_probe": self.image_size_probe,
            "face_found": self.face_found,
            "frames": self.frames,
            "frames_with_face": self.frames_with_face,
            "recordings": self.recordings,
            "seconds": round(self.seconds, 1),
            "findings": findings(self),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _probe() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))


def _folds(
    protocol: str, labels: np.ndarray, groups: np.ndarray, subclasses: np.ndarray, seed: int
) -> Iterator[np.ndarray]:
    """Boolean test masks of a protocol's folds."""
    if protocol == "holdout":
        split = group_split(labels, groups, 0.2, seed)
        mask = np.zeros(len(labels), dtype=bool)
        mask[split.test] = True
        yield mask
    elif protocol == "recording":
        for name in np.unique(groups):
            yield groups == name
    elif protocol == "subclass":
        negatives = np.unique(subclasses[labels == 0])
        positives = np.unique(subclasses[labels == 1])
        for a, b in itertools.product(negatives, positives):
            yield (subclasses == a) | (subclasses == b)
    else:  # pragma: no cover - guarded by PROTOCOLS
        raise ValueError(protocol)


def cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    subclasses: np.ndarray,
    protocol: str,
    seed: int = 42,
) -> dict[str, float]:
    """Out-of-fold accuracy and ROC-AUC of the probe under ``protocol``.

    ``recording`` pools the out-of-fold scores of all folds (a single recording holds one class,
    so a per-fold AUC does not exist); ``subclass`` reports the mean and the worst fold too.
    """
    from sklearn.metrics import roc_auc_score

    scores = np.full(len(labels), np.nan)
    fold_acc: list[float] = []
    fold_auc: list[float] = []
    for test in _folds(protocol, labels, groups, subclasses, seed):
        train = ~test
        if len(np.unique(labels[train])) < 2:
            continue
        model = _probe().fit(features[train], labels[train])
        scores[test] = model.predict_proba(features[test])[:, 1]
        fold_acc.append(float(np.mean((scores[test] >= 0.5) == labels[test])))
        if len(np.unique(labels[test])) == 2:
            fold_auc.append(float(roc_auc_score(labels[test], scores[test])))
    done = ~np.isnan(scores)
    out = {
        "n": float(done.sum()),
        "accuracy": float(np.mean((scores[done] >= 0.5) == labels[done])),
        "roc_auc": float(roc_auc_score(labels[done], scores[done]))
        if len(np.unique(labels[done])) == 2
        else float("nan"),
    }
    if protocol == "subclass" and fold_acc:
        out.update(
            folds=float(len(fold_acc)),
            mean_fold_accuracy=float(np.mean(fold_acc)),
            worst_fold_accuracy=float(np.min(fold_acc)),
            mean_fold_roc_auc=float(np.mean(fold_auc)) if fold_auc else float("nan"),
            worst_fold_roc_auc=float(np.min(fold_auc)) if fold_auc else float("nan"),
        )
    return out


def image_sizes(folder: ImageFolder) -> np.ndarray:
    """Width and height of every file from its header (no decode)."""
    sizes = []
    for item in folder.items:
        with Image.open(item.path) as image:
            sizes.append(image.size)
    return np.asarray(sizes, dtype=np.float64)


def run(
    folder: ImageFolder,
    *,
    cache: EmbeddingCache | None = None,
    views: tuple[View, ...] = VIEWS,
    protocols: tuple[str, ...] = PROTOCOLS,
    seed: int = 42,
    progress: Progress | None = None,
) -> AuditResult:
    """Embed every view (cached) and score the probe under every protocol."""
    started = time.perf_counter()
    labels, groups = folder.labels, folder.groups
    subclasses = np.array([f"{i.label_name}/{i.subclass}" for i in folder.items])
    features = compute([i.path for i in folder.items], views, cache=cache, seed=seed, progress=progress)
    has_face = ~np.isnan(features[("face", 0)]).any(axis=1) if "face" in views else np.ones(len(labels), bool)
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for view in views:
        x = features[(view, 0)][has_face]
        scores[view] = {}
        for protocol in protocols:
            if progress:
                progress(f"audit: {view} view, {protocol} protocol")
            scores[view][protocol] = cross_validate(
                x, labels[has_face], groups[has_face], subclasses[has_face], protocol, seed
            )
    for view in ("full", "thumbnail"):
        if view in views:
            scores[f"{view} (all frames)"] = {
                p: cross_validate(features[(view, 0)], labels, groups, subclasses, p, seed) for p in protocols
            }
    sizes = image_sizes(folder)
    size_probe = cross_validate(
        np.column_stack([sizes, sizes[:, 0] / sizes[:, 1]]), labels, groups, subclasses, "recording", seed
    )
    size_probe["majority_accuracy"] = float(max(np.mean(labels), 1 - np.mean(labels)))
    face_found = {str(s): float(np.mean(has_face[subclasses == s])) for s in np.unique(subclasses)}
    return AuditResult(
        scores=scores,
        image_size_probe=size_probe,
        face_found=face_found,
        frames=len(labels),
        frames_with_face=int(has_face.sum()),
        recordings=len(np.unique(groups)),
        seconds=time.perf_counter() - started,
    )


def _get(result: AuditResult, view: str, protocol: str, key: str = "accuracy") -> float | None:
    value = result.scores.get(view, {}).get(protocol, {}).get(key)
    return None if value is None or not np.isfinite(value) else value


def findings(result: AuditResult) -> list[str]:
    """Plain sentences that follow from the numbers (thresholds stated in each sentence)."""
    out: list[str] = []
    majority = result.image_size_probe.get("majority_accuracy", 0.5)
    size_acc = result.image_size_probe.get("accuracy", float("nan"))
    if np.isfinite(size_acc) and size_acc >= majority + 0.1:
        out.append(
            f"The image's width and height alone predict the label with accuracy {size_acc:.2f} on held-out "
            "recordings: the classes were recorded with different cameras or settings, a leak no model should use."
        )
    thumb = _get(result, "thumbnail", "recording")
    if thumb is not None and thumb >= 0.8:
        out.append(
            f"An 8 x 8 thumbnail (colour and layout only, no face detail) reaches accuracy {thumb:.2f} with "
            "whole recordings held out: high accuracy on this data is reachable without seeing engagement."
        )
    background = _get(result, "background", "recording")
    if background is not None and background >= 0.8:
        out.append(
            f"With the face masked out, the rest of the frame (room, clothes, posture) still gives accuracy "
            f"{background:.2f} with whole recordings held out: the person and the room identify the class."
        )
    full_rec, full_sub = _get(result, "full", "recording"), _get(result, "full", "subclass")
    if full_rec is not None and full_sub is not None and full_rec - full_sub >= 0.1:
        out.append(
            f"Accuracy falls from {full_rec:.2f} (a recording held out, its person seen in other recordings) to "
            f"{full_sub:.2f} (whole sub-classes held out: other sessions, some with other people and rooms): "
            "what the model learns does not carry over to recordings unlike its training data."
        )
    face_sub = _get(result, "face", "subclass")
    if face_sub is not None:
        out.append(
            f"On face crops alone, with whole sub-classes held out, accuracy is {face_sub:.2f}: "
            + (
                "some signal survives in the face itself."
                if face_sub >= 0.65
                else "little is left once the room and clothes are gone."
            )
        )
    misses = {k: 1 - v for k, v in result.face_found.items() if 1 - v >= 0.05}
    if misses:
        worst = max(misses, key=lambda k: misses[k])
        out.append(
            f"The face detector misses {misses[worst]:.0%} of '{worst}' frames; frames without a face are left "
            "out of every view's comparison so that a miss cannot stand in for the label."
        )
    return out
