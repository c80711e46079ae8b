"""An institution's own spec works with no code changes: the worked example of docs/datasets.md.

``configs/examples/northbridge.yaml`` (Northbridge College: its own headers, codes, a cohort
column and missing-value policies) is found through ``RETAIN_EXTRA_SPEC_DIRS``, then synthetic
students in Northbridge's file format are validated, one task and stage is trained and
registered, and the registered model scores new students through the ``Predictor``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from retain.data.load import load_raw, read_table
from retain.data.spec import list_specs, load_spec
from retain.data.synth import synthesize_to_file
from retain.data.validate import validate_frame
from retain.predictor import Predictor
from retain.settings import get_settings
from retain.training.train import TrainOptions, train

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "configs" / "examples"


@pytest.fixture
def northbridge_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mlflow_ready: Path) -> Path:
    """Enable the example spec folder exactly as docs/datasets.md says (a JSON list in the env)."""
    monkeypatch.setenv("RETAIN_EXTRA_SPEC_DIRS", f'["{EXAMPLES}"]')
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RETAIN_CV_FOLDS", "3")
    monkeypatch.setenv("RETAIN_BOOTSTRAP_ROUNDS", "50")
    get_settings.cache_clear()
    return tmp_path / "data"


def test_example_spec_is_not_a_bundled_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETAIN_EXTRA_SPEC_DIRS", raising=False)
    get_settings.cache_clear()
    assert "northbridge" not in list_specs()  # so `retain train --all` never trains it


def test_northbridge_spec_trains_and_predicts_without_code_changes(northbridge_settings: Path) -> None:
    assert get_settings().extra_spec_dirs == [EXAMPLES]
    assert "northbridge" in list_specs()
    spec = load_spec("northbridge")
    assert spec.time_column == "cohort"

    # Northbridge's file format: its own headers (STU_NUM, PROG_CD, T1_CRED_EARN, ...) and codes
    data_file = synthesize_to_file(spec, 800, northbridge_settings / spec.source.file, seed=7)
    headers = list(read_table(data_file).columns)
    assert headers[0] == "STU_NUM"
    assert {"PROG_CD", "T1_CRED_EARN", "STATUS_YR2"} <= set(headers)

    raw = load_raw(spec)  # the data folder, as `retain train --dataset northbridge` reads it
    assert {"student_id", "program", "term_1_credits_approved", "status_year_2"} <= set(raw.columns)
    typed, report = validate_frame(raw, spec)
    assert report.ok, report.summary()
    assert set(typed["status_year_2"].dropna()) <= set(spec.column("status_year_2").codes or {})

    # the missing-value policies apply: blanks in HS_GPA (median) and XFER_CRED (constant 0) are fine,
    # a blank programme (missing: error) is reported
    patched = raw.copy()
    patched.loc[patched.index[:5], ["hs_gpa", "transfer_credits"]] = ""
    assert validate_frame(patched, spec)[1].ok
    patched.loc[patched.index[0], "program"] = ""
    problems = validate_frame(patched, spec)[1].errors
    assert [(i.column, i.problem) for i in problems] == [("program", "missing value")]

    (result,) = train(
        "northbridge",
        "withdrawal",
        "term_1",
        options=TrainOptions(data_path=data_file, baselines=(), importance=False),
    )
    assert result.model_name == "northbridge.withdrawal.term_1"
    assert result.version == 1 and result.decision is not None and result.decision.promote
    assert result.test_metrics["roc_auc"]["value"] > 0.7
    assert result.n_test == 160  # the newest cohorts are held out (time column)

    predictor = Predictor.from_registry("northbridge", "withdrawal", "term_1")
    assert "term_1_credits_approved" in predictor.features
    assert not {"sex", "first_generation", "term_2_gpa"} & set(predictor.features)  # protected, later stage
    assert "age_at_entry" in predictor.features  # protected but opted in (use_as_feature)

    new_file = synthesize_to_file(spec, 20, northbridge_settings / "new_students.csv", seed=8)
    students = read_table(new_file).drop(columns=["STATUS_YR2"])  # source headers, as exported
    scored = predictor.predict(students)
    assert len(scored) == 20
    assert scored["student_id"].tolist() == students["STU_NUM"].tolist()
    assert scored["risk_score"].between(0, 1).all()
    assert set(scored["risk_band"]) <= {"low", "medium", "high"}
    assert set(scored["prediction"]) <= {"W", "Retained"}
    assert (scored["model_name"] == "northbridge.withdrawal.term_1").all()
    assert pd.api.types.is_float_dtype(scored["risk_score"])
