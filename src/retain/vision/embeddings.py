"""Backbone embeddings of every image and view, cached on disk by file content.

The frozen backbone dominates the cost of training and of the audit; it runs in onnxruntime
(exported once per run), which is faster than eager torch on a CPU. Its pooled features depend only on the file, the view and the augmentation
copy, so they are computed once and reused. The cache is an ``.npz`` per (view, copy) under
``RETAIN_HOME/vision/embeddings``, keyed by the SHA-256 of each file: a changed image is
embedded again, a renamed one is not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retain.vision.augment import augment
from retain.vision.backbone import BACKBONE, EMBEDDING_SIZE
from retain.vision.faces import VIEWS, Box, View, detect_face, face_crop, mask_face, thumbnail
from retain.vision.images import normalise, read, square

Progress = Callable[[str], None]
#: Normalised ``(n, 3, 224, 224)`` inputs to ``(n, 1280)`` features.
Extractor = Callable[[np.ndarray], np.ndarray]


def file_key(path: Path) -> str:
    """SHA-256 of a file's bytes (first 32 hex digits)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:32]


@dataclass
class EmbeddingCache:
    """Embeddings by (view, copy) and file key, kept in ``folder``."""

    folder: Path
    seed: int = 0  # augmented copies differ by seed

    def _path(self, view: View, copy: int) -> Path:
        suffix = f"-seed{self.seed}" if copy > 0 else ""
        return self.folder / f"{BACKBONE}-{view}-{copy}{suffix}.npz"

    def load(self, view: View, copy: int) -> dict[str, np.ndarray]:
        path = self._path(view, copy)
        if not path.exists():
            return {}
        with np.load(path) as data:
            return {str(k): v for k, v in zip(data["keys"], data["values"], strict=True)}

    def save(self, view: View, copy: int, entries: dict[str, np.ndarray]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = np.array(sorted(entries))
        width = next(iter(entries.values())).shape[0] if entries else EMBEDDING_SIZE
        values = np.stack([entries[k] for k in keys]) if entries else np.empty((0, width), np.float32)
        tmp = self._path(view, copy).with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, values=values)
        tmp.replace(self._path(view, copy))


def view_input(image: Any, view: View, box: Box | None) -> np.ndarray | None:
    """The uint8 ``(224, 224, 3)`` input of a view (``None`` when it needs a face and has none)."""
    if view == "full":
        return square(image)
    if box is None:
        return None
    return face_crop(image, box) if view == "face" else mask_face(image, box)


def compute(
    paths: Sequence[Path],
    views: Sequence[View] = ("full",),
    *,
    copies: int = 0,
    cache: EmbeddingCache | None = None,
    backbone: Any = None,
    extractor: Extractor | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[tuple[View, int], np.ndarray]:
    """Features of every path for each view and copy (copy 0 = the image itself, 1.. = augmented).

    Returns arrays of shape ``(len(paths), width)``; a view without a face is all NaN in that row
    (``face`` and ``background``). ``thumbnail`` needs no backbone: its features are the 8 x 8
    pixels. Augmented copies are made for the ``full`` view only.
    """
    for view in views:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; expected one of {', '.join(VIEWS)}")
    keys = [file_key(p) for p in paths]
    wanted = [(v, 0) for v in views] + [("full", c) for c in range(1, copies + 1)]
    stored = {w: (cache.load(*w) if cache else {}) for w in wanted}
    missing = [i for i, k in enumerate(keys) if any(k not in stored[w] for w in wanted)]
    if missing:
        if extractor is None and any(v != "thumbnail" for v, _ in wanted):
            from retain.vision.backbone import load_backbone
            from retain.vision.runtime import OnnxFeatures

            extractor = OnnxFeatures.from_backbone(backbone if backbone is not None else load_backbone())
        _fill(paths, keys, missing, wanted, stored, extractor, seed, progress)
        if cache is not None:
            for w in wanted:
                cache.save(*w, stored[w])
    out: dict[tuple[View, int], np.ndarray] = {}
    for w in wanted:
        width = THUMB_WIDTH if w[0] == "thumbnail" else EMBEDDING_SIZE
        out[w] = np.stack([stored[w].get(k, np.full(width, np.nan, np.float32)) for k in keys])
    return out


THUMB_WIDTH = 8 * 8 * 3
_CHUNK = 32


def _fill(
    paths: Sequence[Path],
    keys: list[str],
    missing: list[int],
    wanted: list[tuple[View, int]],
    stored: dict[tuple[View, int], dict[str, np.ndarray]],
    extractor: Extractor | None,
    seed: int,
    progress: Progress | None,
) -> None:
    needs_face = any(v in {"face", "background"} for v, _ in wanted)
    for start in range(0, len(missing), _CHUNK):
        rows = missing[start : start + _CHUNK]
        batches: dict[tuple[View, int], list[tuple[str, np.ndarray]]] = {w: [] for w in wanted}
        for index in rows:
            image = read(str(paths[index]))
            box = detect_face(image) if needs_face else None
            for view, copy in wanted:
                if view == "thumbnail":
                    stored[(view, copy)][keys[index]] = thumbnail(image)
                    continue
                if copy > 0:
                    rng = np.random.default_rng([seed, copy, int(keys[index][:8], 16)])
                    pixels: np.ndarray | None = square(augment(image, rng))
                else:
                    pixels = view_input(image, view, box)
                if pixels is None:
                    stored[(view, copy)][keys[index]] = np.full(EMBEDDING_SIZE, np.nan, np.float32)
                else:
                    batches[(view, copy)].append((keys[index], pixels))
        for w, entries in batches.items():
            if entries and extractor is not None:
                features = extractor(normalise(np.stack([p for _, p in entries])))
                for (key, _), row in zip(entries, features, strict=True):
                    stored[w][key] = row
        if progress is not None:
            progress(f"embedded {min(start + _CHUNK, len(missing))}/{len(missing)} images")
