"""Synthetic student records generated from a dataset spec alone.

The generator is driven only by the spec, so an institution's own spec works without code
changes. Every student gets a latent, standard-normal *engagement*; the columns follow from it:

* Coded columns (categorical, and booleans that no task constrains) get uneven, deterministic
  marginals: Zipf-like weights over the codes in spec order, with a seeded exponent. Each code
  also nudges engagement a little (a seeded effect), so demographics carry some signal.
* Numeric columns are monotone transforms of a Gaussian latent that loads on engagement: with
  the sign implied by any task's ``monotone`` map (for binary classification the sign is the
  effect on the risk of the adverse class, so it is flipped; for regression it is the effect on
  the value); strongly for later-stage and monotone columns (monotone booleans are a thresholded
  latent), weakly and with a seeded sign for other first-stage ones. Shapes come from the
  column's range: count-like integers are skewed towards their minimum, other bounded values
  are bell-shaped, values stay within ``min``/``max`` and integers are whole.
* Curricular-unit groups (``<prefix>_enrolled`` with ``<prefix>_approved``, plus any of
  ``_evaluations``, ``_without_evaluations``, ``_credited``, ``_grade``) are kept consistent:
  approved <= enrolled, evaluations >= approved, grade at its minimum (0) when nothing was
  approved.
* Targets depend on engagement plus the features named in their tasks' ``monotone`` maps:
  numeric targets increase with them (clipped to the range; ``threshold`` tasks follow from the
  value), classification targets put the ``adverse`` class at the low end of engagement.

Everything is vectorised numpy. Rows are produced in fixed-size chunks, each from its own
seeded stream, so ``synthesize_to_file`` writes 10M rows in bounded memory and writes exactly
the rows that ``synthesize`` returns for the same seed.
"""

from __future__ import annotations

import csv
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from retain.data.spec import Column, ColumnType, DatasetSpec

_CHUNK_ROWS = 250_000
_CATEGORY_EFFECT_SD = 0.25
_MONOTONE_LOADING = 0.7
_EARLY_MONOTONE_LOADING = 0.45
_LATE_STAGE_LOADING = 0.6
_EARLY_STAGE_LOADING = 0.15
_TARGET_FEATURE_WEIGHT = 0.5
_TARGET_SIGNAL = 0.85
_ADVERSE_SHARE = 0.3
_UNIT_SUFFIXES = ("credited", "enrolled", "evaluations", "approved", "grade", "without_evaluations")
_NUMERIC_TYPES = (ColumnType.integer, ColumnType.float)
_STD_NORMAL = NormalDist()


@dataclass(frozen=True)
class _Coded:
    """Marginal of a coded column: codes in spec order, cumulative weights, effects on engagement."""

    codes: tuple[str, ...]
    cdf: np.ndarray
    effects: np.ndarray
    as_number: bool


@dataclass(frozen=True)
class _Target:
    """How a target column is drawn: numeric or by class, from engagement plus some features."""

    name: str
    numeric: bool
    terms: tuple[tuple[str, int], ...]
    labels: tuple[str, ...] = ()
    cuts: tuple[float, ...] = ()


@dataclass(frozen=True)
class _Plan:
    """Everything about the data that depends on the spec and the seed but not on the rows."""

    coded: dict[str, _Coded]
    loadings: dict[str, float]
    binary_cuts: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
    unit_groups: tuple[str, ...]
    targets: tuple[_Target, ...]
    category_variance: float
    id_prefix: str
    order: tuple[str, ...] = field(default_factory=tuple)


def _key(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _column_seed(seed: int, spec: DatasetSpec, name: str) -> np.random.Generator:
    """A stream for one column's parameters: stable when other columns are added or reordered."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, _key(spec.name), _key(name))))


def _chunk_seed(seed: int, spec: DatasetSpec, number: int) -> np.random.Generator:
    """The stream for the rows of chunk ``number``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, _key(spec.name), number)))


def _value_signs(spec: DatasetSpec) -> dict[str, int]:
    """Sign of each monotone column's association with engagement (first task wins on conflict)."""
    signs: dict[str, int] = {}
    for task in spec.tasks:
        flip = -1 if task.is_classification else 1
        for name, sign in task.monotone.items():
            if name in spec.column_map:
                signs.setdefault(name, flip * sign)
    return signs


def _target_names(spec: DatasetSpec) -> list[str]:
    return list(dict.fromkeys(task.target for task in spec.tasks))


def _unit_groups(spec: DatasetSpec) -> list[str]:
    numeric = {c.name for c in spec.columns if c.type in _NUMERIC_TYPES and c.role != "target"}
    targets = set(_target_names(spec))
    groups: list[str] = []
    for name in numeric:
        if name.endswith("_enrolled"):
            prefix = name.removesuffix("_enrolled")
            approved = f"{prefix}_approved"
            if approved in numeric and approved not in targets and name not in targets:
                groups.append(prefix)
    return sorted(groups)


def _coded_values(col: Column) -> tuple[str, ...]:
    if col.codes:
        return tuple(col.codes)
    if col.type is ColumnType.boolean:
        return ("0", "1")
    return tuple(f"{col.name}-{i}" for i in range(1, 21))


def _zipf_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    exponent = rng.uniform(0.8, 2.0)
    weights = 1.0 / np.arange(1, n + 1, dtype=float) ** exponent
    return weights / weights.sum()


def _is_coded(col: Column, value_signs: dict[str, int]) -> bool:
    if col.type in (ColumnType.categorical, ColumnType.string):
        return True
    return col.type is ColumnType.boolean and col.name not in value_signs


def _target_plan(spec: DatasetSpec, name: str, value_signs: dict[str, int]) -> _Target:
    col = spec.column(name)
    tasks = [t for t in spec.tasks if t.target == name]
    terms: dict[str, int] = {}
    for task in tasks:
        flip = -1 if task.is_classification else 1
        for feature, sign in task.monotone.items():
            if feature in spec.column_map and feature != name:
                terms.setdefault(feature, flip * sign)
    term_items = tuple(terms.items())
    if col.type in _NUMERIC_TYPES:
        return _Target(name, numeric=True, terms=term_items)
    task_labels = [label for t in tasks for label in t.labels]
    labels = list(col.codes) if col.codes else list(dict.fromkeys(task_labels)) or list(_coded_values(col))
    adverse = next((t.adverse for t in tasks if t.adverse is not None and t.threshold is None), None)
    if adverse is not None and adverse in labels:
        labels.remove(adverse)
        labels.insert(0, adverse)
        rest = (1.0 - _ADVERSE_SHARE) / max(len(labels) - 1, 1)
        probs = [_ADVERSE_SHARE] + [rest] * (len(labels) - 1) if len(labels) > 1 else [1.0]
    else:
        probs = [1.0 / len(labels)] * len(labels)
    cumulative = np.cumsum(probs)[:-1]
    cuts = tuple(_STD_NORMAL.inv_cdf(float(min(max(p, 1e-9), 1 - 1e-9))) for p in cumulative)
    return _Target(name, numeric=False, terms=term_items, labels=tuple(labels), cuts=cuts)


def _order_targets(plans: list[_Target]) -> tuple[_Target, ...]:
    """Targets that other targets depend on come first (cycles fall back to spec order)."""
    remaining = list(plans)
    done: list[_Target] = []
    names = {p.name for p in plans}
    while remaining:
        ready = [
            p for p in remaining if all(f not in names or f in {d.name for d in done} for f, _ in p.terms)
        ]
        pick = ready[0] if ready else remaining[0]
        done.append(pick)
        remaining.remove(pick)
    return tuple(done)


def _plan(spec: DatasetSpec, seed: int) -> _Plan:
    value_signs = _value_signs(spec)
    targets = set(_target_names(spec))
    coded: dict[str, _Coded] = {}
    loadings: dict[str, float] = {}
    binary_cuts: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
    category_variance = 0.0
    for col in spec.columns:
        if col.name == spec.id.column or col.name in targets or col.role == "id":
            continue
        rng = _column_seed(seed, spec, col.name)
        if _is_coded(col, value_signs):
            codes = _coded_values(col)
            probs = _zipf_weights(len(codes), rng)
            effects = rng.normal(0.0, _CATEGORY_EFFECT_SD, size=len(codes))
            effects = effects - float(probs @ effects)
            category_variance += float(probs @ effects**2)
            as_number = col.type is ColumnType.boolean
            coded[col.name] = _Coded(codes, np.cumsum(probs), effects, as_number)
            continue
        rank = spec.stage_rank(col.stage) if col.stage in spec.stages else 0
        if col.name in value_signs:
            strength = _MONOTONE_LOADING if rank > 0 else _EARLY_MONOTONE_LOADING
            loadings[col.name] = strength * value_signs[col.name]
        elif rank > 0:
            loadings[col.name] = _LATE_STAGE_LOADING
        else:
            loadings[col.name] = _EARLY_STAGE_LOADING * (1.0 if rng.random() < 0.5 else -1.0)
        if col.type is ColumnType.boolean:
            values = sorted(_coded_values(col), key=float)
            probs = _zipf_weights(len(values), rng)
            cuts = tuple(_STD_NORMAL.inv_cdf(float(p)) for p in np.cumsum(probs)[:-1])
            binary_cuts[col.name] = (tuple(float(v) for v in values), cuts)
    target_plans = [_target_plan(spec, name, value_signs) for name in _target_names(spec)]
    order = tuple(c.name for c in spec.columns if c.name != spec.id.column)
    return _Plan(
        coded=coded,
        loadings=loadings,
        binary_cuts=binary_cuts,
        unit_groups=tuple(_unit_groups(spec)),
        targets=_order_targets(target_plans),
        category_variance=category_variance,
        id_prefix=f"{spec.id.prefix}synth-",
        order=order,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


def _is_count_like(col: Column, is_target: bool) -> bool:
    if col.type is not ColumnType.integer or is_target or col.min is None or col.max is None:
        return False
    width = col.max - col.min
    return col.min >= 0 and (width > 20 or (col.min == 0 and width <= 10))


def _finish(col: Column, values: np.ndarray) -> np.ndarray:
    """Round (whole numbers for integers, 2 decimals for floats) and clip to the column's range."""
    out = np.rint(values) if col.type is ColumnType.integer else np.round(values, 2)
    lo = -np.inf if col.min is None else col.min
    hi = np.inf if col.max is None else col.max
    out = np.clip(out, lo, hi)
    if col.type is ColumnType.integer:
        return out.astype(np.int64)
    return out.astype(np.float64)


def _numeric_from_latent(col: Column, x: np.ndarray, is_target: bool = False) -> np.ndarray:
    """A value that increases with the standard-normal latent ``x``, shaped by the column's range."""
    lo, hi = col.min, col.max
    if lo is not None and hi is not None:
        width = hi - lo
        centre, spread = (-2.5, 0.9) if _is_count_like(col, is_target) else (0.5, 0.9)
        values = lo + width * _sigmoid(centre + spread * x)
    elif lo is not None:
        values = lo + np.exp(1.2 + 0.6 * x)
    elif hi is not None:
        values = hi - np.exp(1.2 - 0.6 * x)
    else:
        values = 3.0 * x if col.type is ColumnType.integer else x
    return _finish(col, values)


def _latent(z: np.ndarray, loading: float, rng: np.random.Generator) -> np.ndarray:
    out: np.ndarray = loading * z + np.sqrt(1.0 - loading**2) * rng.standard_normal(z.shape[0])
    return out


def _units(
    spec: DatasetSpec,
    prefix: str,
    plan: _Plan,
    z: np.ndarray,
    rng: np.random.Generator,
    values: dict[str, np.ndarray],
    latents: dict[str, tuple[np.ndarray, float]],
) -> None:
    """One consistent group of curricular-unit counts (and their average grade)."""
    n = z.shape[0]
    name = {suffix: f"{prefix}_{suffix}" for suffix in _UNIT_SUFFIXES}
    present = {suffix: spec.column_map.get(col) for suffix, col in name.items()}

    enrolled_col = spec.column(name["enrolled"])
    x_enrolled = _latent(z, 0.2, rng)
    enrolled = _numeric_from_latent(enrolled_col, x_enrolled).astype(np.int64)
    enrolled = np.maximum(enrolled, 0)
    values[enrolled_col.name] = _finish(enrolled_col, enrolled)
    latents[enrolled_col.name] = (x_enrolled, 0.2)

    approved_col = spec.column(name["approved"])
    loading = plan.loadings.get(approved_col.name, _LATE_STAGE_LOADING)
    x_approved = _latent(z, loading, rng)
    approved = rng.binomial(enrolled, _sigmoid(1.0 + 1.8 * x_approved))
    values[approved_col.name] = _finish(approved_col, approved)
    latents[approved_col.name] = (x_approved, loading)
    approved = values[approved_col.name].astype(np.int64)
    not_approved = np.maximum(enrolled - approved, 0)

    col = present["evaluations"]
    if col is not None:
        extra = rng.binomial(not_approved, 0.85) + np.where(enrolled > 0, rng.poisson(0.8, n), 0)
        evaluations = _finish(col, approved + extra)
        values[col.name] = np.maximum(evaluations, approved.astype(evaluations.dtype))
    col = present["without_evaluations"]
    if col is not None:
        values[col.name] = _finish(col, rng.binomial(not_approved, 0.1))
    col = present["credited"]
    if col is not None:
        values[col.name] = _finish(col, np.where(rng.random(n) < 0.08, 1 + rng.poisson(4.0, n), 0))
    col = present["grade"]
    if col is not None:
        lo = col.min if col.min is not None else 0.0
        hi = col.max if col.max is not None else lo + 20.0
        grade_loading = plan.loadings.get(col.name, _LATE_STAGE_LOADING)
        x_grade = _latent(z, grade_loading, rng)
        middle = lo + 0.5 * (hi - lo)
        grade = middle + (hi - middle) * _sigmoid(-1.0 + 0.9 * x_grade)
        values[col.name] = _finish(col, np.where(approved > 0, grade, lo))
        latents[col.name] = (x_grade, grade_loading)


def _target_values(
    spec: DatasetSpec,
    target: _Target,
    z: np.ndarray,
    rng: np.random.Generator,
    latents: dict[str, tuple[np.ndarray, float]],
) -> tuple[np.ndarray, np.ndarray, float]:
    """Draw a target; returns (values, its standard-normal score, the score's loading on z)."""
    signal = z.copy()
    along_z = 1.0
    unique = 0.0
    for feature, sign in target.terms:
        if feature not in latents:
            continue
        x, loading = latents[feature]
        signal += _TARGET_FEATURE_WEIGHT * sign * x
        along_z += _TARGET_FEATURE_WEIGHT * sign * loading
        unique += _TARGET_FEATURE_WEIGHT**2 * (1.0 - loading**2)
    scale = float(np.sqrt(along_z**2 + unique))
    score = _TARGET_SIGNAL * signal / scale + np.sqrt(1.0 - _TARGET_SIGNAL**2) * rng.standard_normal(
        z.shape[0]
    )
    score_loading = _TARGET_SIGNAL * along_z / scale
    col = spec.column(target.name)
    if target.numeric:
        return _numeric_from_latent(col, score, is_target=True), score, score_loading
    index = np.searchsorted(np.asarray(target.cuts), score)
    labels = np.asarray(target.labels, dtype=object)[index]
    if col.type is ColumnType.boolean:
        return labels.astype(float).astype(np.int64), score, score_loading
    return labels, score, score_loading


def _chunk(spec: DatasetSpec, plan: _Plan, n: int, start: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` synthetic rows; ids numbered from ``start + 1``."""
    values: dict[str, np.ndarray] = {}
    latents: dict[str, tuple[np.ndarray, float]] = {}
    nudge = np.zeros(n)
    for name, coded in plan.coded.items():
        index = np.minimum(np.searchsorted(coded.cdf, rng.random(n), side="right"), len(coded.codes) - 1)
        nudge += coded.effects[index]
        if coded.as_number:
            values[name] = np.asarray([int(float(c)) for c in coded.codes], dtype=np.int64)[index]
        else:
            values[name] = np.asarray(coded.codes, dtype=object)[index]
    z = (rng.standard_normal(n) + nudge) / np.sqrt(1.0 + plan.category_variance)

    grouped = {f"{p}_{s}" for p in plan.unit_groups for s in _UNIT_SUFFIXES}
    for name, loading in plan.loadings.items():
        if name in grouped:
            continue
        col = spec.column(name)
        x = _latent(z, loading, rng)
        latents[name] = (x, loading)
        if name in plan.binary_cuts:
            codes, cuts = plan.binary_cuts[name]
            values[name] = np.asarray(codes)[np.searchsorted(np.asarray(cuts), x)].astype(np.int64)
        else:
            values[name] = _numeric_from_latent(col, x)
    for prefix in plan.unit_groups:
        _units(spec, prefix, plan, z, rng, values, latents)
    for target in plan.targets:
        drawn, score, loading = _target_values(spec, target, z, rng, latents)
        values[target.name] = drawn
        latents[target.name] = (score, loading)

    numbers = np.arange(start + 1, start + n + 1).astype(str)
    ids = np.char.add(plan.id_prefix, np.char.zfill(numbers, 8)) if n else numbers
    frame: dict[str, np.ndarray] = {spec.id.column: ids.astype(object)}
    for name in plan.order:
        if name in values:
            frame[name] = values[name]
        else:  # another identifier column (role "id"): unique per row
            frame[name] = (np.char.add(f"{name}-", numbers) if n else numbers).astype(object)
    return pd.DataFrame(frame, index=pd.RangeIndex(start, start + n))


def _chunks(spec: DatasetSpec, rows: int, seed: int, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    plan = _plan(spec, seed)
    for number, start in enumerate(range(0, rows, chunk_rows)):
        rng = _chunk_seed(seed, spec, number)
        yield _chunk(spec, plan, min(chunk_rows, rows - start), start, rng)


def synthesize(
    spec: DatasetSpec, rows: int, seed: int = 42, *, chunk_rows: int = _CHUNK_ROWS
) -> pd.DataFrame:
    """Synthetic records for a dataset, valid against its spec.

    Parameters
    ----------
    spec : DatasetSpec
        Drives everything: columns, codes, ranges, stages, tasks and their ``monotone`` maps.
    rows : int
        Number of records (``>= 0``).
    seed : int, default 42
        The same spec, rows and seed always give the same frame.
    chunk_rows : int, default 250000
        Rows drawn per seeded stream; ``synthesize_to_file`` with the same value writes the same rows.

    Returns
    -------
    DataFrame, shape (rows, 1 + n_columns)
        Canonical column names: ``spec.id.column`` first (``{prefix}synth-00000001``, ...), then
        every spec column in spec order, targets included. Codes are strings, integer and boolean
        columns int64, float columns float64; no missing values.
    """
    parts = list(_chunks(spec, rows, seed, chunk_rows))
    if not parts:
        return _empty(spec, seed)
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True)


def _empty(spec: DatasetSpec, seed: int) -> pd.DataFrame:
    plan = _plan(spec, seed)
    rng = _chunk_seed(seed, spec, 0)
    return _chunk(spec, plan, 0, 0, rng).reset_index(drop=True)


def _source_headers(spec: DatasetSpec) -> dict[str, str]:
    headers = {c.name: c.header for c in spec.columns}
    headers[spec.id.column] = spec.id.source or spec.id.column
    return headers


def synthesize_to_file(
    spec: DatasetSpec,
    rows: int,
    path: Path,
    seed: int = 42,
    *,
    chunk_rows: int = _CHUNK_ROWS,
) -> Path:
    """Write synthetic records to CSV or Parquet in chunks (bounded memory), atomically.

    Parameters
    ----------
    spec : DatasetSpec
    rows : int
        Number of records.
    path : Path
        ``.csv``: source headers as in the published files and the spec's delimiter (default
        ``,``), with the id column first. ``.parquet`` / ``.pq``: canonical names.
    seed : int, default 42
    chunk_rows : int, default 250000
        Rows generated and written at a time; memory grows with this, not with ``rows``.

    Returns
    -------
    Path
        ``path``, written through a temporary file in the same folder and then renamed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".parquet", ".pq"}:
        raise ValueError(f"unsupported file type {path.suffix!r}: use .csv, .parquet or .pq")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    chunks = _chunks(spec, rows, seed, chunk_rows) if rows > 0 else iter([_empty(spec, seed)])
    try:
        if suffix == ".csv":
            headers = _source_headers(spec)
            delimiter = spec.source.delimiter or ","
            with tmp.open("w", encoding="utf-8", newline="") as handle:
                for number, part in enumerate(chunks):
                    if number == 0:  # headers quoted, as in the published files (one ends in a tab)
                        head = csv.writer(
                            handle, delimiter=delimiter, quoting=csv.QUOTE_ALL, lineterminator="\n"
                        )
                        head.writerow([headers[str(name)] for name in part.columns])
                    part.to_csv(handle, sep=delimiter, index=False, header=False, lineterminator="\n")
        else:
            writer: pq.ParquetWriter | None = None
            try:
                for part in chunks:
                    table = pa.Table.from_pandas(part, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table.cast(writer.schema))
            finally:
                if writer is not None:
                    writer.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
