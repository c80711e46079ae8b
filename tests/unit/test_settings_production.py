"""Production settings refuse placeholder secrets; development keeps working defaults."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from retain.settings import Settings, get_settings

STRONG_ID = "0123456789abcdef-institution-id-key"
STRONG_ROSTER = Fernet.generate_key().decode()


def test_development_defaults_are_accepted() -> None:
    s = Settings()
    assert s.environment == "development"
    assert s.retention_days == 1825
    assert s.database_url is None and s.resolved_database_url().startswith("sqlite:///")
    Fernet(s.fernet_key())  # a dev key is derived
    assert s.fernet_key() == Settings().fernet_key()


def test_production_refuses_default_id_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_ENVIRONMENT", "production")
    monkeypatch.setenv("RETAIN_ROSTER_KEY", STRONG_ROSTER)
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match="RETAIN_ID_KEY"):
        get_settings()


def test_production_refuses_missing_roster_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_ENVIRONMENT", "production")
    monkeypatch.setenv("RETAIN_ID_KEY", STRONG_ID)
    monkeypatch.delenv("RETAIN_ROSTER_KEY", raising=False)
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match="RETAIN_ROSTER_KEY is not set"):
        get_settings()


@pytest.mark.parametrize("weak", ["changethis", "short", "retain-development-key"])
def test_production_refuses_placeholder_values(weak: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="production", id_key=STRONG_ID, roster_key=weak)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="production", id_key=weak, roster_key=STRONG_ROSTER)  # type: ignore[arg-type]


def test_production_refuses_equal_keys() -> None:
    with pytest.raises(ValidationError, match="differ"):
        Settings(environment="production", id_key=STRONG_ID, roster_key=STRONG_ID)  # type: ignore[arg-type]


def test_production_with_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_ENVIRONMENT", "production")
    monkeypatch.setenv("RETAIN_ID_KEY", STRONG_ID)
    monkeypatch.setenv("RETAIN_ROSTER_KEY", STRONG_ROSTER)
    monkeypatch.setenv("RETAIN_DATABASE_URL", "postgresql+psycopg://u@db/retain")
    get_settings.cache_clear()
    s = get_settings()
    assert s.fernet_key() == STRONG_ROSTER.encode()
    assert s.resolved_database_url() == "postgresql+psycopg://u@db/retain"


def test_passphrase_roster_key_is_stretched() -> None:
    s = Settings(roster_key="a long institutional passphrase")  # type: ignore[arg-type]
    Fernet(s.fernet_key())
    assert s.fernet_key() != Settings().fernet_key()
