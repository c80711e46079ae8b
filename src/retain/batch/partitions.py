"""The input of a batch run: a CSV or Parquet file, or a folder of them, read in chunks.

The input is cut into **pieces**, the unit of work both backends share: a CSV file, or one row
group of a Parquet file. A piece is read as consecutive **chunks** of at most ``chunk_rows`` rows
(the last chunk of a piece may be shorter), so memory is bounded by the chunk, not the file.
Both backends cut the same input into the same pieces and chunks, which is what makes their
results identical.

Values are read as the loaders read them (``retain.data.load.read_table``): CSV as text (the
delimiter sniffed, a UTF-8 BOM and stray header whitespace tolerated), Parquet as stored; headers
are stripped of whitespace. Canonical names and validation come later (``retain.batch.chunk``).
"""

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from retain.data.load import DataError, sniff_delimiter

PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})


@dataclass(frozen=True)
class Piece:
    """One unit of work: a whole CSV file, or one row group of a Parquet file.

    Attributes
    ----------
    index : int
        Position of the piece in the input (names the part file it is written to).
    path : Path
    row_group : int or None
        The Parquet row group; ``None`` for a CSV file.
    n_rows : int or None
        Rows in the piece: known from a Parquet footer, ``None`` for CSV until counted.
    """

    index: int
    path: Path
    row_group: int | None = None
    n_rows: int | None = None

    @property
    def is_parquet(self) -> bool:
        return self.row_group is not None


def input_files(path: Path) -> list[Path]:
    """The files of an input: the file itself, or a folder's ``*.parquet``/``*.csv`` in name order.

    Raises
    ------
    DataError
        When the path does not exist, a file is empty, or a folder holds no partitions.
    """
    if not path.exists():
        raise DataError(f"file not found: {path}")
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file()
            and not p.name.startswith((".", "_"))
            and p.suffix.lower() in PARQUET_SUFFIXES | CSV_SUFFIXES
        )
        if not files:
            raise DataError(f"no *.parquet or *.csv partitions in folder {path}")
    else:
        files = [path]
    for file in files:
        if file.stat().st_size == 0:
            raise DataError(f"file is empty: {file}")
    return files


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def list_pieces(path: Path) -> list[Piece]:
    """Cut an input into pieces (see the module docstring), in input order.

    Raises
    ------
    DataError
        As ``input_files``, or when a Parquet footer cannot be read.
    """
    pieces: list[Piece] = []
    for file in input_files(path):
        if not _is_parquet(file):
            pieces.append(Piece(len(pieces), file))
            continue
        try:
            metadata = pq.ParquetFile(file).metadata
        except Exception as exc:
            raise DataError(f"cannot read Parquet {file}: {exc}") from exc
        for group in range(metadata.num_row_groups):
            rows = metadata.row_group(group).num_rows
            pieces.append(Piece(len(pieces), file, group, rows))
    return pieces


def _delimiter(path: Path) -> str:
    with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
        sample = handle.read(64_000)
    if not sample.strip():
        raise DataError(f"file is empty: {path}")
    return sniff_delimiter(sample)


def _frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.index = pd.RangeIndex(len(frame))  # in place: CSV chunks number on from the last one
    return frame


def _parquet_chunks(piece: Piece, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        batches = pq.ParquetFile(piece.path).iter_batches(
            batch_size=chunk_rows, row_groups=[piece.row_group], use_pandas_metadata=False
        )
        held: list[pa.RecordBatch] = []
        rows = 0
        for batch in batches:
            held.append(batch)
            rows += batch.num_rows
            while rows >= chunk_rows:
                table = pa.Table.from_batches(held)
                yield _arrow_frame(table.slice(0, chunk_rows))
                rest = table.slice(chunk_rows)
                held, rows = rest.to_batches(), rest.num_rows
        if rows:
            yield _arrow_frame(pa.Table.from_batches(held))
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read Parquet {piece.path}: {exc}") from exc


def _arrow_frame(table: pa.Table) -> pd.DataFrame:
    # no pandas metadata: a stored index would not fit a slice of the file
    frame = table.replace_schema_metadata(None).to_pandas()
    hidden = [c for c in frame.columns if str(c).startswith("__index_level_")]
    return _frame(frame.drop(columns=hidden))


def _csv_reader(path: Path, chunk_rows: int, usecols: list[int] | None = None) -> Iterator[pd.DataFrame]:
    sep = _delimiter(path)
    try:
        yield from pd.read_csv(
            path,
            sep=sep,
            encoding="utf-8-sig",
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            chunksize=chunk_rows,
            usecols=usecols,
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise DataError(f"cannot parse CSV {path}: {exc}") from exc


def read_piece(piece: Piece, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The piece's rows as raw frames of ``chunk_rows`` rows (the last may be shorter).

    Each frame has a fresh ``RangeIndex`` and whitespace-stripped headers; values as read (CSV as
    text). Raises ``DataError`` when the file cannot be read or parsed.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    if piece.is_parquet:
        yield from _parquet_chunks(piece, chunk_rows)
        return
    for frame in _csv_reader(piece.path, chunk_rows):
        if len(frame):  # a file with a header only gives one empty chunk
            yield _frame(frame)


def count_rows(piece: Piece, chunk_rows: int = 500_000) -> int:
    """Data rows in a piece: from the Parquet footer, or by parsing the CSV's first column."""
    if piece.n_rows is not None:
        return piece.n_rows
    return sum(len(frame) for frame in _csv_reader(piece.path, chunk_rows, usecols=[0]))


def content_key(path: Path) -> str:
    """A short content hash of an input (a folder: its partitions' names and bytes, in order).

    For a single file it is the hash of its bytes, so event ids of stored predictions stay the
    same whichever way the file is scored.
    """
    digest = hashlib.sha256()
    files = input_files(path)
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode("utf-8") + b"\x00")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
