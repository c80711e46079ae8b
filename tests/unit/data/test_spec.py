"""Unit tests for ``retain.data.spec``: bundled specs, feature selection by stage, spec errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from retain.data.spec import DatasetSpec, SpecError, load_spec, load_spec_file, spec_paths

SPEC_DIR = Path(__file__).resolve().parents[3] / "configs" / "datasets"
BUNDLED = sorted(spec_paths([SPEC_DIR]))

MINI: dict[str, object] = {
    "name": "mini",
    "title": "Mini",
    "source": {"file": "mini.csv"},
    "stages": ["early", "late"],
    "columns": [
        {"name": "age", "type": "integer", "stage": "early", "min": 0, "max": 120},
        {"name": "course", "type": "categorical", "codes": {"a": "A", "b": "B"}, "stage": "early"},
        {"name": "sex", "type": "categorical", "codes": ["F", "M"], "protected": True, "stage": "early"},
        {"name": "grade", "type": "float", "stage": "late"},
        {"name": "outcome", "type": "categorical", "role": "target", "codes": ["pass", "fail"]},
    ],
    "tasks": [
        {
            "name": "result",
            "type": "classification",
            "target": "outcome",
            "adverse": "fail",
            "negative_label": "pass",
            "stages": ["early", "late"],
            "primary_metric": "roc_auc",
        }
    ],
}


def _spec(name: str) -> DatasetSpec:
    return load_spec_file(SPEC_DIR / f"{name}.yaml")


def _write(tmp_path: Path, raw: object, name: str = "mini.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _mini() -> dict:
    return copy.deepcopy(MINI)


def test_bundled_specs_present() -> None:
    assert {"dropout", "exam_scores", "secondary_math", "secondary_portuguese"} <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_spec_loads_and_is_consistent(name: str) -> None:
    spec = _spec(name)
    assert spec.name == name
    assert spec.tasks
    for task in spec.tasks:
        assert task.target in spec.column_map
        assert task.stages
        assert spec.features(task, task.stages[0])


@pytest.mark.parametrize("name", BUNDLED)
def test_features_grow_monotonically_with_stage(name: str) -> None:
    spec = _spec(name)
    for task in spec.tasks:
        previous: set[str] = set()
        for stage in task.stages:
            current = set(spec.features(task, stage))
            assert previous <= current, (task.name, stage, previous - current)
            assert previous != current, f"{task.name}: stage {stage} adds no feature"
            previous = current


def test_dropout_stage_features_are_nested_and_strict() -> None:
    spec = _spec("dropout")
    enrol = set(spec.features("dropout", "enrolment"))
    sem1 = set(spec.features("dropout", "semester_1"))
    sem2 = set(spec.features("dropout", "semester_2"))
    assert enrol < sem1 < sem2
    assert "units_1st_sem_approved" not in enrol
    assert "units_1st_sem_approved" in sem1
    assert "units_2nd_sem_approved" not in sem1
    assert "units_2nd_sem_approved" in sem2


def test_features_keep_spec_order() -> None:
    spec = _spec("dropout")
    order = [c.name for c in spec.columns]
    feats = spec.features("outcome", "semester_2")
    assert feats == sorted(feats, key=order.index)


@pytest.mark.parametrize("name", BUNDLED)
def test_target_and_non_feature_roles_never_features(name: str) -> None:
    spec = _spec(name)
    for task in spec.tasks:
        for stage in task.stages:
            feats = spec.features(task, stage)
            assert task.target not in feats
            for f in feats:
                assert spec.column(f).role == "feature"


def test_protected_columns_excluded_unless_opted_in() -> None:
    spec = _spec("dropout")
    feats = set(spec.features("dropout", "semester_2"))
    # protected, no opt-in
    for name in ("gender", "nationality", "international", "educational_special_needs"):
        assert spec.column(name).protected
        assert name not in feats
    # protected with use_as_feature: true
    for name in ("marital_status", "age_at_enrollment"):
        assert spec.column(name).protected
        assert name in feats


def test_task_include_brings_in_protected_columns() -> None:
    spec = _spec("exam_scores")
    math = set(spec.features("math", "demographics"))
    reading = set(spec.features("reading", "demographics"))
    assert {"gender", "race_ethnicity"} <= math
    assert not ({"gender", "race_ethnicity"} & reading)


def test_task_exclude_removes_a_column(tmp_path: Path) -> None:
    raw = _mini()
    raw["tasks"][0]["exclude"] = ["course"]
    spec = load_spec_file(_write(tmp_path, raw))
    assert "course" not in spec.features("result", "late")
    assert "age" in spec.features("result", "late")


def test_use_as_feature_false_drops_an_unprotected_column(tmp_path: Path) -> None:
    raw = _mini()
    raw["columns"][1]["use_as_feature"] = False
    spec = load_spec_file(_write(tmp_path, raw))
    assert "course" not in spec.features("result", "early")


def test_derived_features_only_when_inputs_known() -> None:
    spec = _spec("dropout")
    assert spec.derived_features("dropout", "enrolment") == []
    sem1 = {d.name for d in spec.derived_features("dropout", "semester_1")}
    assert sem1 == {"approval_rate_1st_sem", "evaluation_pass_rate_1st_sem"}
    sem2 = {d.name for d in spec.derived_features("dropout", "semester_2")}
    assert sem2 == {
        "approval_rate_1st_sem",
        "evaluation_pass_rate_1st_sem",
        "approval_rate_2nd_sem",
        "evaluation_pass_rate_2nd_sem",
        "grade_trend",
    }


def test_infer_stage_picks_latest_complete_stage() -> None:
    spec = _spec("dropout")
    enrol = set(spec.features("dropout", "enrolment"))
    sem1 = set(spec.features("dropout", "semester_1"))
    sem2 = set(spec.features("dropout", "semester_2"))
    assert spec.infer_stage("dropout", enrol) == "enrolment"
    assert spec.infer_stage("dropout", sem1 | {"student_id", "target"}) == "semester_1"
    assert spec.infer_stage("dropout", sem2) == "semester_2"
    # semester 2 columns without all of semester 1: still only enrolment is complete
    partial = enrol | (sem2 - sem1)
    assert spec.infer_stage("dropout", partial) == "enrolment"


def test_infer_stage_names_missing_features() -> None:
    spec = _spec("dropout")
    present = set(spec.features("dropout", "enrolment")) - {"admission_grade"}
    with pytest.raises(SpecError, match="admission_grade"):
        spec.infer_stage("dropout", present)


def test_model_name() -> None:
    assert _spec("dropout").model_name("outcome", "semester_1") == "dropout.outcome.semester_1"


def test_unknown_task_stage_and_column_raise_spec_error() -> None:
    spec = _spec("dropout")
    with pytest.raises(SpecError, match="no task 'nope'"):
        spec.task("nope")
    with pytest.raises(SpecError, match="no column 'nope'"):
        spec.column("nope")
    with pytest.raises(SpecError, match="no stage 'semester_9'"):
        spec.features("dropout", "semester_9")
    with pytest.raises(SpecError, match="no stage"):
        spec.stage_rank("semester_9")


def test_task_labels_in_model_order() -> None:
    spec = _spec("dropout")
    assert spec.task("outcome").labels == ["Dropout", "Enrolled", "Graduate"]
    assert spec.task("dropout").labels == ["Not dropout", "Dropout"]
    assert spec.task("outcome").is_multiclass
    assert not spec.task("dropout").is_multiclass
    assert _spec("secondary_math").task("pass").labels == ["pass", "fail"]


def test_column_readable_labels() -> None:
    spec = _spec("dropout")
    marital = spec.column("marital_status")
    assert marital.readable(1) == "single"
    assert marital.readable(1.0) == "single"
    assert marital.readable(" 2 ") == "married"
    assert "99" in marital.readable(99)
    assert spec.column("application_order").readable(3.0) == "3"


def test_mini_spec_is_valid(tmp_path: Path) -> None:
    spec = load_spec_file(_write(tmp_path, _mini()))
    assert spec.features("result", "early") == ["age", "course"]
    assert spec.features("result", "late") == ["age", "course", "grade"]
    assert spec.column("sex").codes == {"F": "F", "M": "M"}


def _broken(mutate: str) -> dict:
    raw = _mini()
    cols = raw["columns"]
    task = raw["tasks"][0]
    if mutate == "unknown_stage":
        cols[0]["stage"] = "middle"
    elif mutate == "duplicate_column":
        cols.append({"name": "age", "source": "Age2", "type": "integer"})
    elif mutate == "categorical_without_codes":
        del cols[1]["codes"]
    elif mutate == "target_not_a_column":
        task["target"] = "final_result"
    elif mutate == "monotone_unknown":
        task["monotone"] = {"ghost": 1}
    elif mutate == "task_unknown_stage":
        task["stages"] = ["early", "later"]
    elif mutate == "derived_unknown_input":
        raw["derived"] = [{"name": "rate", "op": "ratio", "a": "age", "b": "missing_col"}]
    elif mutate == "min_above_max":
        cols[0]["min"] = 200
    elif mutate == "adverse_not_in_classes":
        task.pop("negative_label")
        task["classes"] = ["pass", "merit"]
    return raw


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        ("unknown_stage", "unknown stage 'middle'"),
        ("duplicate_column", "duplicate column names: ['age']"),
        ("categorical_without_codes", "column 'course': a categorical column needs 'codes'"),
        ("target_not_a_column", "target 'final_result' is not a column"),
        ("monotone_unknown", "unknown column 'ghost'"),
        ("task_unknown_stage", "unknown stage 'later'"),
        ("derived_unknown_input", "unknown column 'missing_col'"),
        ("min_above_max", "min 200"),
        ("adverse_not_in_classes", "adverse 'fail' is not one of classes"),
    ],
)
def test_spec_mistakes_raise_spec_error_naming_the_problem(tmp_path: Path, mutate: str, message: str) -> None:
    path = _write(tmp_path, _broken(mutate))
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    text = str(info.value)
    assert message in text
    assert str(path) in text


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    raw = _mini()
    raw["columns"][0]["typo_field"] = 1
    with pytest.raises(SpecError, match="typo_field"):
        load_spec_file(_write(tmp_path, raw))


def test_bad_yaml_raises_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: mini\ncolumns: [unclosed\n  - x: {\n", encoding="utf-8")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec_file(path)


@pytest.mark.parametrize("body", ["- just\n- a list\n", "just a string\n", ""])
def test_non_mapping_top_level_raises_spec_error(tmp_path: Path, body: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(SpecError, match="mapping at the top level"):
        load_spec_file(path)


def test_missing_spec_file_raises_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec_file(tmp_path / "absent.yaml")


def test_load_spec_by_name_and_path(tmp_path: Path) -> None:
    assert load_spec("dropout").name == "dropout"
    path = _write(tmp_path, _mini())
    assert load_spec(path).name == "mini"
    with pytest.raises(SpecError, match="unknown dataset 'no_such_dataset'"):
        load_spec("no_such_dataset")


def test_extra_spec_dirs_are_found_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retain.settings import get_settings

    extra = tmp_path / "institution"
    extra.mkdir()
    _write(extra, _mini(), "mini.yaml")
    monkeypatch.setenv("RETAIN_EXTRA_SPEC_DIRS", f'["{extra}"]')
    get_settings.cache_clear()
    assert load_spec("mini").title == "Mini"
    assert load_spec("dropout").name == "dropout"
    # later folders override earlier ones
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _write(first, {**_mini(), "title": "First"})
    _write(second, {**_mini(), "title": "Second"})
    paths = spec_paths([first, second, tmp_path / "missing"])
    assert paths["mini"] == second / "mini.yaml"
