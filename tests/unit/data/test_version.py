"""Unit tests for ``retain.data.version``: content hashes of frames and files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from retain.data.load import load_raw
from retain.data.spec import load_spec
from retain.data.synth import synthesize
from retain.data.validate import validate_frame
from retain.data.version import file_hash, frame_hash


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})


def test_frame_hash_is_stable_and_short() -> None:
    h = frame_hash(_frame())
    assert h == frame_hash(_frame())
    assert len(h) == 16
    int(h, 16)


def test_frame_hash_changes_with_values_order_and_names() -> None:
    base = frame_hash(_frame())
    changed = _frame()
    changed.loc[1, "a"] = 5
    assert frame_hash(changed) != base
    assert frame_hash(_frame().iloc[::-1]) != base
    assert frame_hash(_frame().rename(columns={"b": "c"})) != base


def test_frame_hash_ignores_index() -> None:
    shifted = _frame()
    shifted.index = [10, 11, 12]
    assert frame_hash(shifted) == frame_hash(_frame())


def test_validated_frame_hash_same_for_csv_and_parquet(tmp_path: Path) -> None:
    spec = load_spec("exam_scores")
    frame = synthesize(spec, 50, seed=4)
    csv_path, pq_path = tmp_path / "d.csv", tmp_path / "d.parquet"
    frame.to_csv(csv_path, index=False, sep=";")
    frame.to_parquet(pq_path, index=False)
    typed_csv, _ = validate_frame(load_raw(spec, csv_path), spec)
    typed_pq, _ = validate_frame(load_raw(spec, pq_path), spec)
    assert frame_hash(typed_csv) == frame_hash(typed_pq)


def test_file_hash_independent_of_chunk_size(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    assert file_hash(path) == file_hash(path, chunk_size=7)
    other = tmp_path / "other.bin"
    other.write_bytes(bytes(range(256)) * 1000 + b"!")
    assert file_hash(other) != file_hash(path)
