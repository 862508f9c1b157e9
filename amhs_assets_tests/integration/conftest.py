"""Fixtures of the integration tests: a real headless browser for the report pages."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Headless chromium of the system (skipped without it: .ci/run installs it)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium (.ci/run does) for browser tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()
