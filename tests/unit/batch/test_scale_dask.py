"""The Dask backend on a real LocalCluster (2 worker processes): identical to the local backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from batch_inputs import students, write

from retain.batch.score import score_files
from retain.data.validate import DataValidationError
from retain.predictor import Predictor

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    import logging

    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.fixture
def partitions(tmp_path: Path, batch_predictor: Predictor) -> Path:
    """A folder of Parquet (several row groups) and CSV partitions, without student ids."""
    folder = tmp_path / "students"
    frame = students(batch_predictor, 1500, seed=8, ids=False)
    write(frame.iloc[:600], folder / "a.parquet", row_group_size=250)
    write(frame.iloc[600:700], folder / "b.csv")
    write(frame.iloc[700:1300], folder / "c.parquet")
    write(frame.iloc[1300:], folder / "d.csv")
    return folder


def _parts(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_dask_results_identical_to_local(
    tmp_path: Path, batch_predictor: Predictor, partitions: Path, client: object
) -> None:
    for name in ("scores.parquet", "scores.csv", "scores"):
        local = score_files(batch_predictor, partitions, tmp_path / "local" / name, chunk_rows=97)
        dask = score_files(
            batch_predictor,
            partitions,
            tmp_path / "dask" / name,
            backend="dask",
            chunk_rows=97,
            client=client,
        )
        assert (dask.rows, dask.bands, dask.parts) == (local.rows, local.bands, local.parts)
        a, b = tmp_path / "local" / name, tmp_path / "dask" / name
        if name == "scores":  # a folder of parts: the same part files, byte for byte
            assert _parts(a) == _parts(b) and len(_parts(a)) == 6
            a_frame, b_frame = pd.read_parquet(a), pd.read_parquet(b)
        elif name.endswith(".csv"):
            assert a.read_bytes() == b.read_bytes()
            a_frame, b_frame = pd.read_csv(a), pd.read_csv(b)
        else:
            a_frame, b_frame = pd.read_parquet(a), pd.read_parquet(b)
        pd.testing.assert_frame_equal(a_frame, b_frame, check_exact=True)
    frame = pd.read_parquet(tmp_path / "dask" / "scores.parquet")
    assert len(frame) == 1500
    # ids derived from row numbers run over the whole folder, CSV partitions included
    assert frame["student_id"].tolist() == [f"exam-{n:06d}" for n in range(1, 1501)]
    assert not [p for p in (tmp_path / "dask").iterdir() if p.name.startswith(".")]


def test_dask_bad_rows_write_nothing(
    tmp_path: Path, batch_predictor: Predictor, partitions: Path, client: object
) -> None:
    csv = partitions / "b.csv"
    lines = csv.read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].replace("group", "gruop", 1)  # data row 5 of b.csv: input row 605
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in ("scores.parquet", "scores"):
        dest = tmp_path / "out" / name
        with pytest.raises(DataValidationError) as info:
            score_files(batch_predictor, partitions, dest, backend="dask", chunk_rows=97, client=client)
        assert info.value.report.bad_rows() == {605}
        assert info.value.report.n_rows == 1500
        assert not dest.exists()
    assert not any((tmp_path / "out").iterdir())
