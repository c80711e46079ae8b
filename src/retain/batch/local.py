"""The local backend: stream the input chunk by chunk through one process, bounded memory.

Memory holds one chunk (``chunk_rows`` rows, ``RETAIN_BATCH_CHUNK_ROWS``) of input and its output
at a time, plus the Parquet reader's buffer of one row group, whatever the input's size.

Validation when streaming is all-or-nothing, as for a file read at once: at the first chunk with
a bad row nothing more is scored or written, the rest of the input is still validated, and the
run raises one ``DataValidationError`` naming every bad row by its row number in the whole input;
the temporary output is removed, so no partial output is left. A problem with the columns
themselves (one missing) stops at once.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from retain.batch.chunk import merge_reports, output_schema, prepare_chunk, score_chunk
from retain.batch.output import Layout, ParquetSink, TableSink, open_sink, output_layout, part_name, staged
from retain.batch.partitions import Piece, list_pieces, read_piece
from retain.data.load import DataError
from retain.data.validate import DataValidationError, ValidationReport
from retain.predictor import Predictor


@dataclass
class PieceResult:
    """What scoring one piece gave: rows read, bands counted, problems found (input rows)."""

    index: int
    rows: int = 0
    bands: dict[str, int] = field(default_factory=dict)
    reports: list[ValidationReport] = field(default_factory=list)
    #: A problem with the columns (not with rows): later chunks would only repeat it.
    structural: bool = False

    @property
    def ok(self) -> bool:
        return not self.reports


@dataclass(frozen=True)
class BatchSummary:
    """The outcome of a batch run."""

    rows: int
    bands: dict[str, int]
    output: Path
    backend: str
    parts: int


def _structural(report: ValidationReport) -> bool:
    return any(issue.n_rows == 0 for issue in report.errors)


def score_piece(
    predictor: Predictor,
    piece: Piece,
    first_row: int,
    chunk_rows: int,
    sink: TableSink | None,
    *,
    validate_only: bool = False,
    keep: list[pd.DataFrame] | None = None,
) -> PieceResult:
    """Score one piece chunk by chunk into ``sink`` (the function both backends run).

    ``first_row`` is the number of input rows before the piece. After a chunk with a bad row (or
    with ``validate_only``) chunks are only validated, so the result reports every bad row.
    ``keep`` collects the scored chunks (for callers that want the frame back).
    """
    result = PieceResult(piece.index)
    counts: Counter[str] = Counter()
    for raw in read_piece(piece, chunk_rows):
        start = first_row + result.rows
        result.rows += len(raw)
        try:
            if validate_only or not result.ok:
                prepare_chunk(predictor, raw, start)
                continue
            scored = score_chunk(predictor, raw, start)
        except DataValidationError as exc:
            result.reports.append(exc.report)
            if _structural(exc.report):
                result.structural = True
                break
            continue
        counts.update(scored["risk_band"].astype(str).tolist())
        if sink is not None:
            sink.write(scored)
        if keep is not None:
            keep.append(scored)
    result.bands = dict(counts)
    return result


def raise_for_results(predictor: Predictor, results: list[PieceResult], input_path: Path) -> None:
    """Raise the merged ``DataValidationError`` of bad pieces, or ``DataError`` for no rows."""
    rows = sum(r.rows for r in results)
    reports = [report for r in sorted(results, key=lambda r: r.index) for report in r.reports]
    if reports:
        raise DataValidationError(merge_reports(predictor.spec.name, rows, reports))
    if rows == 0:
        raise DataError(f"file has a header but no rows: {input_path}")


def summarize(results: list[PieceResult], output: Path, backend: str, parts: int) -> BatchSummary:
    bands: Counter[str] = Counter()
    for r in results:
        bands.update(r.bands)
    return BatchSummary(sum(r.rows for r in results), dict(bands), output, backend, parts)


def score_local(
    predictor: Predictor,
    input_path: Path,
    output_path: Path,
    chunk_rows: int,
    *,
    keep: list[pd.DataFrame] | None = None,
) -> BatchSummary:
    """Score an input into ``output_path`` in one process, streaming (see the module docstring).

    The output is a single Parquet or CSV file, or for a folder output one Parquet part per piece
    (``part-00000.parquet``, ...), exactly as the Dask backend writes it.
    """
    pieces = list_pieces(input_path)
    layout = output_layout(output_path)
    schema = output_schema(predictor)
    results: list[PieceResult] = []
    with staged(output_path, folder=layout is Layout.folder) as tmp:
        single = None if layout is Layout.folder else open_sink(tmp, layout, schema)
        try:
            for piece in pieces:
                failed = any(not r.ok for r in results)
                sink: TableSink | None = single
                if layout is Layout.folder and not failed:
                    sink = ParquetSink(tmp / part_name(piece.index), schema)
                try:
                    first_row = sum(r.rows for r in results)
                    result = score_piece(
                        predictor, piece, first_row, chunk_rows, sink, validate_only=failed, keep=keep
                    )
                finally:
                    if layout is Layout.folder and sink is not None:
                        sink.close()
                results.append(result)
                if result.structural:
                    break
        finally:
            if single is not None:
                single.close()
        raise_for_results(predictor, results, input_path)
    parts = len(pieces) if layout is Layout.folder else 1
    return summarize(results, output_path, "local", parts)
