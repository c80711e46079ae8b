"""The serving side of the engagement model: the champion in onnxruntime, refreshed on promotion.

No torch here. One loaded session serves every request (onnxruntime sessions are thread-safe);
the champion's version is checked at most every ``refresh_seconds`` so a promotion is picked up
without a restart.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from retain.settings import Settings
from retain.vision import registry
from retain.vision.images import ImageLimits, decode


@dataclass(frozen=True)
class EngagementPrediction:
    """One image's score."""

    probability: float  # P(positive class), e.g. P(not engaged)
    label: str
    model: str
    version: int

    def to_dict(self) -> dict[str, object]:
        return {
            "probability_not_engaged": round(self.probability, 6),
            "label": self.label,
            "model": self.model,
            "version": self.version,
        }


class EngagementService:
    """Loads the champion lazily and scores uploaded image bytes."""

    def __init__(self, settings: Settings, refresh_seconds: float | None = None, threads: int = 0) -> None:
        self.settings = settings
        self.refresh_seconds = settings.model_refresh_seconds if refresh_seconds is None else refresh_seconds
        self.threads = threads
        self.limits = ImageLimits(settings.vision_max_upload_bytes, settings.vision_max_pixels)
        self._lock = threading.Lock()
        self._loaded: registry.LoadedEngagementModel | None = None
        self._checked = 0.0

    def invalidate(self) -> None:
        with self._lock:
            self._checked = 0.0

    def model(self) -> registry.LoadedEngagementModel:
        """The champion; ``LookupError`` when none is registered."""
        with self._lock:
            now = time.monotonic()
            if self._loaded is None or now - self._checked >= self.refresh_seconds:
                champion = registry.champion_version(self.settings)
                if champion is None:
                    raise LookupError("no engagement model is registered yet: run `retain vision train`")
                if self._loaded is None or self._loaded.version != champion:
                    self._loaded = registry.load(str(champion), self.settings, self.threads)
                self._checked = now
            return self._loaded

    def predict_bytes(self, data: bytes) -> EngagementPrediction:
        """Decode (``ImageError`` on bad input), score, label at 0.5."""
        image = decode(data, self.limits)
        loaded = self.model()
        probability = float(loaded.model.predict_images([image])[0])
        negative, positive = loaded.model.classes
        return EngagementPrediction(
            probability, positive if probability >= 0.5 else negative, registry.MODEL_NAME, loaded.version
        )
