"""Validation generated from the spec: types, allowed codes, ranges and required columns.

``validate_frame`` never raises on bad data: it returns the typed frame and a report listing
each problem with its column, the rows affected (first few) and what was expected. Callers
decide whether a report with errors stops the run (``ValidationReport.raise_for_errors``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from retain.data.spec import Column, ColumnType, DatasetSpec, ImputePolicy

_MAX_ROWS_SHOWN = 10
_MISSING_TOKENS = {"", "na", "nan", "null", "none", "?"}


@dataclass(frozen=True)
class Issue:
    """One problem found in a frame."""

    column: str
    problem: str
    expected: str
    rows: tuple[int, ...] = ()
    n_rows: int = 0
    examples: tuple[str, ...] = ()
    severity: str = "error"

    def describe(self) -> str:
        where = ""
        if self.n_rows:
            shown = ", ".join(str(r) for r in self.rows)
            more = f" and {self.n_rows - len(self.rows)} more" if self.n_rows > len(self.rows) else ""
            where = f" in {self.n_rows} row(s) (rows {shown}{more})"
        found = f"; found {', '.join(repr(e) for e in self.examples)}" if self.examples else ""
        return f"[{self.severity}] column {self.column!r}: {self.problem}{where}; expected {self.expected}{found}"


class DataValidationError(ValueError):
    """Raised when a frame has errors; carries the full report."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass
class ValidationReport:
    """Everything wrong with a frame, by column and row (row numbers are 1-based data rows)."""

    dataset: str
    n_rows: int
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        head = f"dataset {self.dataset!r}: {self.n_rows} row(s), {len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        return "\n".join([head, *(f"  {i.describe()}" for i in self.issues)])

    def bad_rows(self) -> set[int]:
        rows: set[int] = set()
        for issue in self.errors:
            rows.update(issue.rows)
        return rows

    def raise_for_errors(self) -> None:
        if not self.ok:
            raise DataValidationError(self)

    def to_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "n_rows": self.n_rows,
            "ok": self.ok,
            "issues": [
                {
                    "column": i.column,
                    "problem": i.problem,
                    "expected": i.expected,
                    "severity": i.severity,
                    "n_rows": i.n_rows,
                    "rows": list(i.rows),
                    "examples": list(i.examples),
                }
                for i in self.issues
            ],
        }


def _row_numbers(mask: pd.Series) -> tuple[tuple[int, ...], int]:
    positions = np.flatnonzero(mask.to_numpy())
    return tuple(int(p) + 1 for p in positions[:_MAX_ROWS_SHOWN]), len(positions)


def _is_missing(values: pd.Series) -> pd.Series:
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        text = values.astype(str).str.strip().str.lower()
        return values.isna() | text.isin(_MISSING_TOKENS)
    return values.isna()


def normalize_codes(values: pd.Series) -> pd.Series:
    """Codes as canonical strings: ``1``, ``1.0`` and ``" 1 "`` all become ``"1"``."""
    if pd.api.types.is_numeric_dtype(values):
        out = values.map(lambda v: "" if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
        return out.astype(object)
    text = values.astype(str).str.strip()
    as_num = pd.to_numeric(text, errors="coerce")
    finite = as_num.notna() & np.isfinite(as_num.fillna(0))  # "inf" is text, not a number code
    integral = finite & (as_num == np.floor(as_num.where(finite, 0)))
    text = text.where(~integral, as_num.where(integral, 0).astype("int64").astype(str))
    return text.astype(object)


def _expected_codes(col: Column, limit: int = 12) -> str:
    codes = list(col.codes or {})
    shown = ", ".join(codes[:limit])
    return f"one of the codes [{shown}{', ...' if len(codes) > limit else ''}]"


def _coerce_column(raw: pd.Series, col: Column, issues: list[Issue]) -> pd.Series:
    missing = _is_missing(raw)
    if col.codes:
        # a code such as "none" (no test preparation) is a value, not a missing marker
        missing &= ~normalize_codes(raw).isin(list(col.codes))
    if col.type in (ColumnType.categorical, ColumnType.string):
        codes = normalize_codes(raw).where(~missing, other=np.nan)
        if col.type is ColumnType.categorical and col.codes is not None:
            unknown = ~missing & ~codes.isin(list(col.codes))
            if unknown.any():
                rows, n = _row_numbers(unknown)
                examples = tuple(sorted({str(v) for v in codes[unknown].head(50)}))[:5]
                issues.append(Issue(col.name, "unknown code", _expected_codes(col), rows, n, examples))
                codes = codes.where(~unknown, other=np.nan)
        return codes.astype(object)
    numbers = pd.to_numeric(
        raw if pd.api.types.is_numeric_dtype(raw) else raw.astype(str).str.strip(), errors="coerce"
    )
    bad = ~missing & numbers.isna()
    if bad.any():
        rows, n = _row_numbers(bad)
        examples = tuple(sorted({str(v) for v in raw[bad].head(50)}))[:5]
        article = "an" if col.type.value[0] in "aeiou" else "a"
        issues.append(Issue(col.name, "not a number", f"{article} {col.type.value}", rows, n, examples))
    numbers = numbers.astype("float64")
    infinite = numbers.abs() == np.inf
    if infinite.any():  # "inf", "-Infinity", "1e999": no model input, and no stand-in for missing
        rows, n = _row_numbers(infinite)
        examples = tuple(sorted({str(v) for v in raw[infinite].head(50)}))[:5]
        issues.append(Issue(col.name, "not a finite number", f"a finite {col.type.value}", rows, n, examples))
        numbers = numbers.where(~infinite)
    if col.type is ColumnType.boolean:
        allowed = {float(k) for k in (col.codes or {"0": "", "1": ""})}
        wrong = numbers.notna() & ~numbers.isin(allowed)
        if wrong.any():
            rows, n = _row_numbers(wrong)
            examples = tuple(sorted({str(v) for v in raw[wrong].head(50)}))[:5]
            issues.append(Issue(col.name, "not a yes/no code", _expected_codes(col), rows, n, examples))
            numbers = numbers.where(~wrong)
    if col.type is ColumnType.integer:
        fractional = numbers.notna() & (numbers != np.floor(numbers))
        if fractional.any():
            rows, n = _row_numbers(fractional)
            examples = tuple(sorted({str(v) for v in raw[fractional].head(50)}))[:5]
            issues.append(Issue(col.name, "not a whole number", "an integer", rows, n, examples))
    return numbers


def pandera_schema(spec: DatasetSpec, columns: Iterable[str]) -> pa.DataFrameSchema:
    """The pandera schema of a typed frame: ranges, allowed codes and nullability per column."""
    checks: dict[str, pa.Column] = {}
    for name in columns:
        col = spec.column(name)
        column_checks: list[pa.Check] = []
        if col.min is not None:
            column_checks.append(pa.Check.ge(col.min, error=f"at least {col.min:g}"))
        if col.max is not None:
            column_checks.append(pa.Check.le(col.max, error=f"at most {col.max:g}"))
        # targets may be blank (outcome not final yet); training sets such rows aside
        nullable = col.missing is not ImputePolicy.error or col.role == "target"
        if col.type in (ColumnType.categorical, ColumnType.string):
            checks[name] = pa.Column(object, nullable=nullable, required=True)
        else:
            checks[name] = pa.Column(float, checks=column_checks, nullable=nullable, required=True)
    return pa.DataFrameSchema(checks, strict=False, coerce=False)


def _pandera_issues(typed: pd.DataFrame, spec: DatasetSpec, columns: list[str]) -> list[Issue]:
    schema = pandera_schema(spec, columns)
    typed = typed.reset_index(drop=True)  # pandera reports index labels; make them positions
    positions = pd.Series(np.arange(1, len(typed) + 1), index=typed.index)
    try:
        schema.validate(typed, lazy=True)
    except SchemaErrors as exc:
        issues: list[Issue] = []
        cases = exc.failure_cases
        for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
            index = group["index"].dropna()
            rows_all = sorted(int(positions.iloc[int(i)]) for i in index if 0 <= int(i) < len(positions))
            problem = "missing value" if str(check) == "not_nullable" else "out of range"
            expected = "a value (this column may not be empty)" if problem == "missing value" else str(check)
            examples = tuple(str(v) for v in group["failure_case"].dropna().astype(str).unique()[:5])
            issues.append(
                Issue(
                    str(column), problem, expected, tuple(rows_all[:_MAX_ROWS_SHOWN]), len(rows_all), examples
                )
            )
        return issues
    return []


def validate_frame(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    required: Iterable[str] | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Type a canonical frame by the spec and report every problem.

    Parameters
    ----------
    frame : DataFrame, shape (n_rows, n_columns)
        Canonical column names (see ``load.canonicalize``); values as read.
    spec : DatasetSpec
    required : columns that must be present (default: every spec column except targets).

    Returns
    -------
    (typed, report): ``typed`` holds the spec's columns that were present (plus the id column),
    numbers as float64 and codes as strings; values that failed are NaN.
    """
    report = ValidationReport(dataset=spec.name, n_rows=len(frame))
    if len(frame) == 0:
        report.issues.append(Issue("(all)", "no rows", "at least one data row"))
        return frame.copy(), report
    wanted = list(required) if required is not None else [c.name for c in spec.columns if c.role != "target"]
    known = set(spec.column_map) | {spec.id.column}
    missing_cols = [c for c in wanted if c not in frame.columns]
    for name in missing_cols:
        col = spec.column_map.get(name)
        header = f" (source header {col.header!r})" if col is not None and col.header != name else ""
        report.issues.append(Issue(name, "column is missing", f"a column named {name!r}{header}"))
    extra = [c for c in frame.columns if c not in known]
    if extra:
        report.issues.append(
            Issue(
                ", ".join(map(str, extra[:10])),
                "column not in the spec (ignored)",
                "spec columns only",
                severity="warning",
            )
        )
    present = [c.name for c in spec.columns if c.name in frame.columns]
    typed = pd.DataFrame(index=frame.index)
    if spec.id.column in frame.columns:
        typed[spec.id.column] = frame[spec.id.column].astype(str)
    for name in present:
        typed[name] = _coerce_column(frame[name], spec.column(name), report.issues)
    report.issues.extend(_pandera_issues(typed, spec, present))
    return typed, report
