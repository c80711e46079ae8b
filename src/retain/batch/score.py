"""Score a file of students with the predictor and write the results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from retain.data.load import read_table
from retain.predictor import Predictor


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV or Parquet by suffix, atomically (a temp file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    tmp.replace(path)


def score(predictor: Predictor, input_path: Path, output_path: Path) -> pd.DataFrame:
    """Read ``input_path``, validate and score every row, write ``output_path``.

    Validation is all-or-nothing: a file with any bad row writes nothing and raises
    ``DataValidationError`` whose report lists every problem by column and row.
    """
    frame = read_table(input_path)
    result = predictor.predict(frame)
    write_table(result, output_path)
    return result
