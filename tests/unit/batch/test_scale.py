"""Batch scoring at scale, local backend: streamed in chunks, equal to scoring in memory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from batch_inputs import expected, students, write
from typer.testing import CliRunner

import retain.batch.local as local_backend
from retain.batch.chunk import validate_distinct, with_student_ids
from retain.batch.partitions import list_pieces
from retain.batch.score import score_files
from retain.data.load import DataError, canonicalize, ensure_student_id, read_table
from retain.data.validate import DataValidationError, validate_frame
from retain.predictor import Predictor


def _no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def _corrupt_rows(path: Path, rows: list[int]) -> None:
    """An unknown race/ethnicity code in the given 1-based data rows of a CSV file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for row in rows:
        assert "group" in lines[row]
        lines[row] = lines[row].replace("group", "gruop", 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_many_small_chunks_equal_scoring_in_memory(
    tmp_path: Path, batch_predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write(students(batch_predictor, 2000, ids=False), tmp_path / "in.parquet", row_group_size=700)
    seen: list[int] = []
    real = local_backend.score_chunk

    def spy(predictor: Predictor, raw: pd.DataFrame, first_row: int = 0) -> pd.DataFrame:
        seen.append(len(raw))
        return real(predictor, raw, first_row)

    monkeypatch.setattr(local_backend, "score_chunk", spy)
    dest = tmp_path / "scores.parquet"
    summary = score_files(batch_predictor, src, dest, chunk_rows=128)

    # memory is bounded by the chunk: never more than 128 rows in flight, one row group each
    assert (
        max(seen) == 128 and sum(seen) == 2000 and len(seen) == 17
    )  # row groups of 700, 700, 600: 6 + 6 + 5 chunks
    assert pq.ParquetFile(dest).num_row_groups == len(seen)
    written = pd.read_parquet(dest)
    # ids derived from row numbers continue across chunks, as when the file is read at once
    pd.testing.assert_frame_equal(written, expected(batch_predictor, src), check_exact=True)
    assert summary.rows == 2000 and sum(summary.bands.values()) == 2000
    _no_leftovers(tmp_path)


@pytest.mark.parametrize("output", ["scores.csv", "scores.parquet", "scores"])
def test_csv_input_in_chunks_to_every_layout(tmp_path: Path, batch_predictor: Predictor, output: str) -> None:
    src = write(students(batch_predictor, 53), tmp_path / "in.csv")
    dest = tmp_path / "out" / output
    summary = score_files(batch_predictor, src, dest, chunk_rows=7)
    want = expected(batch_predictor, src)
    if output.endswith(".csv"):
        got = pd.read_csv(dest, dtype={"student_id": str})
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
    else:
        got = pd.read_parquet(dest)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert summary.parts == 1  # one CSV file is one piece, so one part in a folder output
    _no_leftovers(dest.parent)


def test_folder_of_partitions_in_name_order(tmp_path: Path, batch_predictor: Predictor) -> None:
    folder = tmp_path / "students"
    frame = students(batch_predictor, 90, ids=False)
    parts = [
        write(frame.iloc[:30], folder / "part-0.parquet", row_group_size=12),
        write(frame.iloc[30:55], folder / "part-1.csv"),
        write(frame.iloc[55:], folder / "part-2.parquet"),
    ]
    (folder / "_SUCCESS").write_text("")
    (folder / "notes.md").write_text("not a partition")
    assert [p.row_group for p in list_pieces(folder)] == [0, 1, 2, None, 0]

    single = tmp_path / "all.parquet"
    score_files(batch_predictor, folder, single, chunk_rows=10)
    want = expected(batch_predictor, *parts)
    assert want["student_id"].tolist()[:2] == ["exam-000001", "exam-000002"]
    pd.testing.assert_frame_equal(pd.read_parquet(single), want, check_exact=True)

    out_folder = tmp_path / "scored"
    summary = score_files(batch_predictor, folder, out_folder, chunk_rows=10)
    names = sorted(p.name for p in out_folder.iterdir())
    assert names == [f"part-{i:05d}.parquet" for i in range(5)] and summary.parts == 5
    pd.testing.assert_frame_equal(pd.read_parquet(out_folder), want, check_exact=True)
    # scoring again replaces the folder
    score_files(batch_predictor, folder, out_folder, chunk_rows=1000)
    pd.testing.assert_frame_equal(pd.read_parquet(out_folder), want, check_exact=True)
    _no_leftovers(tmp_path)


def test_bad_rows_in_a_later_chunk_name_input_rows_and_write_nothing(
    tmp_path: Path, batch_predictor: Predictor
) -> None:
    src = write(students(batch_predictor, 60), tmp_path / "in.csv")
    _corrupt_rows(src, [25, 47])  # chunk 3 (rows 21-30) and chunk 5 of 10-row chunks
    out = tmp_path / "out"
    for dest in (out / "scores.parquet", out / "scores.csv", out / "parts"):
        with pytest.raises(DataValidationError) as info:
            score_files(batch_predictor, src, dest, chunk_rows=10)
        report = info.value.report
        assert report.bad_rows() == {25, 47}
        assert report.n_rows == 60
        [issue] = report.errors
        assert issue.column == "race_ethnicity" and issue.n_rows == 2 and issue.problem == "unknown code"
        assert not dest.exists()
    # the same report as validating the file at once
    whole = ensure_student_id(canonicalize(read_table(src), batch_predictor.spec), batch_predictor.spec)
    _, at_once = validate_frame(whole, batch_predictor.spec, required=batch_predictor.features)
    assert [(i.column, i.rows, i.n_rows) for i in at_once.errors] == [
        (i.column, i.rows, i.n_rows) for i in report.errors
    ]
    assert not out.exists() or not any(out.iterdir())


def test_previous_output_survives_a_failed_run(tmp_path: Path, batch_predictor: Predictor) -> None:
    good = write(students(batch_predictor, 20), tmp_path / "good.csv")
    bad = write(students(batch_predictor, 20), tmp_path / "bad.csv")
    _corrupt_rows(bad, [20])
    dest = tmp_path / "scores.parquet"
    score_files(batch_predictor, good, dest, chunk_rows=6)
    before = dest.read_bytes()
    with pytest.raises(DataValidationError):
        score_files(batch_predictor, bad, dest, chunk_rows=6)
    assert dest.read_bytes() == before
    _no_leftovers(tmp_path)


def test_missing_column_stops_at_once(tmp_path: Path, batch_predictor: Predictor) -> None:
    frame = students(batch_predictor, 40).drop(columns=["reading score"])
    src = write(frame, tmp_path / "in.parquet")
    with pytest.raises(DataValidationError) as info:
        score_files(batch_predictor, src, tmp_path / "scores.parquet", chunk_rows=10)
    [issue] = info.value.report.errors
    assert issue.problem == "column is missing" and issue.column == "reading_score"
    assert not (tmp_path / "scores.parquet").exists()


def test_unreadable_inputs(tmp_path: Path, batch_predictor: Predictor) -> None:
    dest = tmp_path / "scores.parquet"
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text("gender;race/ethnicity\n")
    empty_folder = tmp_path / "nothing"
    empty_folder.mkdir()
    (empty_folder / "readme.txt").write_text("")
    not_parquet = tmp_path / "broken.parquet"
    not_parquet.write_text("this is not parquet")
    cases = {
        tmp_path / "missing.csv": "file not found",
        empty: "file is empty",
        header_only: "header but no rows",
        empty_folder: "file is empty",
        not_parquet: "cannot read Parquet",
    }
    for path, message in cases.items():
        with pytest.raises(DataError, match=message):
            score_files(batch_predictor, path, dest, chunk_rows=10)
        assert not dest.exists()
    (empty_folder / "readme.txt").unlink()
    with pytest.raises(DataError, match=r"no \*\.parquet or \*\.csv partitions"):
        score_files(batch_predictor, empty_folder, dest)


def test_validate_distinct_equals_validate_frame(tmp_path: Path, batch_predictor: Predictor) -> None:
    spec = batch_predictor.spec
    frame = students(batch_predictor, 3000, seed=5)
    frame.loc[7, "math score"] = None  # a missing target is allowed, a missing feature is not
    frame.loc[11, "reading score"] = float("nan")
    for raw in (frame, frame.astype(str), read_table(write(frame, tmp_path / "in.csv"))):
        canonical = with_student_ids(raw, spec, 0)
        fast, fast_report = validate_distinct(canonical, spec, batch_predictor.features)
        slow, slow_report = validate_frame(canonical, spec, required=batch_predictor.features)
        pd.testing.assert_frame_equal(fast, slow, check_exact=True)
        assert fast_report.to_dict() == slow_report.to_dict()


def test_ids_continue_across_chunks_and_keep_given_ones(batch_predictor: Predictor) -> None:
    spec = batch_predictor.spec
    raw = pd.DataFrame({"student_id": ["a", "", None, "d"], "gender": ["female"] * 4})
    ids = with_student_ids(raw, spec, 100)["student_id"].tolist()
    assert ids == ["a", "exam-000102", "exam-000103", "d"]
    whole = ensure_student_id(pd.DataFrame({"gender": ["x"] * 5}), spec)["student_id"].tolist()
    parts = [with_student_ids(pd.DataFrame({"gender": ["x"] * n}), spec, s) for s, n in ((0, 2), (2, 3))]
    assert [i for p in parts for i in p["student_id"]] == whole


def test_retain_score_is_predict_with_backends(
    tmp_path: Path, batch_predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from retain.cli import app

    monkeypatch.setattr(Predictor, "from_registry", classmethod(lambda cls, *a, **k: batch_predictor))
    src = write(students(batch_predictor, 40), tmp_path / "in.csv")
    base = ["--dataset", "exam_scores", "--task", "math", "--stage", "with_other_scores"]
    runner = CliRunner()
    for command in ("predict", "score"):
        dest = tmp_path / f"{command}.parquet"
        args = [command, *base, "--input", str(src), "--output", str(dest), "--chunk-rows", "9", "--json"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        assert payload["rows"] == 40 and payload["backend"] == "local" and payload["parts"] == 1
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "predict.parquet"), pd.read_parquet(dest))
    bad = runner.invoke(app, ["score", *base, "--input", str(src), "--output", "x", "--backend", "spark"])
    assert bad.exit_code == 2
    stored = runner.invoke(
        app, ["score", *base, "--input", str(src), "--output", "x", "--backend", "dask", "--store"]
    )
    assert stored.exit_code == 2 and "--store needs the local backend" in stored.stderr
