"""Synthetic image folders laid out like the engagement data set, and a tiny registered model."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthetic_frames import make_folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "engagement")


@pytest.fixture(scope="module")
def module_image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("frames") / "engagement")
