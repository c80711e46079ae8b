"""Score a file of students with the predictor and write the results (optionally to the store).

``score_files`` is the one entry point behind ``retain predict`` / ``retain score``: a CSV or
Parquet file, or a folder of ``*.parquet``/``*.csv`` partitions, scored by the local backend
(streaming, bounded memory: ``retain.batch.local``) or the Dask backend (``retain.batch.cluster``),
both through the same per-chunk function (``retain.batch.chunk``), with identical results.
``score`` is the same run for small files that also returns the scored frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from retain.batch.backend import Backend
from retain.batch.chunk import with_student_ids
from retain.batch.local import BatchSummary, score_local
from retain.batch.partitions import content_key, list_pieces, read_piece
from retain.predictor import Predictor
from retain.settings import Settings, get_settings
from retain.store.repository import Store

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["Backend", "BatchSummary", "score", "score_files", "store_predictions", "write_table"]

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
    """Read ``input_path``, validate and score every row, write ``output_path``; return the rows.

    Validation is all-or-nothing: an input with any bad row writes nothing and raises
    ``DataValidationError`` whose report lists every problem by column and row. With ``store``
    the predictions are also stored (see :func:`store_predictions`). The returned frame holds
    every row: for large inputs use :func:`score_files`, which returns a summary.
    """
    kept: list[pd.DataFrame] = []
    score_files(predictor, input_path, output_path, store=store, keep=kept)
    return pd.concat(kept, ignore_index=True)


def score_files(
    predictor: Predictor,
    input_path: Path,
    output_path: Path,
    *,
    backend: Backend | str = Backend.local,
    chunk_rows: int | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Client | None = None,
    store: Store | None = None,
    settings: Settings | None = None,
    keep: list[pd.DataFrame] | None = None,
) -> BatchSummary:
    """Score an input (a file or a folder of partitions) into ``output_path``.

    Parameters
    ----------
    predictor : Predictor
    input_path : Path
        A CSV or Parquet file, or a folder of ``*.parquet``/``*.csv`` partitions (name order).
    output_path : Path
        ``.parquet``/``.pq``: one Parquet file; a folder (existing, or a path without a suffix):
        Parquet parts, one per input piece; anything else: one CSV file. The same on both backends.
    backend : ``local`` (default) or ``dask``
    chunk_rows : int, optional
        Rows per chunk (default ``RETAIN_BATCH_CHUNK_ROWS``): the local backend's memory bound
        and, on both backends, where chunks start (so their results are identical).
    scheduler, workers, client
        Dask backend only: a scheduler address (default ``RETAIN_DASK_SCHEDULER``, else a
        LocalCluster of ``workers`` processes, default ``RETAIN_DASK_WORKERS``), or a client.
    store : Store, optional
        Also store the predictions, once the output is complete (local backend only).
    settings : Settings, optional
    keep : list, optional
        Local backend only: collects the scored chunks, in order.

    Raises
    ------
    DataValidationError
        When any row is bad (nothing is written; rows are numbered in the whole input).
    DataError
        When the input is missing, empty or unreadable.
    """
    s = settings or get_settings()
    rows = chunk_rows or s.batch_chunk_rows
    chosen = Backend(backend)
    if chosen is Backend.local:  # LightGBM scores the first chunks until the native code is ready
        predictor.compile_native(s, background=True)
    if chosen is Backend.dask:
        if store is not None or keep is not None:
            raise ValueError("the dask backend only writes files; use the local backend to store predictions")
        from retain.batch.cluster import score_dask

        return score_dask(
            predictor,
            input_path,
            output_path,
            rows,
            scheduler=scheduler or s.dask_scheduler,
            workers=workers or s.dask_workers,
            client=client,
        )
    summary = score_local(predictor, input_path, output_path, rows, keep=keep)
    if store is not None:
        _store_input(predictor, input_path, rows, store)
    return summary


def _store_input(predictor: Predictor, input_path: Path, chunk_rows: int, store: Store) -> int:
    """Store the predictions of an input already scored (so valid), chunk by chunk."""
    source = content_key(input_path)
    created, first_row = 0, 0
    for piece in list_pieces(input_path):
        for raw in read_piece(piece, chunk_rows):
            frame = with_student_ids(raw, predictor.spec, first_row)
            first_row += len(raw)
            created += store_predictions(predictor, frame, store, source=source)
    return created


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
