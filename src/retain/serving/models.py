"""Loaded champions, refreshed without a restart when the ``champion`` alias moves.

The first request for a model loads it; afterwards, once ``refresh_seconds`` have passed, a
request gets the loaded model at once while one background thread asks the registry whether the
alias moved and swaps in the new champion (the registry's latency never lands on a request).
``invalidate`` (after a promotion or rollback through the API) makes the next request load anew.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from retain.data.spec import DatasetSpec
from retain.predictor import Predictor
from retain.settings import Settings, get_settings
from retain.training import registry

logger = logging.getLogger(__name__)


@dataclass
class _Entry:
    predictor: Predictor
    checked_at: float


def _freeze_heap() -> None:
    """Move everything alive now (libraries, the loaded model) out of the garbage collector's view.

    A full collection walks every tracked object; with MLflow, scikit-learn and a model loaded
    that is millions of objects and a pause of a few hundred milliseconds on some request. Frozen
    objects are never walked again; only what requests allocate is.
    """
    gc.collect()
    gc.freeze()


class ModelCache:
    """Predictors by registered name; each re-checks its alias at most every ``refresh_seconds``."""

    def __init__(
        self,
        refresh_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        settings: Settings | None = None,
        background: bool = True,
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self.settings = settings
        self.background = background
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def get(self, spec: DatasetSpec, task: str, stage: str) -> Predictor:
        """The champion of ``{dataset}.{task}.{stage}`` (raises LookupError when there is none)."""
        name = spec.model_name(task, stage)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and now - entry.checked_at < self.refresh_seconds:
                return entry.predictor
            if entry is not None and self.background:  # stale: answer now, re-check behind
                if name not in self._refreshing:
                    self._refreshing.add(name)
                    threading.Thread(
                        target=self._refresh,
                        args=(spec, task, stage),
                        name="retain-model-refresh",
                        daemon=True,
                    ).start()
                return entry.predictor
        return self._load(spec, task, stage, now)

    def _refresh(self, spec: DatasetSpec, task: str, stage: str) -> None:
        name = spec.model_name(task, stage)
        try:
            self._load(spec, task, stage, self._clock())
        except Exception as exc:  # the registry is down or the alias is gone: keep serving
            logger.warning("could not refresh %s: %s", name, exc)
            with self._lock:
                entry = self._entries.get(name)
                if entry is not None:
                    entry.checked_at = self._clock()  # try again after the next period
        finally:
            with self._lock:
                self._refreshing.discard(name)

    def _load(self, spec: DatasetSpec, task: str, stage: str, now: float) -> Predictor:
        name = spec.model_name(task, stage)
        registry.configure(self.settings)
        current = registry.champion_version(name)
        if current is None:
            raise LookupError(
                f"no champion model {name!r}; train it with `retain train --dataset {spec.name}`"
            )
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry.predictor.version == current:
                entry.checked_at = now
                return entry.predictor
        predictor = Predictor.from_registry(spec.name, task, stage, settings=self.settings)
        with self._lock:
            self._entries[name] = _Entry(predictor, now)
        _freeze_heap()
        # LightGBM answers until the native code is ready (same predictions); never on a request
        settings = self.settings or get_settings()
        predictor.compile_native(settings, background=True, threads=settings.api_predict_threads())
        return predictor

    def invalidate(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._entries.clear()
            else:
                self._entries.pop(name, None)

    def loaded(self) -> dict[str, int | None]:
        with self._lock:
            return {name: entry.predictor.version for name, entry in self._entries.items()}

    def native(self) -> dict[str, bool]:
        """Per loaded model: whether its trees run as native code yet (``Predictor.compile_native``)."""
        with self._lock:
            entries = list(self._entries.items())
        return {name: bool(getattr(entry.predictor, "native", False)) for name, entry in entries}
