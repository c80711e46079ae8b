"""Benchmark: `retain train --all` with the default budget (tuned parameters reused).

Runs the whole default training in a fresh RETAIN_HOME and prints, per model, the seconds spent
fitting and evaluating (cross-validation, final fit, held-out metrics) and the seconds spent on
tracking (model card, MLflow run, registration), then the totals against the 5-minute target.

    RETAIN_DATA_DIR=../shared/data python benchmarks/train_all.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="retain-bench-"))
    os.environ["RETAIN_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import warnings

    warnings.filterwarnings("ignore")
    from retain.settings import get_settings
    from retain.training.train import train_all

    settings = get_settings()
    print(f"data: {settings.data_dir}  home: {home}  cores: {os.cpu_count()}", file=sys.stderr)
    started = time.perf_counter()
    results = train_all(progress=lambda m: None)
    total = time.perf_counter() - started
    fit = sum(r.seconds for r in results)
    tracking = sum(r.tracking_seconds for r in results)
    print(f"{'model':42s} {'kind':9s} {'fit+eval s':>10s} {'tracking s':>10s}")
    for r in results:
        print(f"{r.model_name:42s} {r.kind:9s} {r.seconds:10.1f} {r.tracking_seconds:10.1f}")
    print(f"models: {len(results)}")
    print(
        f"fit+eval: {fit:.1f} s   tracking: {tracking:.1f} s   other (loading, validation): {total - fit - tracking:.1f} s"
    )
    print(f"total: {total:.1f} s (target <= 300 s): {'within' if total <= 300 else 'OVER'} target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
