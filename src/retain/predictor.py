"""The one object every front end scores with: API, stream worker, batch scoring, dashboard.

A ``Predictor`` holds a registered model with its dataset spec. It accepts a frame or a list of
records (canonical names or the files' source headers), validates them against the spec,
and returns a frame in the stable output schema below.

Output schema (one row per input row, in input order):

=================  =====================================================================
``student_id``     the input's id (derived deterministically when absent)
``dataset``        dataset name
``task``           task name
``stage``          stage the model was trained for
``model_name``     registered name ``{dataset}.{task}.{stage}``
``model_version``  registered version (null for an unregistered model)
``risk_score``     P(adverse outcome): P(Dropout), P(fail), or P(value < pass mark)
``risk_band``      ``low`` / ``medium`` / ``high`` from the spec's stated objective
``prediction``     predicted label (classification) or value (regression)
``proba_<label>``  class probabilities (classification; label slugified)
``interval_low``   lower end of the prediction interval (regression)
``interval_high``  upper end of the prediction interval (regression)
=================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd

from retain.data.load import canonicalize, ensure_student_id
from retain.data.spec import DatasetSpec, load_spec
from retain.data.validate import DataValidationError, validate_frame
from retain.evaluation.metrics import slugify
from retain.fastpath import FastScorer, UnsupportedModelError, compile_model
from retain.settings import Settings
from retain.training.artifact import RiskModel

OUTPUT_COLUMNS: tuple[str, ...] = (
    "student_id",
    "dataset",
    "task",
    "stage",
    "model_name",
    "model_version",
    "risk_score",
    "risk_band",
    "prediction",
)


@dataclass
class Predictor:
    """A loaded model for one dataset, task and stage, with its spec."""

    spec: DatasetSpec
    model: RiskModel
    version: int | None = None

    @classmethod
    def from_registry(
        cls, dataset: str, task: str, stage: str, ref: str = "champion", settings: Settings | None = None
    ) -> Predictor:
        """Load the model registered as ``{dataset}.{task}.{stage}`` by alias or version."""
        from retain.training import registry

        registry.configure(settings)
        spec = load_spec(dataset)
        model, version = registry.load_risk_model(spec.model_name(task, stage), ref)
        return cls(spec=spec, model=model, version=version)

    @property
    def model_name(self) -> str:
        return self.spec.model_name(self.model.task, self.model.stage)

    @cached_property
    def fast_scorer(self) -> FastScorer | None:
        """The compiled scorer (same results without pandas); ``None`` when the model is unsupported."""
        try:
            return compile_model(self.spec, self.model)
        except UnsupportedModelError:
            return None

    @property
    def native(self) -> bool:
        """Whether the model's trees run as compiled native code now."""
        scorer = self.__dict__.get("fast_scorer")  # never compiles the fast scorer just to answer
        return scorer is not None and scorer.native

    def compile_native(
        self, settings: Settings, background: bool = False, threads: int | None = None
    ) -> bool:
        """Run the model's trees as native code (``FastScorer.compile_native``): same predictions,
        several times faster; seconds for a large forest the first time, a fraction of a second
        from ``settings.native_cache_dir`` after that. ``False`` when ``settings.native_trees``
        is off or the model has no LightGBM forest the compiler supports. ``threads`` for a large
        batch default to ``settings.resolved_predict_threads()``."""
        scorer = self.fast_scorer
        if scorer is None or not settings.native_trees:
            return False
        return scorer.compile_native(
            settings.native_cache_dir,
            threads or settings.resolved_predict_threads(),
            background=background,
        )

    @property
    def features(self) -> list[str]:
        return list(self.model.features)

    @property
    def output_columns(self) -> list[str]:
        cols = list(OUTPUT_COLUMNS)
        if self.model.is_classification:
            cols += [f"proba_{slugify(label)}" for label in self.model.labels]
        else:
            cols += ["interval_low", "interval_high"]
        return cols

    def prepare(self, data: pd.DataFrame | Sequence[dict[str, Any]]) -> pd.DataFrame:
        """Canonical, validated, typed features (raises ``DataValidationError`` with a report)."""
        frame = pd.DataFrame(list(data)) if not isinstance(data, pd.DataFrame) else data
        frame = ensure_student_id(canonicalize(frame, self.spec), self.spec)
        typed, report = validate_frame(frame, self.spec, required=self.features)
        if not report.ok:
            raise DataValidationError(report)
        return typed

    def predict(self, data: pd.DataFrame | Sequence[dict[str, Any]]) -> pd.DataFrame:
        """Score students; see the module docstring for the output schema."""
        typed = self.prepare(data)
        scores = self.model.score(typed)
        out = pd.DataFrame(
            {
                "student_id": typed[self.spec.id.column].astype(str).to_numpy(),
                "dataset": self.spec.name,
                "task": self.model.task,
                "stage": self.model.stage,
                "model_name": self.model_name,
                "model_version": self.version,
                "risk_score": scores.risk,
                "risk_band": scores.band,
                "prediction": scores.predicted,
            }
        )
        if scores.proba is not None:
            for i, label in enumerate(self.model.labels):
                out[f"proba_{slugify(label)}"] = scores.proba[:, i]
        if scores.interval is not None:
            out["interval_low"] = scores.interval[:, 0]
            out["interval_high"] = scores.interval[:, 1]
        return out
