"""Benchmark: batch scoring at scale, the local (streaming) and Dask backends against the model alone.

Trains ``dropout.dropout.semester_2`` with the tuned parameters (``configs/params.yaml``) on 4,000
synthetic students through the pure ``retain.training.fit`` functions (no MLflow), then for each
``--rows`` writes synthetic students once as Parquet partitions (``--partition-rows`` per file,
row groups of 250,000) to a temporary folder and measures, in the same run:

* **baseline**: the fitted pipeline's final estimator (``predict_proba``) on a matrix already
  transformed by the pipeline's preprocessing, for the first ``--baseline-rows`` students: the
  cost of the model alone, in students/s (it does not depend on the total);
* **local**: ``retain.batch.score.score_files`` with the local backend, end to end (read the
  partitions, validate, transform, predict, write Parquet parts), in a fresh subprocess;
  students/s and its peak RSS (``VmHWM`` of the subprocess, and psutil sampling);
* **dask**: the same with the Dask backend on a ``LocalCluster`` of ``--workers`` processes (one
  thread each) started in the subprocess (its start-up is printed apart and not counted);
  peak RSS summed over the client and its workers (psutil sampling every 0.2 s).

Each scored output is checked to have every row; the local and Dask outputs are compared for
equality (``--check``, default on for up to 2,000,000 rows).

    python benchmarks/batch_scale.py --rows 1000000 10000000 [--chunk-rows 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

MODEL = ("dropout", "dropout", "semester_2")


def _train(path: Path) -> Any:
    """Train the benchmark model on synthetic students and pickle its predictor to ``path``."""
    import numpy as np

    from retain.data.spec import load_spec
    from retain.data.synth import synthesize
    from retain.data.validate import validate_frame
    from retain.features.build import feature_set
    from retain.predictor import Predictor
    from retain.training.fit import build_risk_model, encode_target, folds, out_of_fold
    from retain.training.params import tuned_for

    dataset, task_name, stage = MODEL
    spec = load_spec(dataset)
    task = spec.task(task_name)
    typed, _ = validate_frame(synthesize(spec, 4000, seed=42), spec)
    y = encode_target(typed, task)
    keep = ~np.isnan(y) if y.dtype.kind == "f" else y >= 0
    typed, y = typed.loc[keep].reset_index(drop=True), y[keep]
    tuned = tuned_for(spec.model_name(task_name, stage))
    fs = feature_set(spec, task, stage, drop=tuned.drop)
    oof = out_of_fold(spec, task, fs, tuned.kind, tuned.params, typed, y, folds(y, task, 3, 42))
    model = build_risk_model(
        spec, task, stage, fs, tuned.kind, tuned.params, typed, y, oof, calibration=tuned.calibration
    )
    predictor = Predictor(spec=spec, model=model, version=1)
    path.write_bytes(pickle.dumps(predictor))
    return predictor


def _partitions(folder: Path, rows: int, partition_rows: int) -> float:
    """Write ``rows`` synthetic students as Parquet files of ``partition_rows``; seconds taken."""
    from retain.data.spec import load_spec
    from retain.data.synth import synthesize_to_file

    spec = load_spec(MODEL[0])
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    for number, start in enumerate(range(0, rows, partition_rows)):
        n = min(partition_rows, rows - start)
        synthesize_to_file(spec, n, folder / f"part-{number:04d}.parquet", seed=1000 + number)
    return time.perf_counter() - started


def _baseline(predictor: Any, folder: Path, rows: int) -> float:
    """Students/s of the final estimator alone on a pre-transformed matrix (best of three)."""
    import pandas as pd
    import pyarrow.parquet as pq

    first = sorted(folder.glob("*.parquet"))[0]
    frame = pq.ParquetFile(first).read().slice(0, rows).to_pandas()
    typed = predictor.prepare(frame)
    prep = predictor.model.pipeline.named_steps["prep"]
    estimator = predictor.model.pipeline.named_steps["model"]
    matrix = prep.transform(pd.DataFrame(typed).reindex(columns=predictor.features))
    predict = estimator.predict_proba if predictor.model.is_classification else estimator.predict
    predict(matrix[:1000])
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        predict(matrix)
        best = min(best, time.perf_counter() - started)
    return len(matrix) / best


def _own_peak_mb() -> float:
    """This process's peak RSS (``VmHWM``). Not ``ru_maxrss``: Linux carries that across exec, so a
    child started from a large parent reports the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(args: argparse.Namespace) -> int:
    """Run one backend (in a subprocess) and print its timing as JSON."""
    warnings.filterwarnings("ignore")
    from retain.batch.score import score_files

    predictor = pickle.loads(Path(args.model).read_bytes())
    result: dict[str, Any] = {}
    if args.child == "dask":
        from retain.batch.cluster import dask_client

        started = time.perf_counter()
        with dask_client(None, args.workers) as client:
            client.run(lambda: __import__("retain.batch.cluster"))  # workers import retain first
            result["cluster_s"] = time.perf_counter() - started
            started = time.perf_counter()
            summary = score_files(
                predictor,
                Path(args.input),
                Path(args.output),
                backend="dask",
                chunk_rows=args.chunk_rows,
                client=client,
            )
            result["seconds"] = time.perf_counter() - started
    else:
        started = time.perf_counter()
        summary = score_files(predictor, Path(args.input), Path(args.output), chunk_rows=args.chunk_rows)
        result["seconds"] = time.perf_counter() - started
    result["rows"] = summary.rows
    result["peak_rss_mb"] = _own_peak_mb()
    print(json.dumps(result))
    return 0


def _run_child(backend: str, args: argparse.Namespace, model: Path, src: Path, out: Path) -> dict[str, Any]:
    """Start a backend in a subprocess; its result, peak RSS (own and with descendants)."""
    import psutil

    command = [
        sys.executable,
        __file__,
        "--child",
        backend,
        "--model",
        str(model),
        "--input",
        str(src),
        "--output",
        str(out),
        "--chunk-rows",
        str(args.chunk_rows),
        "--workers",
        str(args.workers),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        parent = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak_tree = max(peak_tree, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    output = proc.stdout.read()
    status = proc.wait()
    done.set()
    sampler.join()
    if status != 0:
        raise RuntimeError(f"{backend} run failed (status {status})")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["peak_tree_mb"] = peak_tree / 2**20
    return result


def _same(a: Path, b: Path) -> bool:
    import pandas as pd

    return bool(pd.read_parquet(a).equals(pd.read_parquet(b)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--partition-rows", type=int, default=500_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=["local", "dask"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)

    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    work = Path(tempfile.mkdtemp(prefix="retain-batch-bench-"))
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    rows_out: list[dict[str, Any]] = []
    try:
        model = work / "predictor.pkl"
        predictor = _train(model)
        say(f"model {predictor.model_name}: {predictor.model.kind}, {len(predictor.features)} features")
        for rows in args.rows:
            src = work / f"students-{rows}"
            synth_s = _partitions(src, rows, args.partition_rows)
            say(f"{rows:,} rows: partitions written in {synth_s:.0f} s")
            base = _baseline(predictor, src, min(rows, args.baseline_rows))
            say(f"  baseline {base:,.0f} students/s")
            local = _run_child("local", args, model, src, work / f"local-{rows}")
            say(f"  local {rows / local['seconds']:,.0f} students/s, peak RSS {local['peak_rss_mb']:,.0f} MB")
            dask = _run_child("dask", args, model, src, work / f"dask-{rows}")
            say(f"  dask {rows / dask['seconds']:,.0f} students/s (cluster start {dask['cluster_s']:.1f} s)")
            assert local["rows"] == rows and dask["rows"] == rows
            check = args.check if args.check is not None else rows <= 2_000_000
            same = _same(work / f"local-{rows}", work / f"dask-{rows}") if check else None
            rows_out.append(
                {
                    "rows": rows,
                    "partitions": len(list(src.glob("*.parquet"))),
                    "baseline_rows_per_s": base,
                    "local_rows_per_s": rows / local["seconds"],
                    "local_seconds": local["seconds"],
                    "local_peak_rss_mb": local["peak_rss_mb"],
                    "local_peak_rss_mb_sampled": local["peak_tree_mb"],
                    "dask_rows_per_s": rows / dask["seconds"],
                    "dask_seconds": dask["seconds"],
                    "dask_cluster_start_s": dask["cluster_s"],
                    "dask_peak_rss_mb_all_processes": dask["peak_tree_mb"],
                    "dask_client_peak_rss_mb": dask["peak_rss_mb"],
                    "outputs_equal": same,
                }
            )
            shutil.rmtree(work / f"local-{rows}", ignore_errors=True)
            shutil.rmtree(work / f"dask-{rows}", ignore_errors=True)
            shutil.rmtree(src, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps({"model": ".".join(MODEL), "chunk_rows": args.chunk_rows, "runs": rows_out}))
        return 0
    print(
        f"\nbatch scoring, {'.'.join(MODEL)}, chunks of {args.chunk_rows:,} rows, {args.workers} Dask workers"
    )
    head = (
        "rows",
        "baseline/s",
        "local/s",
        "local/base",
        "local peak RSS",
        "dask/s",
        "dask/base",
        "dask RSS (all)",
    )
    print(" | ".join(head))
    for r in rows_out:
        base = r["baseline_rows_per_s"]
        print(
            f"{r['rows']:,} | {base:,.0f} | {r['local_rows_per_s']:,.0f} | {r['local_rows_per_s'] / base:.0%} | "
            f"{r['local_peak_rss_mb']:,.0f} MB | {r['dask_rows_per_s']:,.0f} | {r['dask_rows_per_s'] / base:.0%} | "
            f"{r['dask_peak_rss_mb_all_processes']:,.0f} MB"
            + ("" if r["outputs_equal"] is None else f" | outputs equal: {r['outputs_equal']}")
        )
    print("targets: local/base >= 50%; local peak RSS at 10,000,000 rows <= 2,048 MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
