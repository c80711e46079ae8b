"""The shipped Prometheus rules: valid for promtool, and naming only metrics Retain exports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from retain.monitoring.metrics import ServiceMetrics, StreamMetrics

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "rules.yml"


def _exported() -> set[str]:
    names: set[str] = set()
    for metrics in (ServiceMetrics(), StreamMetrics()):
        for family in metrics.registry.collect():
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
            if family.type == "histogram":
                names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
            if family.type == "counter":
                names.add(f"{family.name}_total")
    return names


def test_rules_name_only_exported_metrics() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    exported = _exported()
    used: set[str] = set()
    for group in groups:
        for rule in group["rules"]:
            assert rule["alert"].startswith("Retain") and rule["annotations"]["summary"]
            used.update(re.findall(r"\bretain_[a-z_]+", rule["expr"]))
    assert used, "no metric referenced"
    assert used <= exported, f"rules name metrics nobody exports: {sorted(used - exported)}"


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        reason = "promtool not installed (Debian package prometheus)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


def test_grafana_dashboard_queries_exported_metrics() -> None:
    import json

    board = json.loads((RULES.parents[1] / "grafana" / "retain-overview.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bretain_[a-z_]+", e)}
    assert len(board["panels"]) >= 8 and used <= _exported(), sorted(used - _exported())
    assert {"retain_drift_share", "retain_stream_lag", "retain_live_metric"} <= used
