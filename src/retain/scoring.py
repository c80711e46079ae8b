"""Records in, predictions out: the scoring core shared by the API and the stream worker.

Pure code: no HTTP, no stream, no database. A front end resolves the task and stage
(``resolve_target``), checks the fields (``missing_fields``), scores with ``score_records`` (the
compiled fast path when the model supports it, the pandas path otherwise; results identical) and
hands ``ScoredBatch.store_records`` to the store. Errors are ``ScoringError`` with a per-field
``detail`` that each front end turns into its own answer (a 422, a dead-letter reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retain.data.load import record_ids
from retain.data.spec import DatasetSpec, SpecError
from retain.data.validate import DataValidationError
from retain.explanations import Reason, reasons
from retain.predictor import Predictor
from retain.store.repository import PredictionRecord
from retain.training.artifact import Scores

Record = dict[str, Any]


class ScoringError(ValueError):
    """Records that cannot be scored; ``detail`` names the fields (JSON-ready)."""

    def __init__(self, message: str, detail: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.detail: list[dict[str, Any]] | str = detail if detail is not None else message


def validation_detail(error: DataValidationError) -> list[dict[str, Any]]:
    """A validation report as JSON-ready issues (field, problem, expected, rows, examples)."""
    return [
        {
            "field": issue.column,
            "problem": issue.problem,
            "expected": issue.expected,
            "students": list(issue.rows),
            "found": list(issue.examples),
        }
        for issue in error.report.errors
    ]


def present_fields(records: Sequence[Record]) -> set[str]:
    """Fields every record sent (an explicit null counts: it is a missing value to impute)."""
    if not records:
        return set()
    present = set(records[0])
    for record in records[1:]:
        present &= set(record)
    return present


def resolve_target(
    spec: DatasetSpec, task: str | None, stage: str | None, records: Sequence[Record]
) -> tuple[str, str]:
    """The task (default: the spec's first) and stage (default: the latest the records allow)."""
    try:
        t = spec.task(task) if task else spec.tasks[0]
        if stage is None:
            stage = spec.infer_stage(t.name, present_fields(records))
        elif stage not in t.stages:
            raise SpecError(f"task {t.name!r} has no stage {stage!r}; stages: {t.stages}")
    except SpecError as exc:
        raise ScoringError(str(exc)) from None
    return t.name, stage


def missing_fields(spec: DatasetSpec, task: str, stage: str, records: Sequence[Record]) -> None:
    """Raise ``ScoringError`` naming the first record's missing fields for ``stage``."""
    needed = spec.features(task, stage)
    for position, record in enumerate(records, start=1):
        missing = [f for f in needed if f not in record]
        if missing:
            raise ScoringError(
                f"student {position} lacks {missing}",
                [
                    {
                        "field": f,
                        "problem": "missing field",
                        "students": [position],
                        "expected": f"a value for stage {stage!r} (null if unknown)",
                    }
                    for f in missing
                ],
            )


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _outputs(predictor: Predictor, ids: list[str], scores: Scores) -> list[Record]:
    model = predictor.model
    task, stage, name, version = model.task, model.stage, predictor.model_name, predictor.version
    # whole columns to Python floats and strings at once (``tolist``), not one numpy scalar at a time
    risks, bands = scores.risk.tolist(), scores.band.tolist()
    if scores.proba is not None:
        labels = list(model.labels)
        predicted = [str(p) for p in scores.predicted.tolist()]
        probabilities = [dict(zip(labels, row, strict=True)) for row in scores.proba.tolist()]
        return [
            {
                "student_id": str(student_id),
                "task": task,
                "stage": stage,
                "model_name": name,
                "model_version": version,
                "risk_score": risk,
                "risk_band": str(band),
                "prediction": label,
                "probabilities": proba,
            }
            for student_id, risk, band, label, proba in zip(
                ids, risks, bands, predicted, probabilities, strict=True
            )
        ]
    assert scores.interval is not None
    return [
        {
            "student_id": str(student_id),
            "task": task,
            "stage": stage,
            "model_name": name,
            "model_version": version,
            "risk_score": risk,
            "risk_band": str(band),
            "prediction": value,
            "interval": (low, high),
        }
        for student_id, risk, band, value, (low, high) in zip(
            ids, risks, bands, scores.predicted.astype(float).tolist(), scores.interval.tolist(), strict=True
        )
    ]


@dataclass
class ScoredBatch:
    """Scores of a list of records, with what the store and the explanations need.

    The scored inputs are kept column by column (``columns``: model features, programme and
    cohort, as validated); ``rows`` turns them into one dict per student when asked.
    """

    spec: DatasetSpec
    predictor: Predictor
    records: list[Record]
    outputs: list[Record]
    columns: dict[str, list[Any]]
    matrix: np.ndarray | None = None
    names: list[str] | None = None
    typed: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def rows(self) -> list[Record]:
        """The scored inputs, one dict per student."""
        names = list(self.columns)
        return [dict(zip(names, row, strict=True)) for row in zip(*self.columns.values(), strict=True)]

    def store_records(self, event_ids: Sequence[str | None]) -> list[PredictionRecord]:
        """Store rows (model features plus programme and cohort), one event id per student."""
        spec, columns = self.spec, self.columns
        name = spec.name
        n = len(self.outputs)
        features = self.predictor.features
        empty: list[Any] = [None] * n
        feature_rows = zip(*(columns.get(f, empty) for f in features), strict=True)
        programmes = _texts(columns.get(spec.programme_column, empty) if spec.programme_column else empty)
        cohorts = _texts(columns.get(spec.time_column, empty) if spec.time_column else empty)
        out: list[PredictionRecord] = []
        for values, result, event_id, programme, cohort in zip(
            feature_rows, self.outputs, event_ids, programmes, cohorts, strict=True
        ):
            interval = result.get("interval")
            # positional, in the order of the fields: keywords cost about 2 us more a student
            out.append(
                PredictionRecord(
                    result["student_id"],
                    name,  # dataset
                    result["task"],
                    result["stage"],
                    result["model_name"],
                    result["risk_score"],
                    result["risk_band"],
                    result["prediction"],
                    result["model_version"],
                    event_id,
                    result.get("probabilities"),
                    interval[0] if interval else None,  # interval_low
                    interval[1] if interval else None,  # interval_high
                    dict(zip(features, values, strict=True)),  # features (the store maps NaN to null)
                    programme,
                    cohort,
                )
            )
        return out

    def split(self, sizes: Sequence[int]) -> list[ScoredBatch]:
        """Consecutive parts of ``sizes`` students each (e.g. the requests scored together)."""
        if sum(sizes) != len(self.outputs):
            raise ValueError(f"parts of {sum(sizes)} students for a batch of {len(self.outputs)}")
        parts: list[ScoredBatch] = []
        start = 0
        for size in sizes:
            end = start + size
            parts.append(
                ScoredBatch(
                    self.spec,
                    self.predictor,
                    self.records[start:end],
                    self.outputs[start:end],
                    {name: values[start:end] for name, values in self.columns.items()},
                    matrix=None if self.matrix is None else self.matrix[start:end],
                    names=self.names,
                    typed=None if self.typed is None else self.typed.iloc[start:end].reset_index(drop=True),
                )
            )
            start = end
        return parts

    def explain(self, top_k: int = 3) -> list[list[Reason]]:
        """The ``top_k`` plain-word reasons per student."""
        if self.typed is None:
            self.typed = self._typed_from_rows()
        return reasons(
            self.spec, self.predictor.model, self.typed, top_k, matrix=self.matrix, names=self.names
        )

    def _typed_from_rows(self) -> pd.DataFrame:
        typed = pd.DataFrame(self.rows)
        typed.insert(0, self.spec.id.column, [o["student_id"] for o in self.outputs])
        return typed


def _texts(values: list[Any]) -> list[str | None]:
    """Programme or cohort values as stored: text, ``None`` when missing."""
    return [None if _missing(v) else str(v) for v in values]


def score_fast(predictor: Predictor, records: Sequence[Record]) -> ScoredBatch | None:
    """Score with the compiled fast path only; ``None`` when any record (or the model) needs the
    full path. Records scored together get exactly what they get one by one."""
    spec = predictor.spec
    records = list(records)
    scorer = predictor.fast_scorer
    values = scorer.parse(records) if scorer is not None else None
    if scorer is None or values is None:
        return None
    matrix = scorer.matrix(values, len(records))
    columns = dict(values)
    for c in (spec.programme_column, spec.time_column):
        if c is not None and c not in columns:
            columns[c] = [record.get(c) for record in records]
    return ScoredBatch(
        spec,
        predictor,
        records,
        _outputs(predictor, record_ids(records, spec), scorer.score_matrix(matrix)),
        columns,
        matrix=matrix,
        names=scorer.feature_names_out,
    )


def score_records(predictor: Predictor, records: Sequence[Record]) -> ScoredBatch:
    """Score canonical records (raises ``ScoringError`` naming bad fields)."""
    records = list(records)
    fast = score_fast(predictor, records)  # same results, no pandas
    if fast is not None:
        return fast
    spec = predictor.spec
    extra = [c for c in (spec.programme_column, spec.time_column) if c is not None]
    try:
        typed = predictor.prepare(records)
    except DataValidationError as exc:
        raise ScoringError(str(exc), validation_detail(exc)) from None
    ids = typed[spec.id.column].astype(str).tolist()
    frame = typed.reindex(columns=[*predictor.features, *[c for c in extra if c not in predictor.features]])
    columns = {str(k): v for k, v in frame.to_dict(orient="list").items()}
    return ScoredBatch(
        spec, predictor, records, _outputs(predictor, ids, predictor.model.score(typed)), columns, typed=typed
    )
