"""The report pages through the API: each at its route, the shared JavaScript once at
/assets/... with a year's caching, 304 on a repeat, and nothing else of the data folder."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from amhs_assets.html import ASSETS_DIR, PLOTLY_JS, plotly_script, write_page
from amhs_assets.serve.app import create_app
from amhs_assets.serve.config import ServeSettings
from amhs_assets.serve.reports import ASSET_CACHE, PAGES


@pytest.fixture
def reports(tmp_path):
    """A data folder's reports: the three pages on the shared plotly.js."""
    folder = tmp_path / "reports"
    for route, (file, _) in PAGES.items():
        write_page(folder / file, f"<html><head>{plotly_script()}</head><body>{route}</body></html>")
    (folder / "performance.json").write_text("{}")
    return folder


@pytest.fixture
def client(tmp_path):
    """The API over tmp_path (no lifespan: no model is loaded, none is needed)."""
    return TestClient(create_app(ServeSettings.from_env({"AMHS_DATA_DIR": str(tmp_path)})))


def test_each_page_is_served_at_its_route_and_revalidated(reports, client):
    for route in PAGES:
        answer = client.get(f"/{route}")
        assert answer.status_code == 200 and f"<body>{route}</body>" in answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["cache-control"] == "no-cache"
        again = client.get(f"/{route}", headers={"If-None-Match": answer.headers["etag"]})
        assert again.status_code == 304 and again.content == b""


def test_plotly_js_is_served_once_for_every_page_with_a_year_of_caching(reports, client):
    # every page's relative assets/... resolves to this one URL from /dashboard, /evaluation, /drift
    answer = client.get(f"/{ASSETS_DIR}/{PLOTLY_JS}")
    assert answer.status_code == 200 and answer.content == (
        reports / ASSETS_DIR / PLOTLY_JS).read_bytes()
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["cache-control"] == ASSET_CACHE
    again = client.get(f"/{ASSETS_DIR}/{PLOTLY_JS}", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("name", ["../performance.json", "..%2Fperformance.json", ".hidden.js",
                                  "plotly-0.0.0.min.js", "performance.json"])
def test_nothing_but_the_shared_files_is_served_from_assets(reports, client, name):
    answer = client.get(f"/{ASSETS_DIR}/{name}")
    assert answer.status_code == 404


def test_a_missing_page_is_a_404_naming_the_asset_that_writes_it(client):
    for route, (file, asset) in PAGES.items():
        answer = client.get(f"/{route}")
        assert answer.status_code == 404
        assert f"no {route} page" in answer.json()["detail"] and asset in answer.json()["detail"]
