"""A 100 MB file with one bad row: the report names that row, the exit code is non-zero, and
nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from retain.cli import app
from retain.data.spec import load_spec
from retain.data.synth import synthesize_to_file

runner = CliRunner()


@pytest.mark.slow
def test_hundred_megabyte_file_with_one_bad_row(tmp_path: Path) -> None:
    spec = load_spec("dropout")
    big = tmp_path / "big.csv"
    # 780,000 students: ten copies of 78,000 synthetic rows, each student with an id of their own
    # (synthesizing all 780,000 takes several times as long; validation reads them all either way).
    block = synthesize_to_file(spec, 78_000, tmp_path / "block.csv", seed=21)
    columns, *rows = block.read_text(encoding="utf-8").splitlines(keepends=True)
    assert rows[0].startswith("dropout-synth-00000001;"), rows[0][:40]  # the id comes first
    with big.open("w", encoding="utf-8") as handle:
        handle.write(columns)
        for k in range(10):
            handle.writelines(
                f"dropout-synth-{k * len(rows) + n:08d};{row.split(';', 1)[1]}"
                for n, row in enumerate(rows, 1)
            )
    block.unlink()
    size = big.stat().st_size
    assert size >= 100_000_000, f"only {size / 1e6:.0f} MB"

    bad_row = 612_345  # 1-based data row
    with big.open("r", encoding="utf-8") as handle:
        lines = handle.readlines()
    header = lines[0].rstrip("\n").split(";")
    course = next(i for i, h in enumerate(header) if h.strip('"') == "Course")
    fields = lines[bad_row].rstrip("\n").split(";")
    fields[course] = '"77777"'
    lines[bad_row] = ";".join(fields) + "\n"
    with big.open("w", encoding="utf-8") as handle:
        handle.writelines(lines)
    del lines

    result = runner.invoke(app, ["data", "validate", "dropout", str(big)])
    assert result.exit_code == 1
    assert f"'course': unknown code in 1 row(s) (rows {bad_row})" in result.stderr
    assert "1 error(s)" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
