"""Shared fixtures: temporary data folders (helpers live in amhs_assets_tests.support)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty AMHS_DATA_DIR with raw/ created."""
    (tmp_path / "raw").mkdir()
    return tmp_path
