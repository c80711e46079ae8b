"""What every page receives: the signed-in API client, the user's role, the dataset, settings."""

from __future__ import annotations

from dataclasses import dataclass

from retain.dashboard.client import ApiClient
from retain.data.spec import DatasetSpec
from retain.settings import Settings


@dataclass(frozen=True)
class Context:
    api: ApiClient
    role: str
    spec: DatasetSpec
    settings: Settings

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
