"""The per-chunk scoring function both backends map over the input: pure, frame in, frame out.

``score_chunk(predictor, raw, first_row)`` returns exactly what ``Predictor.predict`` returns for
those rows when the whole input is scored at once: the same student ids (ids derived from row
numbers count from the start of the input, not of the chunk), the same values, the same output
schema. Bad rows raise ``DataValidationError`` whose report names rows of the whole input
(1-based data rows; for a folder, counted across its partitions in name order).

Validation is the spec's (``retain.data.validate.validate_frame``), computed once per distinct
value of each column (``validate_distinct``): every check is a function of one value, and coded
columns hold a few dozen distinct values in 100,000 rows, so this is several times faster than
checking every cell and gives the same typed frame. When anything is wrong, the report comes from
``validate_frame`` on the chunk itself, so its rows and counts are exact.
"""

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]

from retain.data.load import canonicalize, ensure_student_id
from retain.data.spec import DatasetSpec
from retain.data.validate import DataValidationError, Issue, ValidationReport, validate_frame
from retain.evaluation.metrics import slugify
from retain.fastpath import FastScorer
from retain.predictor import Predictor
from retain.training.artifact import Scores

#: Rows a merged issue names (as ``validate_frame``).
_ROWS_SHOWN = 10
#: A column with more distinct values than this share of the rows is validated cell by cell.
_DISTINCT_SHARE = 0.02


def _given(value: object) -> bool:
    """An id is given unless it is missing or blank (as ``retain.data.load.ensure_student_id``)."""
    return (
        value is not None and not (isinstance(value, float) and value != value) and bool(str(value).strip())
    )


def with_student_ids(frame: pd.DataFrame, spec: DatasetSpec, first_row: int) -> pd.DataFrame:
    """Canonical names and a ``student_id`` column, ids derived as for the whole input.

    ``first_row`` is the number of input rows before this chunk. Ids derived from row numbers
    continue the input's numbering (``prefix`` + 6-digit 1-based row number, as
    ``retain.data.load.derive_student_ids``); hashed ids do not depend on the position.
    """
    canonical = canonicalize(frame, spec)
    if spec.id.derive == "hash" and spec.id.hash_columns:
        return ensure_student_id(canonical, spec)
    column = spec.id.column
    numbered = pd.Series(
        [f"{spec.id.prefix}{n:06d}" for n in range(first_row + 1, first_row + len(canonical) + 1)],
        index=canonical.index,
        name=column,
    )
    out = canonical  # a new frame already (canonicalize renames into a copy)
    if column not in out.columns:
        out.insert(0, column, numbered)
        return out
    ids = out[column]
    stripped = ids.str.strip() if ids.dtype == object else None
    if stripped is not None and bool((stripped.str.len() > 0).all()):
        given = pd.Series(True, index=ids.index)  # every id a non-blank string
    else:
        given = ids.map(_given).astype(bool)
    out[column] = ids.astype(str).where(given, numbered)
    return out


def _distinct_ok(frame: pd.DataFrame, known: set[str]) -> bool:
    if not frame.columns.is_unique:
        return False
    return all(
        isinstance(dtype, np.dtype) and dtype.kind in "biufO"
        for name, dtype in frame.dtypes.items()
        if name in known
    )


def validate_distinct(
    frame: pd.DataFrame, spec: DatasetSpec, required: Sequence[str]
) -> tuple[pd.DataFrame, ValidationReport]:
    """``validate_frame(frame, spec, required)``, computed once per distinct value of each column.

    Every check (type, code, range, missing) depends on one value only, so a frame of each
    column's distinct values (padded to one length by repeating a value) has the same problems as
    the whole frame, and its typed columns, spread back by each row's value, are the whole frame's.
    Columns with many distinct values (continuous grades) are validated as they are, in a second
    call. When either call finds an error, or there is nothing to gain (a required column missing,
    extension dtypes, duplicate column names), the whole frame is validated at once, so reports
    always name the right rows.

    Returns
    -------
    (typed, report) as ``validate_frame`` returns them.
    """
    id_column = spec.id.column
    known = set(spec.column_map)
    n = len(frame)
    if n == 0 or not _distinct_ok(frame, known) or any(c not in frame.columns for c in required):
        return validate_frame(frame, spec, required=required)
    codes: dict[str, np.ndarray] = {}
    distinct: dict[str, pd.Index] = {}
    many: list[str] = []
    for name in frame.columns:
        if name == id_column or name not in known:
            continue
        found, values = pd.factorize(frame[name], use_na_sentinel=False)
        if len(values) > n * _DISTINCT_SHARE:
            many.append(name)
        else:
            codes[name], distinct[name] = found, values
    longest = max((len(values) for values in distinct.values()), default=1)
    small = pd.DataFrame(
        {
            name: (
                distinct[name].take(np.minimum(np.arange(longest), len(distinct[name]) - 1))
                if name in distinct
                else frame[name].iloc[np.zeros(longest, dtype=np.intp)].to_numpy()
            )
            for name in frame.columns
            if name != id_column and name not in many
        }
    )
    typed_few, report = validate_frame(small, spec, required=[c for c in required if c not in many])
    typed_many, report_many = validate_frame(frame[many], spec, required=many)
    if not (report.ok and report_many.ok):
        return validate_frame(frame, spec, required=required)
    typed = pd.DataFrame(index=frame.index)
    if id_column in frame.columns:
        typed[id_column] = frame[id_column].astype(str)
    for col in spec.columns:
        if col.name in typed_few.columns:
            typed[col.name] = typed_few[col.name].to_numpy()[codes[col.name]]
        elif col.name in typed_many.columns:
            typed[col.name] = typed_many[col.name].to_numpy()
    return typed, ValidationReport(dataset=report.dataset, n_rows=n, issues=report.issues)


def shift_report(report: ValidationReport, first_row: int) -> ValidationReport:
    """The report with chunk row numbers turned into input row numbers."""
    issues = [replace(i, rows=tuple(r + first_row for r in i.rows)) for i in report.issues]
    return ValidationReport(dataset=report.dataset, n_rows=report.n_rows, issues=issues)


def prepare_chunk(predictor: Predictor, raw: pd.DataFrame, first_row: int) -> pd.DataFrame:
    """``Predictor.prepare`` for one chunk of an input: canonical, validated, typed features.

    Raises
    ------
    DataValidationError
        With a report whose rows are the input's (see ``shift_report``).
    """
    frame = with_student_ids(raw, predictor.spec, first_row)
    typed, report = validate_distinct(frame, predictor.spec, predictor.features)
    if not report.ok:
        raise DataValidationError(shift_report(report, first_row))
    return typed


def _fast_scores(scorer: FastScorer, typed: pd.DataFrame, features: list[str]) -> Scores:
    """``RiskModel.score`` through the compiled scorer: the pipeline's arithmetic, no pandas."""
    values: dict[str, Any] = {}  # numeric columns stay arrays: the scorer takes them as they are
    for name in features:
        column = typed[name]
        values[name] = column.where(column.notna(), None).tolist() if column.dtype == object else column
    return scorer.score_matrix(scorer.matrix(values, len(typed)))


def score_typed(predictor: Predictor, typed: pd.DataFrame) -> pd.DataFrame:
    """The output frame of ``Predictor.predict`` for already prepared rows (same schema, order).

    Scores come from the predictor's compiled scorer (``retain.fastpath``) when the model has one
    (the same transformed matrix and estimator output, bit for bit, without the scikit-learn
    ``ColumnTransformer``'s sparse one-hot and copies), else from ``RiskModel.score``.
    """
    spec, model = predictor.spec, predictor.model
    scorer = predictor.fast_scorer
    scores = model.score(typed) if scorer is None else _fast_scores(scorer, typed, predictor.features)
    out = pd.DataFrame(
        {
            "student_id": typed[spec.id.column].astype(str).to_numpy(),
            "dataset": spec.name,
            "task": model.task,
            "stage": model.stage,
            "model_name": predictor.model_name,
            "model_version": predictor.version,
            "risk_score": scores.risk,
            "risk_band": scores.band,
            "prediction": scores.predicted,
        }
    )
    if scores.proba is not None:
        for i, label in enumerate(model.labels):
            out[f"proba_{slugify(label)}"] = scores.proba[:, i]
    if scores.interval is not None:
        out["interval_low"] = scores.interval[:, 0]
        out["interval_high"] = scores.interval[:, 1]
    return out


def score_chunk(predictor: Predictor, raw: pd.DataFrame, first_row: int = 0) -> pd.DataFrame:
    """Score one chunk of an input (see the module docstring); raises ``DataValidationError``."""
    return score_typed(predictor, prepare_chunk(predictor, raw, first_row))


def _issue_key(issue: Issue) -> tuple[str, str, str, str]:
    return (issue.column, issue.problem, issue.expected, issue.severity)


def merge_reports(dataset: str, n_rows: int, reports: Iterable[ValidationReport]) -> ValidationReport:
    """One report for a whole input from its chunks' reports (already in input row numbers).

    Problems of the same kind in the same column become one issue: the first rows shown (in
    input order), the rows counted over every chunk, a few examples.
    """
    merged: dict[tuple[str, str, str, str], Issue] = {}
    for report in reports:
        for issue in report.issues:
            key = _issue_key(issue)
            seen = merged.get(key)
            if seen is None:
                merged[key] = issue
                continue
            rows = tuple(sorted({*seen.rows, *issue.rows}))[:_ROWS_SHOWN]
            examples = tuple(sorted({*seen.examples, *issue.examples}))[:5]
            merged[key] = replace(seen, rows=rows, n_rows=seen.n_rows + issue.n_rows, examples=examples)
    return ValidationReport(dataset=dataset, n_rows=n_rows, issues=list(merged.values()))


def output_schema(predictor: Predictor) -> pa.Schema:
    """The Arrow schema of the scored output (``Predictor.output_columns`` with fixed types)."""
    fields = [
        pa.field("student_id", pa.string()),
        pa.field("dataset", pa.string()),
        pa.field("task", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.int64()),
        pa.field("risk_score", pa.float64()),
        pa.field("risk_band", pa.string()),
        pa.field("prediction", pa.string() if predictor.model.is_classification else pa.float64()),
    ]
    fields += [pa.field(name, pa.float64()) for name in predictor.output_columns[len(fields) :]]
    return pa.schema(fields)
