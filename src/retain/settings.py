"""One typed settings object, read lazily from the environment (prefix ``RETAIN_``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_SPEC_DIR = _REPO_ROOT / "configs" / "datasets"


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
        default=SecretStr("retain-development-key"),
        description="Key for the HMAC that pseudonymises student ids in logs and artifacts.",
    )
    cv_folds: int = 5
    n_jobs: int = 1
    bootstrap_rounds: int = 200

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

    def spec_dirs(self) -> list[Path]:
        return [self.spec_dir, *self.extra_spec_dirs]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (cached; call ``get_settings.cache_clear()`` in tests)."""
    return Settings()
