"""ServiceMetrics across worker processes: every scrape reports all workers' values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

_WORKER = """
from retain.monitoring.metrics import ServiceMetrics
m = ServiceMetrics()
m.count_predictions("dropout.dropout.semester_1", 3, ["high"] * {high} + ["low"] * {low})
m.drift_share.labels("dropout.dropout.semester_1").set({drift})
"""


def _run(code: str, folder: Path | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    if folder is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


_SCRAPE = "import sys; from retain.monitoring.metrics import ServiceMetrics; sys.stdout.write(ServiceMetrics().exposition().decode())"


def test_a_scrape_sums_the_counters_of_every_worker_process(tmp_path: Path) -> None:
    _run(_WORKER.format(high=2, low=5, drift=0.1), tmp_path)
    _run(_WORKER.format(high=3, low=0, drift=0.4), tmp_path)
    samples = _samples(_run(_SCRAPE, tmp_path))
    model = ("model", "dropout.dropout.semester_1")
    assert samples[("retain_predictions_total", (("band", "high"), model))] == 5
    assert samples[("retain_predictions_total", (("band", "low"), model))] == 5
    assert samples[("retain_model_version_info", (model, ("version", "3")))] == 1  # not 2: "max"
    assert samples[("retain_drift_share", (model,))] == 0.4  # the latest check, not a sum


def test_one_process_reports_its_own_registry() -> None:
    code = _WORKER.format(high=1, low=1, drift=0.2) + "import sys; sys.stdout.write(m.exposition().decode())"
    samples = _samples(_run(code, None))
    assert (
        samples[("retain_predictions_total", (("band", "high"), ("model", "dropout.dropout.semester_1")))]
        == 1
    )
