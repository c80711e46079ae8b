"""Dataset specs: YAML files validated into pydantic models.

A spec is the single description of a dataset. It drives loading (source headers to canonical
names), validation, feature selection per task and stage, monotone constraints, fairness audits,
synthetic data, and later the API and stream schemas.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retain.settings import get_settings


class SpecError(ValueError):
    """A spec file is missing, unreadable or inconsistent."""


class ColumnType(StrEnum):
    categorical = "categorical"
    integer = "integer"
    float = "float"
    boolean = "boolean"
    string = "string"


class ImputePolicy(StrEnum):
    median = "median"
    mean = "mean"
    most_frequent = "most_frequent"
    constant = "constant"
    error = "error"


class TaskType(StrEnum):
    classification = "classification"
    regression = "regression"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    """One column: canonical name, source header, type, allowed values and roles."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    source: str | None = None
    type: ColumnType
    description: str = ""
    label: str | None = None
    codes: dict[str, str] | None = None
    unknown_code_label: str | None = None
    min: float | None = None
    max: float | None = None
    stage: str | None = None
    role: Literal["feature", "target", "id", "time", "info"] = "feature"
    protected: bool = False
    use_as_feature: bool | None = None
    actionable: bool = False
    missing: ImputePolicy = ImputePolicy.median
    fill_value: float | str | None = None

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        if isinstance(value, list):
            return {str(v): str(v) for v in value}
        return value

    @model_validator(mode="after")
    def _check(self) -> Column:
        if self.type is ColumnType.categorical and not self.codes:
            raise ValueError(f"column {self.name!r}: a categorical column needs 'codes'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min {self.min} > max {self.max}")
        if self.missing is ImputePolicy.constant and self.fill_value is None:
            raise ValueError(f"column {self.name!r}: missing policy 'constant' needs 'fill_value'")
        return self

    @property
    def header(self) -> str:
        """The header as it appears in source files."""
        return self.source if self.source is not None else self.name

    @property
    def display(self) -> str:
        """A readable label for people."""
        return self.label or self.name.replace("_", " ").capitalize()

    @property
    def is_feature_candidate(self) -> bool:
        if self.role != "feature":
            return False
        if self.use_as_feature is not None:
            return self.use_as_feature
        return not self.protected

    def readable(self, value: object) -> str:
        """The readable label for a value of this column."""
        if self.codes is not None:
            key = _code_key(value)
            if key in self.codes:
                return self.codes[key]
            return self.unknown_code_label or f"unknown code {key}"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)


def _code_key(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class Objective(_Strict):
    """How decision thresholds and risk bands are chosen.

    ``capacity``: the advisors can act on the top ``high_fraction`` of students (band ``high``)
    and watch the next ``medium_fraction`` (band ``medium``). ``recall``: the high band starts at
    the score that catches ``recall`` of the adverse cases in validation.
    """

    kind: Literal["capacity", "recall"] = "capacity"
    high_fraction: float = Field(default=0.2, gt=0, lt=1)
    medium_fraction: float = Field(default=0.2, ge=0, lt=1)
    recall: float = Field(default=0.8, gt=0, le=1)


class InterventionSpec(_Strict):
    """An intervention of the institution's catalogue and the features whose risk it addresses.

    ``addresses`` names columns or derived features; a reason about one of them suggests it.
    """

    type: str = Field(min_length=1, max_length=100)
    addresses: list[str] = Field(min_length=1)
    description: str = ""


class Derived(_Strict):
    """A domain feature computed inside the pipeline from two columns (e.g. approval rate).

    ``ratio``: ``a / b`` (0 where ``b`` is 0); ``difference``: ``a - b``.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    op: Literal["ratio", "difference"]
    a: str
    b: str
    label: str | None = None
    description: str = ""


class Task(_Strict):
    """A prediction task: its target, kind, metric, promotion margin and stages.

    Classification comes in three forms: ``classes`` (multi-class, risk = P(``adverse``)),
    ``adverse`` alone (binary: the adverse label against all others, named ``negative_label``),
    and ``threshold`` (binary from a numeric target: below it is ``adverse``). For regression,
    risk is P(value < ``pass_mark``) from the prediction interval. ``monotone`` gives the sign of
    a feature's effect on the model output (risk for binary tasks, the value for regression).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    type: TaskType
    target: str
    classes: list[str] | None = None
    adverse: str | None = None
    negative_label: str | None = None
    threshold: float | None = None
    pass_mark: float | None = None
    stages: list[str]
    exclude: list[str] = Field(default_factory=list)
    include: list[str] = Field(default_factory=list)
    primary_metric: str
    greater_is_better: bool = True
    promotion_margin: float = Field(default=0.0, ge=0)
    monotone: dict[str, Literal[-1, 1]] = Field(default_factory=dict)
    objective: Objective = Field(default_factory=Objective)

    @model_validator(mode="after")
    def _check(self) -> Task:
        where = f"task {self.name!r}"
        if self.type is TaskType.classification:
            if self.adverse is None:
                raise ValueError(f"{where}: classification needs 'adverse' (the outcome to warn about)")
            if self.classes is not None and self.adverse not in self.classes:
                raise ValueError(f"{where}: adverse {self.adverse!r} is not one of classes {self.classes}")
            if self.classes is not None and self.threshold is not None:
                raise ValueError(f"{where}: give either classes or threshold, not both")
            if self.classes is None and self.negative_label is None:
                raise ValueError(f"{where}: a binary task needs 'negative_label'")
            if self.monotone and self.classes is not None and len(self.classes) > 2:
                raise ValueError(f"{where}: monotone constraints need a binary or regression task")
        elif self.pass_mark is None:
            raise ValueError(f"{where}: regression needs 'pass_mark' to turn the value into a risk")
        return self

    @property
    def is_classification(self) -> bool:
        return self.type is TaskType.classification

    @property
    def is_multiclass(self) -> bool:
        return self.classes is not None and len(self.classes) > 2

    @property
    def labels(self) -> list[str]:
        """Class labels in model order (binary: negative first, the adverse label second)."""
        if self.classes is not None:
            return list(self.classes)
        if self.negative_label is None or self.adverse is None:
            return []
        return [self.negative_label, self.adverse]


class IdSpec(_Strict):
    """How the student id is found or derived."""

    column: str = "student_id"
    source: str | None = None
    derive: Literal["row_number", "hash"] = "row_number"
    hash_columns: list[str] = Field(default_factory=list)
    prefix: str = ""


class SourceFile(_Strict):
    """Where the public data lives and how to fetch it."""

    file: str
    format: Literal["csv", "parquet"] = "csv"
    delimiter: str | None = None
    url: str | None = None
    archive_member: str | None = None
    homepage: str | None = None
    license: str = ""
    citation: str = ""


class DatasetSpec(_Strict):
    """The whole description of one dataset."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    description: str = ""
    source: SourceFile
    id: IdSpec = Field(default_factory=IdSpec)
    stages: list[str]
    columns: list[Column]
    tasks: list[Task]
    derived: list[Derived] = Field(default_factory=list)
    time_column: str | None = None
    programme_column: str | None = None
    interventions: list[InterventionSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {dupes}")
        headers = [c.header for c in self.columns]
        dup_headers = sorted({h for h in headers if headers.count(h) > 1})
        if dup_headers:
            raise ValueError(f"duplicate source headers: {dup_headers}")
        if len(set(self.stages)) != len(self.stages):
            raise ValueError("stages must be unique")
        for col in self.columns:
            if col.role == "feature" and col.stage is not None and col.stage not in self.stages:
                raise ValueError(f"column {col.name!r}: unknown stage {col.stage!r} (stages: {self.stages})")
        for d in self.derived:
            for ref in (d.a, d.b):
                if ref not in names:
                    raise ValueError(f"derived feature {d.name!r}: unknown column {ref!r}")
            if d.name in names:
                raise ValueError(f"derived feature {d.name!r} clashes with a column")
        known = set(names) | {d.name for d in self.derived}
        for item in self.interventions:
            unknown = [f for f in item.addresses if f not in known]
            if unknown:
                raise ValueError(f"intervention {item.type!r}: unknown features {unknown}")
            protected = [c.name for c in self.columns if c.protected and c.name in item.addresses]
            if protected:  # who a student is is never the thing to fix
                raise ValueError(f"intervention {item.type!r}: addresses protected attributes {protected}")
        task_names = [t.name for t in self.tasks]
        if len(set(task_names)) != len(task_names):
            raise ValueError("task names must be unique")
        for task in self.tasks:
            where = f"task {task.name!r}"
            if task.target not in names:
                raise ValueError(f"{where}: target {task.target!r} is not a column")
            for stage in task.stages:
                if stage not in self.stages:
                    raise ValueError(f"{where}: unknown stage {stage!r} (stages: {self.stages})")
            derived_names = {d.name for d in self.derived}
            for ref in [*task.exclude, *task.include, *task.monotone]:
                if ref not in names and ref not in derived_names:
                    raise ValueError(f"{where}: unknown column {ref!r}")
        if self.time_column is not None and self.time_column not in names:
            raise ValueError(f"time_column {self.time_column!r} is not a column")
        if self.programme_column is not None and self.programme_column not in names:
            raise ValueError(f"programme_column {self.programme_column!r} is not a column")
        for hc in self.id.hash_columns:
            if hc not in names:
                raise ValueError(f"id.hash_columns: unknown column {hc!r}")
        return self

    @cached_property
    def column_map(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    def column(self, name: str) -> Column:
        try:
            return self.column_map[name]
        except KeyError:
            raise SpecError(f"dataset {self.name!r} has no column {name!r}") from None

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise SpecError(f"dataset {self.name!r} has no task {name!r}; tasks: {[t.name for t in self.tasks]}")

    @property
    def protected(self) -> list[str]:
        return [c.name for c in self.columns if c.protected]

    @property
    def actionable(self) -> list[str]:
        return [c.name for c in self.columns if c.actionable]

    def stage_rank(self, stage: str) -> int:
        if stage not in self.stages:
            raise SpecError(f"dataset {self.name!r} has no stage {stage!r}; stages: {self.stages}")
        return self.stages.index(stage)

    @cached_property
    def features_cache(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """``features`` by (task, stage), computed once (every request asks)."""
        return {}

    def features(self, task: str | Task, stage: str) -> list[str]:
        """Canonical feature names known at ``stage`` for ``task``, in spec order."""
        t = self.task(task) if isinstance(task, str) else task
        key = (t.name, stage)
        cached = self.features_cache.get(key)
        if cached is None:
            cached = self.features_cache[key] = tuple(self._features(t, stage))
        return list(cached)

    def _features(self, t: Task, stage: str) -> list[str]:
        if stage not in t.stages:
            raise SpecError(f"task {t.name!r} has no stage {stage!r}; stages: {t.stages}")
        rank = self.stage_rank(stage)
        out: list[str] = []
        for col in self.columns:
            if col.name == t.target or col.name in t.exclude:
                continue
            wanted = col.is_feature_candidate or col.name in t.include
            if not wanted or col.role != "feature":
                continue
            col_rank = self.stage_rank(col.stage) if col.stage else 0
            if col_rank <= rank:
                out.append(col.name)
        return out

    def derived_features(self, task: str | Task, stage: str) -> list[Derived]:
        """Derived features whose inputs are all known at ``stage`` for ``task``."""
        t = self.task(task) if isinstance(task, str) else task
        base = set(self.features(t, stage))
        return [d for d in self.derived if d.a in base and d.b in base and d.name not in t.exclude]

    def model_name(self, task: str, stage: str) -> str:
        """Registered model name: ``{dataset}.{task}.{stage}``."""
        return f"{self.name}.{task}.{stage}"

    def infer_stage(self, task: str, present: set[str]) -> str:
        """The latest stage of ``task`` whose features are all in ``present``."""
        key = (task, frozenset(present))
        known = self.stage_cache.get(key)
        if known is None:
            known = self._infer_stage(task, present)
            if len(self.stage_cache) < 1024:  # requests send few distinct field sets
                self.stage_cache[key] = known
        return known

    @cached_property
    def stage_cache(self) -> dict[tuple[str, frozenset[str]], str]:
        """``infer_stage`` by (task, fields present), computed once (every request asks)."""
        return {}

    def _infer_stage(self, task: str, present: set[str]) -> str:
        t = self.task(task)
        best: str | None = None
        for stage in t.stages:
            if set(self.features(t, stage)) <= present:
                best = stage
        if best is None:
            first = t.stages[0]
            missing = sorted(set(self.features(t, first)) - present)
            raise SpecError(f"record lacks features for the earliest stage {first!r}: missing {missing}")
        return best


def load_spec_file(path: Path) -> DatasetSpec:
    """Read and validate one spec file, with a readable error on any mistake."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"spec {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"spec {path} must be a mapping at the top level")
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        lines = [f"spec {path} has {exc.error_count()} problem(s):"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            lines.append(f"  - {loc or '(top)'}: {err['msg']}")
        raise SpecError("\n".join(lines)) from None


def spec_paths(dirs: list[Path] | None = None) -> dict[str, Path]:
    """Map dataset names to spec files found in the spec folders (later folders override)."""
    found: dict[str, Path] = {}
    for folder in dirs if dirs is not None else get_settings().spec_dirs():
        if not folder.is_dir():
            continue
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            found[path.stem] = path
    return found


def list_specs() -> list[str]:
    return sorted(spec_paths())


def load_spec(name_or_path: str | Path) -> DatasetSpec:
    """Load a spec by dataset name (from the spec folders) or by file path."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} and path.exists():
        return load_spec_file(path)
    paths = spec_paths()
    if str(name_or_path) not in paths:
        raise SpecError(f"unknown dataset {name_or_path!r}; known: {sorted(paths)}")
    return load_spec_file(paths[str(name_or_path)])
