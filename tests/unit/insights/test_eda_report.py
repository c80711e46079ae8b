"""The standalone HTML report and ``retain report eda``: labels not codes, no external resources, CLI."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from markupsafe import escape
from typer.testing import CliRunner

from retain.data.spec import DatasetSpec
from retain.data.synth import synthesize
from retain.data.validate import validate_frame
from retain.insights.cli import report_app
from retain.insights.eda import EdaReport, build_eda
from retain.insights.report import figure_png, plot_comparison, plot_histogram, render_html
from retain.settings import get_settings

# A small spec whose codes look nothing like their labels, so a leaked code is easy to spot.
SPEC = {
    "name": "campus",
    "title": "Campus pilot",
    "source": {"file": "campus.csv", "format": "csv"},
    "stages": ["enrolment", "term_1"],
    "columns": [
        {
            "name": "campus",
            "type": "categorical",
            "codes": {"ZQ1": "North campus", "ZQ2": "South campus", "ZQ3": "East campus"},
            "stage": "enrolment",
            "label": "Campus",
        },
        {
            "name": "mentored",
            "type": "boolean",
            "codes": {"0": "not mentored", "1": "mentored"},
            "stage": "enrolment",
            "label": "Mentoring",
        },
        {
            "name": "sex",
            "type": "categorical",
            "codes": {"KQF": "female", "KQM": "male"},
            "protected": True,
            "stage": "enrolment",
            "label": "Sex",
        },
        {
            "name": "credits",
            "type": "integer",
            "min": 0,
            "max": 30,
            "stage": "term_1",
            "label": "Credits earned",
        },
        {"name": "score", "type": "integer", "min": 0, "max": 100, "role": "target", "label": "Final score"},
        {
            "name": "status",
            "type": "categorical",
            "role": "target",
            "codes": {"XQD": "Left early", "XQS": "Still enrolled"},
            "label": "Status",
        },
    ],
    "tasks": [
        {
            "name": "leave",
            "type": "classification",
            "target": "status",
            "adverse": "XQD",
            "negative_label": "Stayed",
            "stages": ["enrolment", "term_1"],
            "primary_metric": "roc_auc",
        },
        {
            "name": "score",
            "type": "regression",
            "target": "score",
            "pass_mark": 50,
            "stages": ["enrolment", "term_1"],
            "primary_metric": "rmse",
        },
    ],
}
CODES = ("ZQ1", "ZQ2", "ZQ3", "KQF", "KQM", "XQD", "XQS")
LABELS = ("North campus", "South campus", "East campus", "Left early", "not mentored", "Final score")
_IMAGE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def spec() -> DatasetSpec:
    return DatasetSpec.model_validate(SPEC)


def _students(spec: DatasetSpec, rows: int = 400, seed: int = 5) -> pd.DataFrame:
    frame = synthesize(spec, rows, seed=seed)
    rng = np.random.default_rng(seed)
    mentored = frame["mentored"] == 1
    frame.loc[mentored, "score"] = np.clip(frame.loc[mentored, "score"] + 10, 0, 100)  # a planted effect
    frame.loc[frame.index[:3], "campus"] = "ZQ3"  # East campus: too small, left out
    frame.loc[frame.index[3:], "campus"] = rng.choice(["ZQ1", "ZQ2"], size=rows - 3)
    return frame


@pytest.fixture(scope="module")
def report(spec: DatasetSpec) -> EdaReport:
    typed, validation = validate_frame(_students(spec), spec, required=[c.name for c in spec.columns])
    assert validation.ok, validation.summary()
    return build_eda(typed, spec, source="campus.csv")


@pytest.fixture(scope="module")
def html(report: EdaReport) -> str:
    return render_html(report, created="2024-01-01 00:00 UTC")


def _text(html: str) -> str:
    """The page without its embedded images (base64 may contain any letters)."""
    return _IMAGE.sub('src=""', html)


def test_no_raw_codes_only_labels(html: str) -> None:
    text = _text(html)
    for code in CODES:
        assert not re.search(rf"\b{code}\b", text), code
    for label in LABELS:
        assert label in text, label


def test_the_page_is_standalone(html: str) -> None:
    assert not re.search(r"https?://", html)
    assert not re.search(r"<(script|link|iframe)\b", html, re.IGNORECASE)
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for data in _IMAGE.findall(html):
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<style>" in html


def test_tables_show_test_statistic_p_adjusted_p_effect_and_words(report: EdaReport, html: str) -> None:
    for header in ("Test", "Statistic", "Adjusted p", "Effect size [95% CI]", "In words"):
        assert f"<th>{header}</th>" in html
    mentoring = next(c for c in report.comparisons if (c.outcome, c.group_by) == ("score", "mentored"))
    assert mentoring.significant
    assert str(escape(mentoring.sentence)) in html
    assert "Key findings" in html and "Welch t-test" in html


def test_protected_attributes_have_their_own_section(report: EdaReport, html: str) -> None:
    assert {c.group_by for c in report.protected} == {"sex"}
    protected_at = html.index("<h2>Protected attributes</h2>")
    distributions_at = html.index("<h2>Distributions</h2>")
    section = html[protected_at:distributions_at]
    assert "Final score by sex" in section
    assert "Final score by mentoring" not in section
    assert "Final score by mentoring" in html[:protected_at]


def test_small_groups_left_out_are_stated(report: EdaReport, html: str) -> None:
    campus = next(c for c in report.comparisons if c.group_by == "campus")
    assert campus.excluded == ("East campus",)
    assert "Left out (too few students even pooled): East campus." in html


def test_plots_are_figures_that_render_to_png(report: EdaReport) -> None:
    numeric = next(c for c in report.comparisons if c.kind == "numeric")
    rates = next(c for c in report.comparisons if c.kind == "categorical")
    for figure in (plot_comparison(numeric), plot_comparison(rates), plot_histogram(report.numeric[0], 50)):
        assert figure_png(figure)[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def campus_home(tmp_path: Path, spec: DatasetSpec, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The campus spec in an extra spec folder and an empty data folder."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "campus.yaml").write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("RETAIN_EXTRA_SPEC_DIRS", json.dumps([str(specs)]))
    monkeypatch.setenv("RETAIN_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    return data_dir


def test_cli_json_prints_only_json_and_writes_the_default_file(
    campus_home: Path, spec: DatasetSpec, isolated_home: Path
) -> None:
    _students(spec, rows=200).to_csv(campus_home / "campus.csv", index=False)
    result = CliRunner().invoke(report_app, ["eda", "--dataset", "campus", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    expected = isolated_home / "reports" / "eda-campus.html"  # the reports folder did not exist
    assert payload["html"] == str(expected) and expected.exists()
    assert expected.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert payload["dataset"] == "campus" and payload["rows"] == 200
    assert payload["comparisons"] and all("p_adjusted" in c for c in payload["comparisons"])
    assert "reading" in result.stderr


def test_cli_data_and_output_options(campus_home: Path, spec: DatasetSpec, tmp_path: Path) -> None:
    data = tmp_path / "elsewhere.csv"
    _students(spec, rows=150).to_csv(data, index=False)
    output = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(
        report_app, ["eda", "--dataset", "campus", "--data", str(data), "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    assert output.exists() and "report:" in result.stdout
    assert "Campus pilot" in output.read_text(encoding="utf-8")


def test_cli_without_data_suggests_synth(campus_home: Path) -> None:
    result = CliRunner().invoke(report_app, ["eda", "--dataset", "campus"])
    assert result.exit_code == 2
    assert "retain data synth campus" in result.stderr
    assert result.stdout == ""


def test_cli_unknown_dataset_is_a_clear_error() -> None:
    result = CliRunner().invoke(report_app, ["eda", "--dataset", "no_such_dataset"])
    assert result.exit_code == 2
    assert "unknown dataset" in result.stderr
