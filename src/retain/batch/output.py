"""Where scored chunks go: Parquet or CSV written incrementally, published only when complete.

An output path names one of three layouts (``output_layout``): a Parquet file (``.parquet`` or
``.pq``), a folder of Parquet part files (an existing folder, or a path without a suffix), or
otherwise a CSV file. Everything is written under a temporary name next to the output and renamed
into place when the run succeeds (``staged``), so a failed run never leaves a partial output.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from retain.batch.partitions import PARQUET_SUFFIXES


class Layout(StrEnum):
    """The shape of an output."""

    parquet = "parquet"
    csv = "csv"
    folder = "folder"


def output_layout(path: Path) -> Layout:
    """The layout a path names (see the module docstring)."""
    if path.is_dir() or not path.suffix:
        return Layout.folder
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return Layout.parquet
    return Layout.csv


def part_name(index: int) -> str:
    """The file name of the part that holds piece ``index``; names sort in input order."""
    return f"part-{index:05d}.parquet"


class TableSink(Protocol):
    """Receives scored chunks in order."""

    def write(self, frame: pd.DataFrame) -> None: ...

    def close(self) -> None: ...


class ParquetSink:
    """Appends chunks to one Parquet file (one row group per chunk), with a fixed schema."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = schema
        self._writer = pq.ParquetWriter(path, schema)

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        self._writer.write_table(table.replace_schema_metadata(None))

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(table.cast(self.schema))

    def close(self) -> None:
        self._writer.close()


class CsvSink:
    """Appends chunks to one CSV file (comma-separated, one header), as ``DataFrame.to_csv``."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open("w", encoding="utf-8", newline="")
        self._header = True

    def write(self, frame: pd.DataFrame) -> None:
        frame.to_csv(self._handle, index=False, header=self._header)
        self._header = False

    def close(self) -> None:
        self._handle.close()


def open_sink(path: Path, layout: Layout, schema: pa.Schema) -> ParquetSink | CsvSink:
    """A sink for a single-file layout."""
    if layout is Layout.parquet:
        return ParquetSink(path, schema)
    if layout is Layout.csv:
        return CsvSink(path)
    raise ValueError("a folder output has one sink per part")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def temporary_path(path: Path, tag: str = "tmp") -> Path:
    """A hidden sibling of ``path`` (``.name.tmp``), emptied beforehand."""
    tmp = path.with_name(f".{path.name}.{tag}")
    _remove(tmp)
    return tmp


@contextmanager
def staged(path: Path, *, folder: bool) -> Iterator[Path]:
    """A temporary file or folder next to ``path``, renamed onto it if the block succeeds.

    On an exception the temporary output is removed and ``path`` is left as it was. A folder
    replaces whatever was at ``path`` (the old one is moved aside, then removed).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    if folder:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if folder and path.exists():
        old = temporary_path(path, "old")
        path.replace(old)
        tmp.replace(path)
        _remove(old)
    else:
        tmp.replace(path)


def copy_parts(parts: list[Path], sink: ParquetSink | CsvSink) -> None:
    """Append part files to a single-file sink, one row group at a time (bounded memory)."""
    for part in parts:
        source = pq.ParquetFile(part)
        for group in range(source.num_row_groups):
            table = source.read_row_group(group)
            if isinstance(sink, ParquetSink):
                sink.write_table(table)
            else:
                sink.write(table.to_pandas())
