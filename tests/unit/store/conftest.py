"""Fixtures for the store tests: a migrated SQLite store under the test's RETAIN_HOME."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retain.store.repository import Store


@pytest.fixture
def store() -> Iterator[Store]:
    """A fresh store at the default location (``retain.db`` under the isolated RETAIN_HOME)."""
    opened = Store.open()
    yield opened
    opened.close()
