"""One typed settings object, read lazily from the environment (prefix ``RETAIN_``)."""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_SPEC_DIR = _REPO_ROOT / "configs" / "datasets"
_DEV_ID_KEY = "retain-development-key"
#: Values that are never accepted as secrets outside development.
PLACEHOLDER_SECRETS: frozenset[str] = frozenset(
    {_DEV_ID_KEY, "", "changethis", "change-me", "changeme", "secret", "password", "example", "test"}
)
_MIN_SECRET_LENGTH = 16


class InsecureSettingsError(ValueError):
    """Raised when production settings carry placeholder or missing secrets."""


class Settings(BaseSettings):
    """Runtime configuration; every field can be set with ``RETAIN_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RETAIN_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".retain"), description="Root for local state (MLflow, models, reports).")
    data_dir: Path = Field(default=Path("data/raw"), description="Folder that holds the datasets' files.")
    spec_dir: Path = Field(default=_DEFAULT_SPEC_DIR, description="Folder of dataset spec YAML files.")
    extra_spec_dirs: list[Path] = Field(default_factory=list, description="Institutions' own spec folders.")
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI (falls back to MLFLOW_TRACKING_URI)."
    )
    registry_uri: str | None = None
    experiment_prefix: str = "retain"
    seed: int = 42
    id_key: SecretStr = Field(
        default=SecretStr(_DEV_ID_KEY),
        description="Key for the HMAC that pseudonymises student ids in logs and artifacts.",
    )
    environment: Literal["development", "production"] = Field(
        default="development",
        description="``production`` refuses placeholder secrets (id_key, roster_key).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store (default: SQLite file ``retain.db`` under home).",
    )
    roster_key: SecretStr | None = Field(
        default=None,
        description=(
            "Key that encrypts the roster at rest: a Fernet key, or any secret (a Fernet key is derived "
            "from it). In development a key is derived from id_key when unset; production requires it."
        ),
    )
    retention_days: int = Field(
        default=1825, ge=1, description="Rows older than this many days are removed by purge."
    )
    cv_folds: int = 5
    n_jobs: int = 1
    performance_floors: dict[str, float] = Field(
        default_factory=dict,
        description='Alert floors of the primary metric on live outcomes, by "dataset.task" '
        '(e.g. {"dropout.dropout": 0.85}).',
    )
    fairness_max_gap: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Alert when groups' shares of adverse outcomes caught differ more.",
    )
    bootstrap_rounds: int = 200
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    dashboard_port: int = Field(default=8501, description="Port of the Streamlit dashboard.")
    dashboard_api_url: str = Field(
        default="http://127.0.0.1:8000", description="The API the dashboard talks to."
    )
    api_workers: int = Field(default=1, ge=1, description="Uvicorn worker processes of `retain serve`.")
    api_max_batch: int = Field(default=10_000, description="Most students in one predict request.")
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, description="Largest accepted request body.")
    api_cors_origins: list[str] = Field(default_factory=list)
    intervention_types: list[str] = Field(
        default_factory=lambda: [
            "advising meeting",
            "tutoring",
            "study skills workshop",
            "financial aid referral",
            "payment plan",
            "counselling referral",
            "mentoring",
            "course load review",
            "other",
        ],
        description="The institution's intervention catalogue.",
    )
    api_key_cache_seconds: float = Field(
        default=5.0, description="How long a checked API key is trusted before the store is asked again."
    )
    model_refresh_seconds: float = Field(
        default=30.0, description="How often served models check for a new champion."
    )
    native_trees: bool = Field(
        default=True,
        description="Long-running front ends (API, stream worker, batch scoring) run LightGBM forests as "
        "native code compiled in-process (same predictions, several times faster).",
    )
    predict_threads: int = Field(
        default=0,
        ge=0,
        description="Threads one large batch of native-tree predictions may use (0: the CPU count).",
    )
    stream_batch_size: int = Field(default=500, ge=1, description="Most events in one stream micro-batch.")
    stream_max_wait_ms: int = Field(
        default=50, ge=1, description="Longest a stream micro-batch waits to fill once it has an event."
    )
    stream_queue_size: int = Field(
        default=4, ge=1, description="Micro-batches read ahead of processing (the reader blocks beyond)."
    )
    stream_claim_idle_ms: int = Field(
        default=30_000,
        ge=1,
        description="Pending stream events idle this long are claimed from their consumer.",
    )
    stream_max_deliveries: int = Field(
        default=5, ge=1, description="Stream events delivered more often than this are dead-lettered."
    )

    retrain_holdout: float = Field(
        default=0.4,
        gt=0,
        lt=1,
        description="Share of the newly labelled students a retrain holds out to judge both models.",
    )
    retrain_min_outcomes: int = Field(
        default=100, ge=10, description="Fewest newly labelled students a retrain accepts."
    )
    retrain_bootstrap_rounds: int = Field(
        default=500, ge=50, description="Rounds of the retrain gate's paired bootstrap."
    )
    flow_schedules: dict[str, str] = Field(
        default_factory=lambda: {"monitor": "0 6 * * *", "retrain": "0 3 * * 1"},
        description="Cron schedules of the flows that `retain flows serve` registers.",
    )
    batch_chunk_rows: int = Field(
        default=100_000,
        ge=1,
        description="Rows a batch scoring chunk holds (`retain predict`/`score`): the memory bound.",
    )
    dask_scheduler: str | None = Field(
        default=None,
        description="Dask scheduler address for `--backend dask` (default: a LocalCluster on this machine).",
    )
    dask_workers: int = Field(
        default=2, ge=1, description="Worker processes of the LocalCluster `--backend dask` starts."
    )
    vision_data_dir: Path | None = Field(
        default=None,
        description="Folder of engagement images in class folders (default: ``engagement`` under data_dir).",
    )
    vision_max_upload_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest image upload the engagement model accepts."
    )
    vision_max_pixels: int = Field(
        default=40_000_000, ge=64 * 64, description="Most pixels (width x height) an uploaded image may have."
    )

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        """Outside development, refuse the development id key and a missing or weak roster key."""
        if self.environment == "development":
            return self
        problems: list[str] = []
        id_key = self.id_key.get_secret_value()
        if id_key.strip().lower() in PLACEHOLDER_SECRETS or len(id_key) < _MIN_SECRET_LENGTH:
            problems.append(f"RETAIN_ID_KEY is a placeholder or shorter than {_MIN_SECRET_LENGTH} characters")
        if self.roster_key is None:
            problems.append("RETAIN_ROSTER_KEY is not set")
        else:
            roster = self.roster_key.get_secret_value()
            if roster.strip().lower() in PLACEHOLDER_SECRETS or len(roster) < _MIN_SECRET_LENGTH:
                problems.append(
                    f"RETAIN_ROSTER_KEY is a placeholder or shorter than {_MIN_SECRET_LENGTH} characters"
                )
            elif roster == id_key:
                problems.append("RETAIN_ROSTER_KEY must differ from RETAIN_ID_KEY")
        if problems:
            raise InsecureSettingsError(
                f"refusing insecure settings for environment={self.environment!r}: "
                + "; ".join(problems)
                + ". Generate secrets with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return self

    def resolved_database_url(self) -> str:
        """The store's URL: ``RETAIN_DATABASE_URL``, else SQLite ``retain.db`` under home."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'retain.db').resolve()}"

    def fernet_key(self) -> bytes:
        """The roster encryption key as a Fernet key (urlsafe base64 of 32 bytes).

        A configured ``roster_key`` that already is a Fernet key is used as is; any other secret
        is stretched with SHA-256. Without one (development only, the validator refuses it in
        production) a key is derived deterministically from ``id_key``.
        """
        if self.roster_key is not None:
            raw = self.roster_key.get_secret_value().strip()
            try:
                if len(base64.urlsafe_b64decode(raw.encode("ascii"))) == 32 and len(raw) == 44:
                    return raw.encode("ascii")
            except (ValueError, UnicodeEncodeError):
                pass
            seed = b"retain-roster:" + raw.encode("utf-8")
        else:
            seed = b"retain-roster-development:" + self.id_key.get_secret_value().encode("utf-8")
        return base64.urlsafe_b64encode(hashlib.sha256(seed).digest())

    @property
    def native_cache_dir(self) -> Path:
        """Machine code of compiled forests, reused across processes and restarts."""
        return self.home / "cache" / "native-trees"

    def resolved_predict_threads(self) -> int:
        return self.predict_threads or os.cpu_count() or 1

    def api_predict_threads(self) -> int:
        """Threads for one large batch in an API worker: the CPUs shared among the workers."""
        return self.predict_threads or max(1, (os.cpu_count() or 1) // max(1, self.api_workers))

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    def resolved_tracking_uri(self) -> str:
        """The tracking URI: explicit setting, then ``MLFLOW_TRACKING_URI``, then SQLite under home."""
        if self.tracking_uri:
            return self.tracking_uri
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        return f"sqlite:///{(self.mlflow_dir / 'mlflow.db').resolve()}"

    def artifact_location(self) -> str:
        return (self.mlflow_dir / "artifacts").resolve().as_uri()

    def resolved_vision_data_dir(self) -> Path:
        """The engagement image folder: ``vision_data_dir``, else ``engagement`` under data_dir."""
        return self.vision_data_dir or self.data_dir / "engagement"

    def spec_dirs(self) -> list[Path]:
        return [self.spec_dir, *self.extra_spec_dirs]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (cached; call ``get_settings.cache_clear()`` in tests)."""
    return Settings()
