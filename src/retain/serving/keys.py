"""The key store behind the API's authentication."""

from __future__ import annotations

from retain.serving.security import Authenticator
from retain.settings import Settings
from retain.store.repository import Store


def store_authenticator(settings: Settings) -> Authenticator:
    """Authenticate against hashed keys in the store (``retain keys create``)."""
    return Store.from_settings(settings)
