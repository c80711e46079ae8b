"""The quickstart notebook runs top to bottom and shows what it promises.

The kernel is the venv's Python (a kernelspec written to a temporary folder that ``JUPYTER_PATH``
puts first) and inherits this process's environment: ``RETAIN_HOME`` from the autouse fixture and
``RETAIN_DATA_DIR`` from here. Two cases: ``example`` uses the example data (``RETAIN_DATA_DIR`` when
set, else ``../shared/data``; skipped when the file is absent) and ``synthetic`` points
``RETAIN_DATA_DIR`` at an empty folder, so the notebook falls back to synthetic students.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO_ROOT / "notebooks" / "quickstart.ipynb"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DATA_FILE = "dropout_academic_success.csv"


def _data_dir(case: str, tmp_path: Path) -> Path:
    if case == "synthetic":
        empty = tmp_path / "no-data"
        empty.mkdir()
        return empty
    configured = os.environ.get("RETAIN_DATA_DIR")
    folder = Path(configured).resolve() if configured else SHARED_DATA.resolve()
    if not (folder / DATA_FILE).exists():
        pytest.skip(f"example data not found in {folder}")
    return folder


def _install_kernel(prefix: Path) -> Path:
    """A ``python3`` kernelspec that runs this interpreter; returns the folder for JUPYTER_PATH."""
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", "python3"],
        check=True,
        capture_output=True,
    )
    return prefix / "share" / "jupyter"


def _text_outputs(nb: nbformat.NotebookNode) -> str:
    parts: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "data" in output:
                parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)


def test_notebook_has_no_committed_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(not c.outputs and c.execution_count is None for c in code), "clear outputs before saving"


@pytest.mark.parametrize("case", ["example", "synthetic"])
def test_quickstart_notebook_runs(
    case: str, tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = _data_dir(case, tmp_path)
    monkeypatch.setenv("RETAIN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("JUPYTER_PATH", str(_install_kernel(tmp_path / "kernel")))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    # Importing Streamlit (the dashboard tests do) sets MPLBACKEND=Agg for the whole process; a
    # kernel that inherits it draws no inline plots. A user's kernel has its own environment.
    monkeypatch.delenv("MPLBACKEND", raising=False)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    text = _text_outputs(nb)

    assert f"RETAIN_HOME:     {isolated_home.resolve()}" in text, "the kernel did not inherit RETAIN_HOME"
    assert f"data source: {case}" in text
    # validation: the clean data passes, the broken copy reports each planted problem
    assert re.search(r"dataset 'dropout': \d+ row\(s\), 0 error\(s\)", text)
    for problem in ("column is missing", "unknown code", "not a number", "out of range"):
        assert problem in text, problem
    # training registered and promoted the first version
    assert "registered version 1; promoted to champion: True" in text
    auc = re.search(r"held-out ROC-AUC: (\d\.\d+)", text)
    assert auc is not None and float(auc.group(1)) > 0.7, text[-2000:]
    assert re.search(r"bands: low < 0\.\d+ <= medium < 0\.\d+ <= high", text)
    assert "top features: " in text
    assert "scored 5 students" in text
    assert re.search(r"\b(low|medium|high)\b", text)
    plots = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(plots) >= 2, "expected the dropout-by-course and SHAP plots"
    assert (isolated_home / "mlflow" / "mlflow.db").exists()
