"""Unit tests for ``retain.data.load``: robust reading, canonical names and student ids."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from retain.data.load import (
    DataError,
    canonicalize,
    dataset_path,
    derive_student_ids,
    ensure_student_id,
    load_raw,
    read_csv_text,
    read_table,
    sniff_delimiter,
)
from retain.data.spec import DatasetSpec, IdSpec, load_spec
from retain.data.synth import synthesize
from retain.data.validate import validate_frame
from retain.settings import get_settings

EXAM_HEADER = [
    "gender",
    "race/ethnicity",
    "parental level of education",
    "lunch",
    "test preparation course",
    "math score",
    "reading score",
    "writing score",
]
EXAM_ROWS = [
    ["female", "group B", "bachelor's degree", "standard", "none", "72", "72", "74"],
    ["male", "group C", "some college", "free/reduced", "completed", "69", "90", "88"],
    ["female", "group A", "high school", "standard", "none", "47", "57", "44"],
]


@pytest.fixture(scope="module")
def exam() -> DatasetSpec:
    return load_spec("exam_scores")


@pytest.fixture(scope="module")
def dropout() -> DatasetSpec:
    return load_spec("dropout")


def _csv(sep: str, quote_numbers: bool = False, header: list[str] | None = None) -> str:
    lines = [sep.join(f'"{h}"' for h in header or EXAM_HEADER)]
    for row in EXAM_ROWS:
        cells = [f'"{v}"' if quote_numbers or not v.isdigit() else v for v in row]
        lines.append(sep.join(cells))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_read_table_detects_delimiter(tmp_path: Path, sep: str) -> None:
    path = tmp_path / "exam.csv"
    path.write_text(_csv(sep), encoding="utf-8")
    frame = read_table(path)
    assert list(frame.columns) == EXAM_HEADER
    assert frame.shape == (3, 8)
    assert frame.loc[1, "race/ethnicity"] == "group C"


def test_read_table_strips_bom_and_header_whitespace(tmp_path: Path) -> None:
    header = ["  gender ", "race/ethnicity\t", *EXAM_HEADER[2:]]
    path = tmp_path / "exam.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv(";", header=header).encode("utf-8"))
    frame = read_table(path)
    assert list(frame.columns) == EXAM_HEADER
    assert not frame.columns[0].startswith("\ufeff")


def test_read_table_quoted_numbers_are_plain_strings(tmp_path: Path) -> None:
    path = tmp_path / "exam.csv"
    path.write_text(_csv(",", quote_numbers=True), encoding="utf-8")
    frame = read_table(path)
    assert frame["math score"].tolist() == ["72", "69", "47"]


def test_read_table_keeps_none_and_na_as_text(tmp_path: Path) -> None:
    path = tmp_path / "exam.csv"
    path.write_text(_csv(","), encoding="utf-8")
    frame = read_table(path)
    assert frame.loc[0, "test preparation course"] == "none"


def test_read_table_quoted_header_with_trailing_tab_and_semicolons(
    tmp_path: Path, dropout: DatasetSpec
) -> None:
    """The dropout file's quirk: ``"Daytime/evening attendance\t"`` quoted, ``;`` separated."""
    text = 'Marital status;"Daytime/evening attendance\t";Target\n1;1;Dropout\n2;0;Graduate\n'
    path = tmp_path / "dropout.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    frame = canonicalize(read_table(path), dropout)
    assert list(frame.columns) == ["marital_status", "daytime_attendance", "target"]
    assert frame["daytime_attendance"].tolist() == ["1", "0"]


def test_sniff_delimiter_ignores_tab_inside_quotes() -> None:
    sample = 'a;"b\t";c\n1;2;3\n4;5;6\n'
    assert sniff_delimiter(sample) == ";"
    assert sniff_delimiter("a,b,c\n1,2,3\n") == ","
    assert sniff_delimiter("") == ","


def test_header_only_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text(",".join(EXAM_HEADER) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        read_table(path)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_empty_file_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match="empty"):
        read_table(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "absent.csv")


def test_bad_parquet_raises(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="Parquet"):
        read_table(path)


def test_parquet_round_trip(tmp_path: Path, exam: DatasetSpec) -> None:
    frame = synthesize(exam, 40, seed=3)
    path = tmp_path / "exam.parquet"
    frame.to_parquet(path, index=False)
    back = read_table(path)
    pd.testing.assert_frame_equal(back, frame)


def test_read_csv_text_matches_file(tmp_path: Path) -> None:
    text = "\ufeff" + _csv(";")
    path = tmp_path / "exam.csv"
    path.write_text(text, encoding="utf-8")
    pd.testing.assert_frame_equal(read_csv_text(text), read_table(path))


def test_canonicalize_maps_source_headers_and_names_case_insensitively(exam: DatasetSpec) -> None:
    frame = pd.DataFrame(
        columns=[
            "Gender",
            "RACE/ETHNICITY",
            " math score ",
            "Reading_Score",
            "writing_score",
            "Student_ID",
            "shoe size",
        ]
    )
    out = canonicalize(frame, exam)
    assert list(out.columns) == [
        "gender",
        "race_ethnicity",
        "math_score",
        "reading_score",
        "writing_score",
        "student_id",
        "shoe size",
    ]


def test_canonicalize_does_not_modify_input(exam: DatasetSpec) -> None:
    frame = pd.DataFrame({"math score": ["1"]})
    canonicalize(frame, exam)
    assert list(frame.columns) == ["math score"]


def test_row_number_ids_are_one_based_with_prefix(exam: DatasetSpec) -> None:
    frame = pd.DataFrame({"gender": ["female", "male", "male"]})
    ids = derive_student_ids(frame, exam)
    assert ids.tolist() == ["exam-000001", "exam-000002", "exam-000003"]
    assert ids.equals(derive_student_ids(frame.copy(), exam))


def test_hash_ids_are_deterministic_and_follow_content(exam: DatasetSpec) -> None:
    spec = exam.model_copy(
        update={"id": IdSpec(derive="hash", hash_columns=["gender", "lunch"], prefix="h-")}
    )
    frame = pd.DataFrame(
        {"gender": ["female", "male", "male"], "lunch": ["standard", "standard", "free/reduced"]}
    )
    ids = derive_student_ids(frame, spec)
    assert ids.is_unique
    assert all(i.startswith("h-") and len(i) == 2 + 16 for i in ids)
    assert ids.tolist() == derive_student_ids(frame.copy(), spec).tolist()
    # the id belongs to the row's content, not its position
    reversed_ids = derive_student_ids(frame.iloc[::-1].reset_index(drop=True), spec)
    assert reversed_ids.tolist() == ids.tolist()[::-1]
    changed = frame.copy()
    changed.loc[0, "lunch"] = "free/reduced"
    assert derive_student_ids(changed, spec).iloc[0] != ids.iloc[0]


def test_existing_student_id_is_kept_as_text(exam: DatasetSpec) -> None:
    frame = pd.DataFrame({"student_id": [17, 4, 99], "gender": ["female", "male", "male"]})
    out = ensure_student_id(frame, exam)
    assert out["student_id"].tolist() == ["17", "4", "99"]
    assert frame["student_id"].tolist() == [17, 4, 99]  # input untouched


def test_missing_student_id_is_added_first(exam: DatasetSpec) -> None:
    frame = pd.DataFrame({"gender": ["female", "male"]})
    out = ensure_student_id(frame, exam)
    assert list(out.columns) == ["student_id", "gender"]
    assert "student_id" not in frame.columns


def test_load_raw_from_explicit_path(tmp_path: Path, exam: DatasetSpec) -> None:
    path = tmp_path / "any_name.csv"
    path.write_text(_csv(";"), encoding="utf-8")
    frame = load_raw(exam, path)
    assert list(frame.columns) == ["student_id", *(c.name for c in exam.columns)]
    assert frame["student_id"].tolist() == ["exam-000001", "exam-000002", "exam-000003"]
    typed, report = validate_frame(frame, exam, required=[c.name for c in exam.columns])
    assert report.ok, report.summary()
    assert typed["math_score"].tolist() == [72.0, 69.0, 47.0]


def test_load_raw_uses_data_dir_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exam: DatasetSpec
) -> None:
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    assert dataset_path(exam) == tmp_path / "exam_scores.csv"
    (tmp_path / "exam_scores.csv").write_text(_csv(","), encoding="utf-8")
    assert len(load_raw(exam)) == 3
    with pytest.raises(DataError, match="not found"):
        load_raw(load_spec("dropout"))


def test_rows_without_an_id_get_a_derived_one_and_records_agree() -> None:
    import pandas as pd

    from retain.data.load import ensure_student_id, record_ids
    from retain.data.spec import load_spec

    spec = load_spec("exam_scores")
    records = [{"student_id": "A"}, {"student_id": None}, {}]
    frame = ensure_student_id(pd.DataFrame(records), spec)
    assert frame["student_id"].tolist() == ["A", "exam-000002", "exam-000003"]
    assert record_ids(records, spec) == frame["student_id"].tolist()
