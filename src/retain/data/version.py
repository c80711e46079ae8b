"""Data versions: a content hash of the canonical frame, stable across file formats."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd


def frame_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's columns and values (row order matters), first 16 hex digits."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode("utf-8"))
    hashed = pd.util.hash_pandas_object(frame.astype(str), index=False)
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()[:16]


def file_hash(path: Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, first 16 hex digits."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()[:16]
