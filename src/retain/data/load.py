"""Reading data files into frames with canonical column names.

Only this module knows source headers; everything downstream uses the spec's canonical names.
Loaders tolerate the quirks of published files: a UTF-8 BOM, any delimiter, quoted numbers and
stray whitespace (even tabs) in headers.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from retain.data.spec import DatasetSpec
from retain.settings import get_settings


class DataError(ValueError):
    """A data file is missing, empty or unreadable."""


_DELIMITERS = [",", ";", "\t", "|"]


def sniff_delimiter(sample: str) -> str:
    """Guess a CSV delimiter: the candidate that splits the first lines into the most fields,
    the same number on every line (quotes respected, so a tab inside a quoted header is ignored)."""
    lines = [line for line in sample.splitlines()[:20] if line.strip()]
    if not lines:
        return ","
    if len(lines) > 1:
        lines = lines[:-1]  # the sample may end mid-line
    best, best_fields = ",", 1
    for candidate in _DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=candidate)}
        if len(counts) == 1:
            fields = counts.pop()
            if fields > best_fields:
                best, best_fields = candidate, fields
    return best


def read_table(path: Path, delimiter: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file as raw strings/values, headers stripped of whitespace."""
    if not path.exists():
        raise DataError(f"file not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"file is empty: {path}")
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"} or path.is_dir():
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise DataError(f"cannot read Parquet {path}: {exc}") from exc
    else:
        with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
            sample = handle.read(64_000)
        if not sample.strip():
            raise DataError(f"file is empty: {path}")
        sep = delimiter or sniff_delimiter(sample)
        try:
            frame = pd.read_csv(
                path, sep=sep, encoding="utf-8-sig", dtype=str, keep_default_na=False, skipinitialspace=True
            )
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise DataError(f"cannot parse CSV {path}: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"file has a header but no rows: {path}")
    return frame


def read_csv_text(text: str) -> pd.DataFrame:
    """Parse CSV text (e.g. an upload) the same way files are parsed."""
    sep = sniff_delimiter(text[:64_000])
    frame = pd.read_csv(io.StringIO(text.lstrip("\ufeff")), sep=sep, dtype=str, keep_default_na=False)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def canonicalize(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Rename source headers (or canonical names, in any case) to canonical names.

    Columns the spec does not know are kept unchanged, so validation can report them.
    """
    lookup: dict[str, str] = {}
    for col in spec.columns:
        lookup[col.header.strip().lower()] = col.name
        lookup[col.name.lower()] = col.name
    lookup[spec.id.column.lower()] = spec.id.column
    if spec.id.source:
        lookup[spec.id.source.strip().lower()] = spec.id.column
    renamed = {c: lookup.get(str(c).strip().lower(), str(c).strip()) for c in frame.columns}
    return frame.rename(columns=renamed)


def _row_number_ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{number:06d}" for number in range(1, n + 1)]


def derive_student_ids(frame: pd.DataFrame, spec: DatasetSpec) -> pd.Series:
    """Deterministic student ids: row numbers (1-based) or a hash of identifying columns."""
    if spec.id.derive == "hash" and spec.id.hash_columns:
        parts = frame.reindex(columns=spec.id.hash_columns).astype(str).agg("\x1f".join, axis=1)
        digests = [hashlib.sha256(p.encode("utf-8")).hexdigest()[:16] for p in parts]
        return pd.Series([f"{spec.id.prefix}{d}" for d in digests], index=frame.index, name=spec.id.column)
    return pd.Series(_row_number_ids(spec.id.prefix, len(frame)), index=frame.index, name=spec.id.column)


def _given(value: object) -> bool:
    return (
        value is not None and not (isinstance(value, float) and value != value) and bool(str(value).strip())
    )


def ensure_student_id(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The ``student_id`` column as strings; rows without one get a derived id."""
    column = spec.id.column
    out = frame.copy()
    if column not in out.columns:
        out.insert(0, column, derive_student_ids(out, spec))
        return out
    given = out[column].map(_given)
    if given.all():
        out[column] = out[column].astype(str)
    else:
        out[column] = out[column].astype(str).where(given, derive_student_ids(out, spec))
    return out


def record_ids(records: Sequence[Mapping[str, object]], spec: DatasetSpec) -> list[str]:
    """The ids ``ensure_student_id`` gives a list of records, without building a frame when all are given."""
    given = [r.get(spec.id.column) for r in records]
    if all(_given(g) for g in given):
        return [str(g) for g in given]
    if spec.id.derive == "hash" and spec.id.hash_columns:
        derived = derive_student_ids(pd.DataFrame(list(records)), spec).tolist()
    else:
        derived = _row_number_ids(spec.id.prefix, len(records))
    return [str(g) if _given(g) else d for g, d in zip(given, derived, strict=True)]


def dataset_path(spec: DatasetSpec, data_dir: Path | None = None) -> Path:
    """Where the dataset's file is expected under the data folder."""
    return (data_dir or get_settings().data_dir) / spec.source.file


def load_raw(spec: DatasetSpec, path: Path | None = None) -> pd.DataFrame:
    """Read a dataset file with canonical names and a ``student_id``; values not yet typed."""
    target = path or dataset_path(spec)
    delimiter = spec.source.delimiter if path is None else None
    frame = canonicalize(read_table(target, delimiter=delimiter), spec)
    return ensure_student_id(frame, spec)
