"""Benchmark: the stream worker end to end through a real Redis.

Trains ``dropout.dropout.semester_1`` on synthetic records (800 rows, the tuned parameters) in a
temporary ``RETAIN_HOME``, then measures against Redis (``REDIS_URL``, default
``redis://127.0.0.1:6379/0``; streams named ``retain-bench-*``, deleted afterwards) with a fresh
SQLite store:

1. **throughput**: ``--events`` events already in the stream; the worker (micro-batches of
   ``--batch-size``) reads, parses, scores, stores, sends and acknowledges them; events/s from
   its start until the group has nothing unread or pending;
2. **passthrough**: the same with the model left out (a constant score instead of the scoring
   core's validation, feature transform and prediction): message parsing, store write, output,
   acknowledgement; the ratio of the two says what the model costs;
3. **scale-out**: ``--workers`` ``retain stream worker`` processes in one consumer group on the
   same kind of pre-filled stream; events/s once every worker has loaded its model;
4. **latency**: events offered at a steady ``--rate`` per second for ``--seconds``; the
   end-to-end latency (``sent_at`` to stored prediction) of every output, p50/p95/p99.

    python benchmarks/stream_throughput.py [--events 50000] [--rate 1000] [--seconds 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _setup_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="retain-stream-bench-"))
    os.environ["RETAIN_HOME"] = str(home)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "retain.streaming.processor"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return home


def _train(home: Path) -> Any:
    from retain.data.spec import load_spec
    from retain.data.synth import synthesize_to_file
    from retain.predictor import Predictor
    from retain.training.train import TrainOptions, train

    data = home / "train.csv"
    synthesize_to_file(load_spec("dropout"), 800, data, seed=31)
    train("dropout", "dropout", "semester_1", TrainOptions(data_path=data, baselines=(), importance=False))
    return Predictor.from_registry("dropout", "dropout", "semester_1")


def _passthrough(predictor: Any, records: Sequence[dict[str, Any]]) -> Any:
    """A scorer without the model: every student gets the same score."""
    from retain.data.load import record_ids
    from retain.scoring import ScoredBatch

    spec, model = predictor.spec, predictor.model
    keep = [*predictor.features, *[c for c in (spec.programme_column, spec.time_column) if c]]
    outputs = [
        {
            "student_id": student_id,
            "task": model.task,
            "stage": model.stage,
            "model_name": predictor.model_name,
            "model_version": predictor.version,
            "risk_score": 0.5,
            "risk_band": "medium",
            "prediction": model.labels[0],
            "probabilities": {label: 1.0 / len(model.labels) for label in model.labels},
        }
        for student_id in record_ids(records, spec)
    ]
    columns = {c: [r.get(c) for r in records] for c in keep}
    return ScoredBatch(spec, predictor, list(records), outputs, columns)


class _Run:
    """One worker over fresh streams and a fresh store."""

    def __init__(self, url: str, home: Path, predictor: Any, *, passthrough: bool, batch_size: int) -> None:
        import redis

        from retain.store.repository import Store
        from retain.streaming.processor import StaticModels, StreamProcessor
        from retain.streaming.redis_streams import RedisStreamSink, RedisStreamSource

        tag = uuid.uuid4().hex[:8]
        self.client = redis.Redis.from_url(url, protocol=2)
        self.events, self.output, self.dead = (f"retain-bench-{tag}-{n}" for n in ("events", "out", "dead"))
        self.store = Store.open(f"sqlite:///{home / f'bench-{tag}.db'}")
        kwargs: dict[str, Any] = {"scorer": _passthrough} if passthrough else {}
        self.processor = StreamProcessor(self.store, StaticModels([predictor]), max_deliveries=5, **kwargs)
        self.sink = RedisStreamSink(self.client, self.events)
        self.source = RedisStreamSource(self.client, self.events, "bench", "bench-1")
        self.out_sink = RedisStreamSink(self.client, self.output)
        self.dead_sink = RedisStreamSink(self.client, self.dead)
        self.batch_size = batch_size
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        from retain.streaming.worker import run_worker

        def target() -> None:
            run_worker(
                self.source,
                self.out_sink,
                self.dead_sink,
                self.processor,
                batch_size=self.batch_size,
                max_wait_ms=20,
                stop=self.stop,
                handle_signals=False,
            )

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def drained(self) -> bool:
        backlog = self.source.backlog()
        return backlog.unread == 0 and backlog.pending == 0

    def wait_drained(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not self.drained():
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not drain the stream")
            time.sleep(0.005)

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(30)
        self.client.delete(self.events, self.output, self.dead)
        self.store.close()
        self.client.close()

    def latencies_ms(self) -> np.ndarray:
        values = [json.loads(fields[b"data"])["latency_ms"] for _, fields in self.client.xrange(self.output)]
        return np.asarray(values, dtype=float)


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    from retain.data.spec import load_spec
    from retain.streaming.replay import events, load_records

    spec = load_spec("dropout")
    records = load_records(spec, count=min(n, 20_000), seed=seed, task="dropout", stage="semester_1")
    return list(events(spec, records, count=n, seed=seed, task="dropout", stage="semester_1"))


def _throughput(url: str, home: Path, predictor: Any, n: int, batch_size: int, passthrough: bool) -> float:
    from retain.streaming.replay import replay

    run = _Run(url, home, predictor, passthrough=passthrough, batch_size=batch_size)
    try:
        replay(_events(n, seed=1 if passthrough else 2), run.sink, rate=0)
        started = time.perf_counter()
        run.start()
        run.wait_drained()
        return n / (time.perf_counter() - started)
    finally:
        run.finish()


def _scale_out(url: str, home: Path, n: int, batch_size: int, workers: int) -> float:
    """Steady events/s of ``workers`` worker processes (``retain stream worker``) in one group."""
    import subprocess

    import redis

    from retain.store.repository import Store
    from retain.streaming.redis_streams import RedisStreamSink
    from retain.streaming.replay import replay

    tag = uuid.uuid4().hex[:8]
    client = redis.Redis.from_url(url, protocol=2)
    names = {k: f"retain-bench-{tag}-{k}" for k in ("events", "out", "dead")}
    database = f"sqlite:///{home / f'scale-{tag}.db'}"
    Store.open(database).close()
    replay(_events(n, seed=5), RedisStreamSink(client, names["events"]), rate=0)
    env = {**os.environ, "RETAIN_HOME": str(home), "RETAIN_DATABASE_URL": database}
    command = [sys.executable, "-c", "from retain.cli import main; main()", "stream", "worker"]
    processes = [
        subprocess.Popen(
            [
                *command,
                "--source",
                f"{url}?stream={names['events']}&group=bench&consumer=w{k}",
                "--sink",
                f"{url}?stream={names['out']}",
                "--dead-letter",
                f"{url}?stream={names['dead']}",
                "--batch-size",
                str(batch_size),
                "--max-wait-ms",
                "20",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for k in range(workers)
    ]
    try:
        # Time the steady state: from when every worker has loaded its model and sent outputs
        # (its first batch) until the stream is drained.
        deadline = time.monotonic() + 300
        while client.xlen(names["out"]) < workers * batch_size:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start")
            time.sleep(0.002)
        started, done_then = time.perf_counter(), client.xlen(names["out"])
        while client.xlen(names["out"]) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not drain the stream")
            time.sleep(0.002)
        return (n - done_then) / (time.perf_counter() - started)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        client.delete(*names.values())
        client.close()


def _latency(
    url: str, home: Path, predictor: Any, rate: float, seconds: float, batch_size: int
) -> np.ndarray:
    from retain.streaming.replay import replay

    run = _Run(url, home, predictor, passthrough=False, batch_size=batch_size)
    try:
        run.start()
        warmup = _events(200, seed=3)
        replay(warmup, run.sink, rate=rate)
        run.wait_drained()
        run.client.delete(run.output)
        replay(_events(int(rate * seconds), seed=4), run.sink, rate=rate)
        run.wait_drained()
        time.sleep(0.2)
        return run.latencies_ms()
    finally:
        run.finish()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the scale-out run")
    parser.add_argument("--json", action="store_true", help="print only a JSON summary on stdout")
    args = parser.parse_args(argv)
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    home = _setup_home()
    say = (lambda m: print(m, file=sys.stderr)) if args.json else print
    say(f"training dropout.dropout.semester_1 in {home} ...")
    predictor = _train(home)
    from retain.settings import get_settings

    # as a served worker would run it, its trees as native code; compiled here once, so the
    # worker processes of the scale-out load the machine code from RETAIN_HOME's cache
    native = predictor.compile_native(get_settings())
    say(f"native trees: {native}")
    say(f"throughput: {args.events:,} events, batches of {args.batch_size}, Redis at {url}")
    full = _throughput(url, home, predictor, args.events, args.batch_size, passthrough=False)
    bare = _throughput(url, home, predictor, args.events, args.batch_size, passthrough=True)
    say(f"scale-out: {args.workers} worker processes in one consumer group")
    scaled = _scale_out(url, home, args.events, args.batch_size, args.workers)
    say(f"latency: {args.rate:,.0f} events/s offered for {args.seconds:.0f}s")
    latencies = _latency(url, home, predictor, args.rate, args.seconds, args.batch_size)
    summary = {
        "events": args.events,
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "native_trees": native,
        "worker_events_per_s": round(full),
        "passthrough_events_per_s": round(bare),
        "ratio": round(full / bare, 3),
        "workers": args.workers,
        "scale_out_events_per_s": round(scaled),
        "latency_rate": args.rate,
        "latency_events": int(latencies.size),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "latency_p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 1),
    }
    if args.json:
        print(json.dumps(summary))
        return
    print()
    print(f"worker (model):      {summary['worker_events_per_s']:>8,} events/s")
    print(f"passthrough:         {summary['passthrough_events_per_s']:>8,} events/s")
    print(f"ratio:               {summary['ratio']:>8.0%}")
    print(f"{args.workers} worker processes: {summary['scale_out_events_per_s']:>8,} events/s (steady state)")
    print(
        f"latency at {args.rate:,.0f}/s:   p50 {summary['latency_p50_ms']} ms, p95 {summary['latency_p95_ms']} ms, "
        f"p99 {summary['latency_p99_ms']} ms ({summary['latency_events']:,} events)"
    )


if __name__ == "__main__":
    main()
