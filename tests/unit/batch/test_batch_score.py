"""Unit tests for ``retain.batch.score``: file in, scored file out, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from retain.batch.score import score, write_table
from retain.data.synth import synthesize
from retain.data.validate import DataValidationError
from retain.predictor import Predictor


@pytest.fixture
def predictor(batch_predictor: Predictor) -> Predictor:
    """The batch tests' shared small model (tests/unit/batch/conftest.py)."""
    return batch_predictor


def _input(predictor: Predictor, path: Path, n: int = 25) -> pd.DataFrame:
    frame = synthesize(predictor.spec, n, seed=12)
    source = frame.rename(columns={c.name: c.header for c in predictor.spec.columns})
    if path.suffix == ".parquet":
        source.to_parquet(path, index=False)
    else:
        source.to_csv(path, index=False, sep=";")
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_score_writes_output(tmp_path: Path, predictor: Predictor, suffix: str) -> None:
    src = tmp_path / "in.csv"
    frame = _input(predictor, src)
    dest = tmp_path / "out" / f"scores{suffix}"
    result = score(predictor, src, dest)
    assert dest.exists()
    written = pd.read_parquet(dest) if suffix == ".parquet" else pd.read_csv(dest)
    assert list(written.columns) == predictor.output_columns
    assert written["student_id"].tolist() == frame["student_id"].tolist()
    pd.testing.assert_series_equal(written["risk_score"], result["risk_score"], check_exact=False)
    assert not list(dest.parent.glob(".*.tmp"))


def test_score_reads_parquet_input(tmp_path: Path, predictor: Predictor) -> None:
    src_csv, src_pq = tmp_path / "in.csv", tmp_path / "in.parquet"
    _input(predictor, src_csv)
    _input(predictor, src_pq)
    a = score(predictor, src_csv, tmp_path / "a.csv")
    b = score(predictor, src_pq, tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_invalid_input_writes_nothing(tmp_path: Path, predictor: Predictor, suffix: str) -> None:
    src = tmp_path / "in.csv"
    frame = _input(predictor, src)
    text = src.read_text(encoding="utf-8").splitlines()
    text[3] = text[3].replace("group", "gruop", 1)  # an unknown race/ethnicity code in data row 3
    src.write_text("\n".join(text) + "\n", encoding="utf-8")
    assert len(frame) == 25
    out_dir = tmp_path / "out"
    dest = out_dir / f"scores{suffix}"
    with pytest.raises(DataValidationError) as info:
        score(predictor, src, dest)
    assert info.value.report.bad_rows() == {3}
    assert not dest.exists()
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_write_table_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_table(pd.DataFrame({"a": [1]}), path)
    write_table(pd.DataFrame({"a": [2, 3]}), path)
    assert pd.read_csv(path)["a"].tolist() == [2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
