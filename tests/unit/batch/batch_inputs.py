"""Helpers for the batch scoring tests: inputs written as files, and what the in-memory path gives."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from retain.data.load import read_table
from retain.data.synth import synthesize
from retain.predictor import Predictor


def students(predictor: Predictor, n: int, seed: int = 12, *, ids: bool = True) -> pd.DataFrame:
    """Synthetic students with the files' source headers (and without ids when ``ids`` is false)."""
    frame = synthesize(predictor.spec, n, seed=seed)
    if not ids:
        frame = frame.drop(columns=[predictor.spec.id.column])
    return frame.rename(columns={c.name: c.header for c in predictor.spec.columns})


def write(frame: pd.DataFrame, path: Path, *, row_group_size: int | None = None) -> Path:
    """Write a frame as CSV (``;``-separated, as the public files) or Parquet by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False, row_group_size=row_group_size)
    else:
        frame.to_csv(path, index=False, sep=";")
    return path


def expected(predictor: Predictor, *paths: Path) -> pd.DataFrame:
    """What ``Predictor.predict`` returns for the files read at once and concatenated."""
    frame = pd.concat([read_table(p) for p in paths], ignore_index=True)
    return predictor.predict(frame)
