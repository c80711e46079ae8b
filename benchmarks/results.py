"""Results table: cross-validated and held-out figures per dataset, task and stage.

For each model (``{dataset}.{task}.{stage}``) it cross-validates, on the training part only, the
untuned baselines (majority, linear, random forest, LightGBM with default parameters) and the
tuned configuration from ``configs/params.yaml``, then fits the tuned model on the whole training
part and scores the stratified 20% hold-out it never saw. Writes ``docs/results.md`` (with
``--write``) and prints the same table.

    RETAIN_DATA_DIR=../shared/data python benchmarks/results.py --write
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

KEYS_CLF = ("roc_auc", "macro_f1", "accuracy", "ece")
KEYS_REG = ("rmse", "r2")


def _fmt(metrics: dict[str, float], keys: tuple[str, ...]) -> str:
    return " / ".join(f"{metrics[k]:.3f}" if k in metrics and np.isfinite(metrics[k]) else "-" for k in keys)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="write docs/results.md")
    parser.add_argument("--dataset", default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from retain.data.spec import list_specs, load_spec
    from retain.evaluation.evaluate import evaluate_model, score_metrics
    from retain.features.build import feature_set
    from retain.settings import get_settings
    from retain.training import params as tuned_params
    from retain.training.fit import build_risk_model, folds, holdout_split, out_of_fold
    from retain.training.train import prepare

    s = get_settings()
    lines: list[str] = []
    started = time.perf_counter()
    for name in [args.dataset] if args.dataset else list_specs():
        spec = load_spec(name)
        if not (s.data_dir / spec.source.file).exists():
            continue
        for task in spec.tasks:
            keys = KEYS_CLF if task.is_classification else KEYS_REG
            lines.append(f"\n### {name} / {task.name} ({' / '.join(keys)})\n")
            lines.append(
                "| stage | majority | linear | forest | LightGBM (default) | tuned (CV) | tuned (held-out) | kind |"
            )
            lines.append("|---|---|---|---|---|---|---|---|")
            data = prepare(spec, task)
            split = holdout_split(data.frame, data.y, task, 0.2, s.seed, spec.time_column)
            X = data.frame.iloc[split.train].reset_index(drop=True)
            y = data.y[split.train]
            X_test = data.frame.iloc[split.test].reset_index(drop=True)
            y_test = data.y[split.test]
            fold_list = folds(y, task, s.cv_folds, s.seed)
            for stage in task.stages:
                tuned = tuned_params.tuned_for(spec.model_name(task.name, stage))
                features = feature_set(spec, task, stage)
                cells: list[str] = []
                for kind in ("majority", "linear", "forest", "lightgbm"):
                    oof = out_of_fold(spec, task, features, kind, {}, X, y, fold_list, s.seed, s.n_jobs)
                    cells.append(_fmt(score_metrics(task, y, oof, None), keys))
                features = feature_set(spec, task, stage, drop=tuned.drop)
                oof = out_of_fold(
                    spec, task, features, tuned.kind, tuned.params, X, y, fold_list, s.seed, s.n_jobs
                )
                model = build_risk_model(
                    spec,
                    task,
                    stage,
                    features,
                    tuned.kind,
                    tuned.params,
                    X,
                    y,
                    oof,
                    s.seed,
                    s.n_jobs,
                    tuned.calibration,
                )
                cv_pred = model.calibrator.transform(oof) if model.calibrator is not None else oof
                cells.append(_fmt(score_metrics(task, y, cv_pred, model.class_weights), keys))
                cells.append(_fmt(evaluate_model(model, task, X_test, y_test), keys))
                row = f"| {stage} | " + " | ".join(cells) + f" | {tuned.kind} |"
                lines.append(row)
                print(f"{spec.model_name(task.name, stage)}: {row}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    body = "\n".join(lines)
    print(body)
    print(f"\n({elapsed:.0f} s)", file=sys.stderr)
    if args.write:
        target = Path(__file__).resolve().parents[1] / "docs" / "results.md"
        header = (Path(__file__).resolve().parent / "results_header.md").read_text(encoding="utf-8")
        target.write_text(header + body + "\n", encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
