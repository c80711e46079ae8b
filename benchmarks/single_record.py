"""Benchmark: scoring one student through ``Predictor.predict`` against ``FastScorer``.

Trains two models with the tuned parameters (``configs/params.yaml``) through the pure
``retain.training.fit`` functions (no MLflow): ``dropout.dropout.semester_2`` and
``exam_scores.math.with_other_scores``, on the example data (``RETAIN_DATA_DIR``, default
``../shared/data``) or, when a file is missing, on synthetic records. Then prints, per model:

* latency of one-record calls (median and p99 over 500 calls, each a different student):
  ``Predictor.predict([record])`` (validation with pandera, the pandas pipeline, output frame)
  and ``FastScorer.score_records([record])`` (the compiled path; results checked equal);
* batch throughput (students/s) on 20,000 rows: ``Predictor.predict`` on a frame, the fast
  path on 20,000 records, and as a baseline the fitted estimator alone
  (``predict_proba``/``predict``) on a matrix transformed beforehand;
* for a LightGBM model, the fast path again once its forest runs as native code
  (``FastScorer.compile_native``, one thread; risks checked identical), and the compile time.

    RETAIN_DATA_DIR=../shared/data python benchmarks/single_record.py
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CALLS = 500
WARMUP = 25
BATCH_ROWS = 20_000
MODELS = (("dropout", "dropout", "semester_2"), ("exam_scores", "math", "with_other_scores"))


def _latencies(call: Callable[[int], object], n: int) -> np.ndarray:
    for i in range(WARMUP):
        call(i)
    out = np.empty(n)
    for i in range(n):
        started = time.perf_counter()
        call(i)
        out[i] = time.perf_counter() - started
    return out * 1e3


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Canonical records with JSON-like values (floats, code strings, None when missing)."""
    rows = frame[columns].astype(object).where(frame[columns].notna(), None)
    return [dict(zip(columns, values, strict=True)) for values in rows.itertuples(index=False, name=None)]


def _bench(dataset: str, task_name: str, stage: str) -> None:
    """Train one model, check the fast path agrees, print its latency and throughput."""
    from retain.data.load import dataset_path, load_raw
    from retain.data.spec import load_spec
    from retain.data.synth import synthesize
    from retain.data.validate import validate_frame
    from retain.fastpath import compile_model
    from retain.features.build import feature_set
    from retain.predictor import Predictor
    from retain.training.fit import build_risk_model, encode_target, folds, out_of_fold
    from retain.training.params import tuned_for

    spec = load_spec(dataset)
    task = spec.task(task_name)
    name = spec.model_name(task_name, stage)
    path = dataset_path(spec)
    if path.exists():
        raw = load_raw(spec)
        source = f"example data ({len(raw)} rows)"
    else:
        raw, source = synthesize(spec, 4000, seed=42), "synthetic data (4000 rows)"
    typed, _ = validate_frame(raw, spec)
    y = encode_target(typed, task)
    keep = ~np.isnan(y) if y.dtype.kind == "f" else y >= 0
    typed, y = typed.loc[keep].reset_index(drop=True), y[keep]
    tuned = tuned_for(name)
    fs = feature_set(spec, task, stage, drop=tuned.drop)
    fold_list = folds(y, task, 3, 42)
    oof = out_of_fold(spec, task, fs, tuned.kind, tuned.params, typed, y, fold_list)
    model = build_risk_model(
        spec, task, stage, fs, tuned.kind, tuned.params, typed, y, oof, calibration=tuned.calibration
    )
    predictor = Predictor(spec=spec, model=model)
    compiled_at = time.perf_counter()
    scorer = compile_model(spec, model)
    compile_ms = (time.perf_counter() - compiled_at) * 1e3
    records = _records(typed, [spec.id.column, *model.features])

    # the fast path must agree with the full path on every record it accepts
    reference = model.score(typed)
    fast_all = scorer.score_records(records)
    assert fast_all is not None, "the fast path declined valid example records"
    worst = float(np.max(np.abs(fast_all.risk - reference.risk)))
    same_bands = bool((fast_all.band == reference.band).all())

    n = len(records)
    slow = _latencies(lambda i: predictor.predict([records[i % n]]), CALLS)
    fast = _latencies(lambda i: scorer.score_records([records[i % n]]), CALLS)

    rng = np.random.default_rng(0)
    rows = rng.integers(0, n, BATCH_ROWS)
    batch_frame = typed.iloc[rows].reset_index(drop=True)
    batch_records = [records[int(r)] for r in rows]
    prep = model.pipeline.named_steps["prep"]
    estimator = model.pipeline.named_steps["model"]
    matrix = prep.transform(batch_frame.reindex(columns=model.features))
    baseline = estimator.predict_proba if model.is_classification else estimator.predict

    def throughput(call: Callable[[], object]) -> float:
        call()
        started = time.perf_counter()
        call()
        return BATCH_ROWS / (time.perf_counter() - started)

    full_rate = throughput(lambda: predictor.predict(batch_frame))
    fast_rate = throughput(lambda: scorer.score_records(batch_records))
    base_rate = throughput(lambda: baseline(matrix))

    # the same scorer once its LightGBM forest runs as native code (retain.native_trees)
    native_at = time.perf_counter()
    native = scorer.compile_native(cache_dir=None, threads=1)
    native_s = time.perf_counter() - native_at
    native_times = native_rate = None
    if native:
        native_all = scorer.score_records(records)
        assert native_all is not None and np.array_equal(native_all.risk, fast_all.risk), "native differs"
        native_times = _latencies(lambda i: scorer.score_records([records[i % n]]), CALLS)
        native_rate = throughput(lambda: scorer.score_records(batch_records))

    print(
        f"\n{name}  ({tuned.kind}, {len(model.features)} features -> {scorer.n_features_out} columns; {source})"
    )
    print(f"  compile_model: {compile_ms:.1f} ms; estimator path: {scorer.estimator}")
    print(f"  agreement on {n} records: max |risk diff| = {worst:.3g}, bands identical: {same_bands}")
    print(f"  {'one record, ' + str(CALLS) + ' calls':34s} {'median ms':>10s} {'p99 ms':>10s}")
    rows_shown = [("Predictor.predict([record])", slow), ("FastScorer.score_records([record])", fast)]
    if native_times is not None:
        rows_shown.append(("  ... with native trees", native_times))
    for label, times in rows_shown:
        print(f"  {label:34s} {np.median(times):10.3f} {np.percentile(times, 99):10.3f}")
    print(f"  speed-up (median): {np.median(slow) / np.median(fast):.0f}x")
    print(f"  {'batch of ' + str(BATCH_ROWS) + ' rows':34s} {'students/s':>10s}")
    print(f"  {'Predictor.predict(frame)':34s} {full_rate:10,.0f}")
    print(f"  {'FastScorer.score_records(records)':34s} {fast_rate:10,.0f}")
    if native_rate is not None:
        print(
            f"  {'  ... with native trees':34s} {native_rate:10,.0f}  (compiled in {native_s:.1f} s, same risks)"
        )
    print(f"  {'estimator on transformed matrix':34s} {base_rate:10,.0f}  (baseline)")


def main() -> int:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    os.environ.setdefault("RETAIN_DATA_DIR", str(default_data))
    print(f"cores: {os.cpu_count()}  data: {os.environ['RETAIN_DATA_DIR']}", file=sys.stderr)
    for dataset, task_name, stage in MODELS:
        _bench(dataset, task_name, stage)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
