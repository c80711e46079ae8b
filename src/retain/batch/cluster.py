"""The Dask backend: the local backend's per-piece function mapped over a Dask cluster.

* **Work**: one task per piece (a CSV file, or one row group of a Parquet file; see
  ``retain.batch.partitions``). Each task runs ``retain.batch.local.score_piece`` over the piece's
  chunks, exactly as the local backend does, and writes ``part-NNNNN.parquet`` into a temporary
  folder next to the output; part names follow the input order, so the parts read in name order
  are the local backend's rows in the same order with the same values.
* **Row numbers**: a task is given the number of input rows before its piece, so derived student
  ids and the rows named by validation reports are those of the whole input. Parquet row counts
  come from the footers; CSV files are counted first (one small task per file).
* **The model** is pickled once on the client and broadcast to every worker with
  ``client.scatter(predictor, broadcast=True)``: each worker deserialises it once and keeps it in
  memory for all of its tasks. Workers need no access to the registry or its artifact store,
  only the same ``retain`` package (the same environment or image) to unpickle it.
* **Cluster**: a ``distributed.LocalCluster`` (``workers`` processes, one thread each) unless a
  scheduler address is given (``--scheduler tcp://host:8786``, ``RETAIN_DASK_SCHEDULER``). With a
  remote cluster the input and the output's folder must be on a file system that every worker
  and this process see at the same path (a shared volume).
* **Output**: a folder output receives the parts; a single-file output (``.parquet``, ``.csv``)
  is assembled from the parts by this process, one row group at a time.

Validation stays all-or-nothing: when any piece has a bad row, the temporary parts are removed
and one ``DataValidationError`` names every bad row (by input row number).
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from distributed import Client, LocalCluster, as_completed

from retain.batch.chunk import output_schema
from retain.batch.local import BatchSummary, PieceResult, raise_for_results, score_piece, summarize
from retain.batch.output import (
    Layout,
    ParquetSink,
    copy_parts,
    open_sink,
    output_layout,
    part_name,
    staged,
    temporary_path,
)
from retain.batch.partitions import Piece, count_rows, list_pieces
from retain.predictor import Predictor
from retain.settings import get_settings


@contextmanager
def dask_client(scheduler: str | None = None, workers: int = 2) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a LocalCluster started for the block."""
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _score_part(
    piece: Piece, first_row: int, *, predictor: Predictor, folder: str, chunk_rows: int
) -> PieceResult:
    """Run on a worker: score one piece into its part file in ``folder``."""
    # once per worker (later calls start nothing); one thread: Dask runs the pieces in parallel
    predictor.compile_native(get_settings(), background=True, threads=1)
    sink = ParquetSink(Path(folder) / part_name(piece.index), output_schema(predictor))
    try:
        return score_piece(predictor, piece, first_row, chunk_rows, sink)
    finally:
        sink.close()


def _first_rows(client: Client, pieces: list[Piece]) -> list[int]:
    unknown = [p for p in pieces if p.n_rows is None]
    counted = dict(zip(unknown, client.gather(client.map(count_rows, unknown, pure=False)), strict=True))
    starts, total = [], 0
    for piece in pieces:
        starts.append(total)
        total += piece.n_rows if piece.n_rows is not None else counted[piece]
    return starts


def _run(
    client: Client, predictor: Predictor, pieces: list[Piece], folder: Path, chunk_rows: int
) -> list[PieceResult]:
    starts = _first_rows(client, pieces)
    # a fresh copy: without the compiled fast scorer, which each worker compiles once itself
    shipped = client.scatter(replace(predictor), broadcast=True, hash=False)
    futures = client.map(
        _score_part,
        pieces,
        starts,
        predictor=shipped,
        folder=str(folder),
        chunk_rows=chunk_rows,
        pure=False,
    )
    results: list[PieceResult] = []
    try:
        for _future, result in as_completed(futures, with_results=True):
            results.append(result)
    except BaseException:
        client.cancel(futures)
        raise
    return sorted(results, key=lambda r: r.index)


def score_dask(
    predictor: Predictor,
    input_path: Path,
    output_path: Path,
    chunk_rows: int,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    client: Client | None = None,
) -> BatchSummary:
    """Score an input on a Dask cluster (see the module docstring).

    Parameters
    ----------
    predictor, input_path, output_path, chunk_rows
        As ``retain.batch.local.score_local``; the output is identical.
    scheduler : str, optional
        Address of a running scheduler; default: a LocalCluster of ``workers`` processes.
    client : distributed.Client, optional
        An existing client (then ``scheduler`` and ``workers`` are ignored and it stays open).
    """
    pieces = list_pieces(input_path)
    layout = output_layout(output_path)
    if client is None:
        with dask_client(scheduler, workers) as own:
            return _score_with(own, predictor, pieces, input_path, output_path, layout, chunk_rows)
    return _score_with(client, predictor, pieces, input_path, output_path, layout, chunk_rows)


def _score_with(
    client: Client,
    predictor: Predictor,
    pieces: list[Piece],
    input_path: Path,
    output_path: Path,
    layout: Layout,
    chunk_rows: int,
) -> BatchSummary:
    if layout is Layout.folder:
        with staged(output_path, folder=True) as folder:
            results = _run(client, predictor, pieces, folder, chunk_rows)
            raise_for_results(predictor, results, input_path)
        return summarize(results, output_path, "dask", len(pieces))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    parts_dir = temporary_path(output_path, "parts")
    parts_dir.mkdir()
    try:
        results = _run(client, predictor, pieces, parts_dir, chunk_rows)
        raise_for_results(predictor, results, input_path)
        with staged(output_path, folder=False) as tmp:
            sink = open_sink(tmp, layout, output_schema(predictor))
            try:
                copy_parts([parts_dir / part_name(p.index) for p in pieces], sink)
            finally:
                sink.close()
    finally:
        for part in parts_dir.glob("*"):
            part.unlink(missing_ok=True)
        parts_dir.rmdir()
    return summarize(results, output_path, "dask", 1)
