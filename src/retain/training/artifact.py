"""The trained artifact: a fitted pipeline plus everything needed to turn its output into risk.

``RiskModel`` is what gets logged to MLflow and what the predictor scores with. It is pure: a
frame of validated feature columns in, arrays out; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from retain.evaluation.calibration import ProbabilityCalibrator

BANDS: tuple[str, str, str] = ("low", "medium", "high")


@dataclass(frozen=True)
class Scores:
    """Raw model output for n students.

    ``proba`` (n, k) for classification, ``value`` and ``interval`` (n, 2) for regression;
    ``risk`` (n,) is always P(adverse outcome); ``band`` (n,) is low/medium/high.
    """

    risk: np.ndarray
    band: np.ndarray
    predicted: np.ndarray
    proba: np.ndarray | None = None
    value: np.ndarray | None = None
    interval: np.ndarray | None = None


@dataclass
class RiskModel:
    """A fitted model for one dataset, task and stage, with its decision rules."""

    dataset: str
    task: str
    stage: str
    task_type: str
    kind: str
    features: list[str]
    pipeline: Pipeline
    labels: list[str] = field(default_factory=list)
    adverse_index: int = 1
    calibrator: ProbabilityCalibrator | None = None
    class_weights: list[float] | None = None
    band_cutoffs: tuple[float, float] = (0.3, 0.6)
    residual_quantiles: list[float] | None = None
    pass_mark: float | None = None
    interval_level: float = 0.8
    params: dict[str, object] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)
    #: Drift reference: a sample of the training rows' model inputs (no identifiers).
    reference: pd.DataFrame | None = None
    #: Drift reference of the outputs: ``risk_score`` and ``risk_band`` of the held-out rows.
    reference_scores: pd.DataFrame | None = None

    @property
    def is_classification(self) -> bool:
        return self.task_type == "classification"

    def _inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.reindex(columns=self.features)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated class probabilities, shape (n, k)."""
        raw = np.asarray(self.pipeline.predict_proba(self._inputs(frame)), dtype=float)
        return self.calibrator.transform(raw) if self.calibrator is not None else raw

    def predict_value(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline.predict(self._inputs(frame)), dtype=float)

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Predicted class index: argmax of probabilities reweighted for the stated objective."""
        if not self.class_weights:  # weights of 1.0 change nothing
            return np.argmax(proba, axis=1)
        return np.argmax(proba * np.asarray(self.class_weights), axis=1)

    def band_of(self, risk: np.ndarray) -> np.ndarray:
        medium, high = self.band_cutoffs
        return np.where(risk >= high, BANDS[2], np.where(risk >= medium, BANDS[1], BANDS[0]))

    def risk_from_value(self, value: np.ndarray) -> np.ndarray:
        """P(true value < pass mark) from the out-of-fold residual distribution."""
        if self.pass_mark is None or not self.residual_quantiles:
            return np.full(value.shape, np.nan)
        quantiles = np.asarray(self.residual_quantiles)
        levels = np.linspace(0.0, 1.0, len(quantiles))
        return np.interp(self.pass_mark - value, quantiles, levels, left=0.0, right=1.0)

    def interval_of(self, value: np.ndarray) -> np.ndarray:
        quantiles = np.asarray(self.residual_quantiles or [0.0, 0.0])
        levels = np.linspace(0.0, 1.0, len(quantiles))
        tail = (1.0 - self.interval_level) / 2
        low = np.interp(tail, levels, quantiles)
        high = np.interp(1 - tail, levels, quantiles)
        return np.column_stack([value + low, value + high])

    def score(self, frame: pd.DataFrame) -> Scores:
        """Score a frame of validated feature columns (canonical names)."""
        if self.is_classification:
            proba = self.predict_proba(frame)
            risk = proba[:, self.adverse_index]
            predicted = np.asarray(self.labels, dtype=object)[self.decide(proba)]
            return Scores(risk=risk, band=self.band_of(risk), predicted=predicted, proba=proba)
        value = self.predict_value(frame)
        risk = self.risk_from_value(value)
        return Scores(
            risk=risk, band=self.band_of(risk), predicted=value, value=value, interval=self.interval_of(value)
        )
