"""The demo's caseload: synthetic students scored into the store with a synthetic roster."""

from __future__ import annotations

from pathlib import Path

from retain.data.spec import load_spec
from retain.data.synth import synthesize_to_file
from retain.demo import seed_caseload
from retain.store.repository import Scope, Store
from retain.training.train import TrainOptions, train


def test_the_demo_caseload_has_named_students_and_is_not_scored_twice(
    isolated_home: Path, fast_training: Path
) -> None:
    spec = load_spec("dropout")
    synthesize_to_file(spec, 600, isolated_home / "train.csv", seed=3)
    train(
        "dropout",
        "dropout",
        "semester_1",
        TrainOptions(data_path=isolated_home / "train.csv", baselines=(), importance=False),
    )
    assert seed_caseload(rows=60) == 60  # the outcome task has no champion here: skipped
    assert seed_caseload(rows=60) == 0
    store = Store.from_settings()
    page = store.caseload("dropout", scope=Scope.admin("t"), task="dropout", limit=100)
    assert page.total == 60
    assert all(e.name and " " in e.name and e.student_id for e in page.entries)
    store.close()
