"""The whole feedback loop on one machine: ``retain simulate``.

A champion is trained on synthetic students; a new intake (a :mod:`retain.simulation` scenario)
streams through the real worker into the store; the monitoring pass checks drift against the
champion's reference; the intake's outcomes are recorded a term later; live performance is
measured from them; and where drift or performance calls for it, the model is retrained from the
reference data plus the new outcomes and the paired gate decides. Everything runs on the
embedded defaults (SQLite store and registry under the given home, an in-memory stream), and
the numbers are the same for the same seed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from retain.data.spec import load_spec
from retain.data.synth import synthesize_to_file
from retain.monitoring.checks import check_performance, monitor
from retain.monitoring.impact import intervention_impact
from retain.settings import get_settings
from retain.simulation import intake, simulated_help
from retain.store.repository import SIMULATED_ACTOR, Scope, Store
from retain.training import registry
from retain.training.retrain import RetrainError, RetrainOptions, retrain
from retain.training.train import TrainOptions, train

Progress = Callable[[str], None]


@dataclass
class SimulationResult:
    """What one run of the loop did, with the numbers behind each step."""

    dataset: str
    scenario: str
    seed: int
    model_name: str
    champion_version: int | None
    champion_test_metric: float | None
    metric: str
    streamed: dict[str, int]
    drift: dict[str, Any]
    live_metric: float | None
    outcomes: int
    triggers: list[str]
    retrain: dict[str, Any] | None
    final_champion: int | None
    impact: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    reports: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _stream(
    students: list[dict[str, Any]], spec_name: str, task: str, stage: str, store: Store, seed: int
) -> dict[str, int]:
    """Send the intake through an in-memory stream and the real worker; wait until all is acked."""
    from retain.data.spec import load_spec as _load
    from retain.streaming.memory import MemorySink, MemorySource, MemoryStream
    from retain.streaming.processor import StreamProcessor
    from retain.streaming.replay import events, replay
    from retain.streaming.worker import run_worker

    spec = _load(spec_name)
    inbox, outbox, dead = MemoryStream("events"), MemoryStream("predictions"), MemoryStream("dead-letters")
    replay(events(spec, students, seed=seed, task=task, stage=stage), MemorySink(inbox), rate=0)
    stop = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        box["stats"] = run_worker(
            MemorySource(inbox), MemorySink(outbox), MemorySink(dead), StreamProcessor(store),
            stop=stop, handle_signals=False,
        )  # fmt: skip

    worker = threading.Thread(target=work, name="simulate-worker", daemon=True)
    worker.start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and worker.is_alive():
        backlog = inbox.backlog()
        if not backlog.unread and not backlog.pending:
            break
        time.sleep(0.05)
    stop.set()
    worker.join(timeout=60)
    stats = box.get("stats")
    return {
        "sent": len(students),
        "scored": int(stats.outputs) if stats else 0,
        "dead_letters": len(dead.entries()),
        "duplicates": int(stats.duplicates) if stats else 0,
    }


def simulate(
    dataset: str = "dropout",
    scenario: str = "drift",
    *,
    task: str = "dropout",
    stage: str = "enrolment",
    seed: int = 7,
    reference_rows: int = 2000,
    intake_rows: int = 1200,
    rounds: int = 300,
    force_retrain: bool = False,
    progress: Progress | None = None,
) -> SimulationResult:
    """Run the loop under the current settings' home (use a fresh one: it trains and stores)."""
    started = time.perf_counter()
    say = progress or (lambda _m: None)
    s = get_settings()
    spec = load_spec(dataset)
    t = spec.task(task)
    name = spec.model_name(t.name, stage)
    registry.configure(s)

    reference = s.home / "simulation" / f"{spec.name}-reference-{seed}.csv"
    say(f"1/6 training the champion {name} on {reference_rows} synthetic students")
    synthesize_to_file(spec, reference_rows, reference, seed=seed)
    trained = train(
        spec.name, t.name, stage, TrainOptions(data_path=reference, baselines=(), importance=False), s
    )[0]
    champion_version = registry.champion_version(name)
    test_metric = trained.test_metrics.get(t.primary_metric, {}).get("value")

    new = intake(
        spec, t, scenario, intake_rows, seed=seed + 1, reference_seed=seed, reference_rows=reference_rows
    )
    from retain.streaming.replay import frame_records, record_columns

    records = frame_records(new.students, spec, record_columns(spec, t.name, stage))
    store = Store.from_settings(s)
    try:
        say(f"2/6 streaming a new intake of {intake_rows} students ({scenario}) through the worker")
        streamed = _stream(records, spec.name, t.name, stage, store, seed)

        say("3/6 monitoring: drift of the intake against the champion's training reference")
        checked = monitor(spec.name, t.name, stage, window=None, last=intake_rows, settings=s, store=store)
        summaries = checked.to_dict()["drift"]
        drift: dict[str, Any] = summaries[0] if isinstance(summaries, list) and summaries else {}
        triggers = list(checked.triggers.get(name, []))

        from retain.predictor import Predictor

        bands = Predictor.from_registry(spec.name, t.name, stage, settings=s).predict(new.students)[
            "risk_band"
        ]
        helped, outcomes = simulated_help(new.outcomes, bands, t, seed=seed)
        actor = Scope.admin(SIMULATED_ACTOR)
        for sid in helped:
            store.record_intervention(spec.name, sid, "advising meeting", note="simulated", scope=actor)
        say(
            f"4/6 a term later: {len(outcomes)} outcomes recorded ({len(helped)} flagged students were helped)"
        )
        when = datetime.now(UTC) + timedelta(seconds=1)
        scope = Scope.admin("simulation")
        for sid, label in zip(outcomes["student_id"], outcomes["outcome"], strict=True):
            store.record_outcome(spec.name, str(sid), str(label), task=t.name, recorded_at=when, scope=scope)

        say("5/6 live performance of the champion on the intake's outcomes")
        performance = check_performance(spec.name, t.name, period="Y", settings=s, store=store)
        impact = intervention_impact(store.outcome_pairs(spec.name, task=t.name), t, seed=seed).to_dict()
        judged = [p for p in performance.periods if p.judged and p.model_version == champion_version]
        live = judged[-1].metrics.get(t.primary_metric) if judged else None
        if test_metric is not None and live is not None:
            drop = test_metric - live if t.greater_is_better else live - test_metric
            if drop > 0.05:
                triggers.append(
                    f"live {t.primary_metric} {live:.3f} against {test_metric:.3f} on held-out training rows"
                )

        outcome: dict[str, Any] | None = None
        if triggers or force_retrain:
            why = "; ".join(triggers) if triggers else "forced"
            say(f"6/6 retraining {name} ({why})")
            try:
                options = RetrainOptions.from_settings(s, data_path=reference, rounds=rounds, trigger=why)
                outcome = retrain(
                    name, options=options, settings=s, store=store, actor="simulation"
                ).to_dict()
            except RetrainError as exc:
                outcome = {"skipped": str(exc)}
        else:
            say("6/6 nothing calls for a retrain: the champion stays")
        return SimulationResult(
            dataset=spec.name,
            scenario=scenario,
            seed=seed,
            model_name=name,
            champion_version=champion_version,
            champion_test_metric=test_metric,
            metric=t.primary_metric,
            streamed=streamed,
            drift=drift,
            live_metric=live,
            outcomes=len(outcomes),
            impact=impact,
            triggers=triggers,
            retrain=outcome,
            final_champion=registry.champion_version(name),
            seconds=time.perf_counter() - started,
            reports=[str(p) for p in checked.reports],
        )
    finally:
        store.close()


def fresh_home(base: Path, scenario: str, seed: int) -> Path:
    """An empty folder for one simulation run (an earlier run's state is removed)."""
    import shutil

    home = base / f"{scenario}-{seed}"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    return home


__all__ = ["SimulationResult", "fresh_home", "simulate"]
