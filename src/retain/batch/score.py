"""Score a file of students with the predictor and write the results (optionally to the store)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from retain.data.load import read_table
from retain.predictor import Predictor
from retain.store.repository import Store

#: Students scored and stored per transaction.
STORE_CHUNK = 5000


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV or Parquet by suffix, atomically (a temp file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    tmp.replace(path)


def score(
    predictor: Predictor, input_path: Path, output_path: Path, *, store: Store | None = None
) -> pd.DataFrame:
    """Read ``input_path``, validate and score every row, write ``output_path``.

    Validation is all-or-nothing: a file with any bad row writes nothing and raises
    ``DataValidationError`` whose report lists every problem by column and row. With ``store``
    the predictions are also stored (see :func:`store_predictions`).
    """
    frame = read_table(input_path)
    result = predictor.predict(frame)
    if store is not None:
        store_predictions(predictor, frame, store, source=_content_key(input_path))
    write_table(result, output_path)
    return result


def _content_key(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _clean(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and value != value) else value


def store_predictions(predictor: Predictor, frame: pd.DataFrame, store: Store, *, source: str) -> int:
    """Score ``frame`` with the scoring core the API uses and store every prediction.

    Event ids are ``batch-{source}-{model}-v{version}-{student_id}``, so scoring the same file
    with the same model again stores nothing twice. Returns how many predictions are new.
    """
    from retain.scoring import score_records

    typed = predictor.prepare(frame)
    columns = [predictor.spec.id.column, *predictor.features]
    extra = [c for c in (predictor.spec.programme_column, predictor.spec.time_column) if c]
    columns += [c for c in extra if c in typed.columns and c not in columns]
    rows = [{str(k): _clean(v) for k, v in r.items()} for r in typed[columns].to_dict(orient="records")]
    prefix = f"batch-{source}-{predictor.model_name}-v{predictor.version}-"
    created = 0
    for start in range(0, len(rows), STORE_CHUNK):
        chunk = rows[start : start + STORE_CHUNK]
        scored = score_records(predictor, chunk)
        ids = [f"{prefix}{o['student_id']}"[:200] for o in scored.outputs]
        created += sum(1 for s in store.record_predictions(scored.store_records(ids)) if s.created)
    return created
