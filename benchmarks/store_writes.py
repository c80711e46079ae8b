"""Benchmark: what one group of stored predictions costs SQLite, and why.

The API's group-commit thread writes each group of predictions in one transaction. This script
prepares groups of ``--rows`` predictions (random students, 30 features each, as the API stores
them) once, then times ``BEGIN IMMEDIATE``, the insert and ``COMMIT`` on a fresh SQLite store (WAL,
``synchronous=FULL``, the writer's 64 MiB page cache) for ``--groups`` groups a run, each variant
``--repeats`` times in rotation (medians; this machine's speed drifts):

1. multi-row statements (what ``PredictionWriter`` does, ``_insert_predictions``: up to 1,024 rows
   a statement, one step each): the baseline;
2. ``executemany``, one step per row (less CPU a row, what the writer did before);
3. both while another thread runs Python code non-stop, as the API's event loop does under
   load: the sqlite3 module lets go of the GIL at every step and must win it back;
4. the baseline without the per-student index (``ix_predictions_dataset_student_created``):
   what the random index page each student's row dirties costs, in the insert and the commit;
5. the baseline with SQLite's default WAL checkpoint (every 1,000 pages) instead of the
   store's (``retain.store.db.WAL_CHECKPOINT_PAGES``).

Prints microseconds a row: the writer thread's wall time (insert, commit) and the process's CPU.

    python benchmarks/store_writes.py [--rows 1000] [--groups 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retain.store.db import WAL_CHECKPOINT_PAGES
from retain.store.repository import PredictionRecord, Store, _insert_predictions


def _groups(n_groups: int, rows: int, seed: int = 7) -> list[list[PredictionRecord]]:
    rng = random.Random(seed)
    out = []
    for g in range(n_groups):
        group = []
        for i in range(rows):
            features: dict[str, Any] = {f"feature_{j:02d}": rng.random() for j in range(26)}
            features.update(course="9254", gender="1", scholarship_holder="0", age_at_enrollment=19.0)
            risk = rng.random()
            group.append(
                PredictionRecord(
                    student_id=f"S{rng.randrange(10**9):09d}",
                    dataset="dropout",
                    task="dropout",
                    stage="semester_1",
                    model_name="dropout.dropout.semester_1",
                    model_version=1,
                    risk_score=risk,
                    risk_band="high" if risk > 0.5 else "low",
                    prediction="Dropout" if risk > 0.5 else "Not dropout",
                    probabilities={"Dropout": risk, "Not dropout": 1 - risk},
                    features=features,
                    event_id=f"bench-{g}-{i}",
                )
            )
        out.append(group)
    return out


def _busy(stop: threading.Event) -> None:
    counts: dict[int, int] = {}
    while not stop.is_set():
        for i in range(1000):
            counts[i] = counts.get(i, 0) + 1


def _run(
    groups: list[list[PredictionRecord]], insert: str, busy: bool, student_index: bool, checkpoint: int
) -> tuple[float, float, float]:
    """Microseconds a row: insert, commit, process CPU."""
    folder = Path(tempfile.mkdtemp(prefix="retain-store-bench-"))
    store = Store.open(f"sqlite:///{folder / 'bench.db'}")
    connection = store.engine.raw_connection()
    cursor = connection.cursor()
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute(f"PRAGMA wal_autocheckpoint={checkpoint}")
    if not student_index:
        cursor.execute("DROP INDEX ix_predictions_dataset_student_created")
    sql = store._prediction_insert()[0]
    prepared = [store.prepare_predictions(group).values for group in groups]  # outside the timing
    paramstyle = store.engine.dialect.paramstyle
    writes: Callable[[list[tuple[Any, ...]]], Any] = (
        (lambda values: cursor.executemany(sql, values))
        if insert == "executemany"
        else (lambda values: _insert_predictions(cursor, paramstyle, values))
    )
    stop = threading.Event()
    spinner = threading.Thread(target=_busy, args=(stop,), daemon=True)
    if busy:
        spinner.start()
    inserting = committing = 0.0
    cpu = time.process_time()
    for values in prepared:
        began = time.perf_counter()
        cursor.execute("BEGIN IMMEDIATE")
        writes(values)
        inserted = time.perf_counter()
        connection.commit()
        inserting += inserted - began
        committing += time.perf_counter() - inserted
    cpu = time.process_time() - cpu
    stop.set()
    if busy:
        spinner.join()
    cursor.close()
    connection.close()
    store.close()
    rows = sum(len(v) for v in prepared)
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    return inserting / rows * 1e6, committing / rows * 1e6, cpu / rows * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="Predictions in a group.")
    parser.add_argument(
        "--groups", type=int, default=100, help="Groups a run (a tenth beside a busy thread)."
    )
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each variant, in rotation.")
    args = parser.parse_args()
    os.environ.setdefault("RETAIN_HOME", tempfile.mkdtemp(prefix="retain-store-bench-home-"))
    groups = _groups(args.groups, args.rows)
    print(
        f"groups of {args.rows} predictions on a fresh SQLite store: {args.groups} a run "
        f"({max(1, args.groups // 10)} beside a busy thread), medians of {args.repeats} runs in rotation"
    )
    shipped = WAL_CHECKPOINT_PAGES
    variants = [
        ("multi-row statements (shipped, the baseline)", "shipped", False, True, shipped),
        ("executemany", "executemany", False, True, shipped),
        ("multi-row statements, beside a busy Python thread", "shipped", True, True, shipped),
        ("executemany, beside a busy Python thread", "executemany", True, True, shipped),
        ("multi-row statements, without the per-student index", "shipped", False, False, shipped),
        ("multi-row statements, SQLite's default checkpoint (1,000 pages)", "shipped", False, True, 1000),
    ]
    results: dict[str, list[tuple[float, float, float]]] = {label: [] for label, *_ in variants}
    for _ in range(args.repeats):
        for label, insert, busy, student_index, checkpoint in variants:
            some = groups[: max(1, args.groups // 10)] if busy else groups
            results[label].append(_run(some, insert, busy, student_index, checkpoint))
    print(f"{'variant':58s} {'insert':>8s} {'commit':>8s} {'CPU':>8s}  (us a row)")
    for label, runs in results.items():
        inserting, committing, cpu = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"{label:58s} {inserting:8.1f} {committing:8.1f} {cpu:8.1f}")
    print("(with a busy thread, CPU includes that thread's)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
