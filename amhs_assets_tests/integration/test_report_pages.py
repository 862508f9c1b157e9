"""The three report pages opened from disk (file://) in a real headless browser: drawn without a
console error, each a few hundred KB on the reports folder's one shared plotly.js (drift.html on
Evidently's shared bundle), and drift.html on the fab's clock.

The pages come from the cheapest inputs that fill them (the unit tests' synthetic evaluation, a
simulated scored day, a simulated regime change), not from a training run."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pandas as pd
import pytest

from amhs_assets.dashboard.page import DashboardInputs, render_dashboard
from amhs_assets.evaluation.report import render_evaluation_html
from amhs_assets.html import ASSETS_DIR, PLOTLY_JS, write_page
from amhs_assets.monitoring.drift import detect_drift
from amhs_assets.monitoring.drift_page import EVIDENTLY_FONT, EVIDENTLY_JS, write_drift_html
from amhs_assets.monitoring.performance import (
    PerformanceConfig,
    degradation,
    levels_frame,
    performance_document,
    period_metrics,
    with_levels,
)
from amhs_assets_tests.evaluation.test_report import (
    make_evaluation,
    make_importances,
    make_predictions,
)
from amhs_assets_tests.monitoring.test_drift import DRIFT_DAY, cleaned, windows
from amhs_assets_tests.support import serving, simulated_scored

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
TZ = "Asia/Taipei"  # UTC+8, no daylight saving: 00:00Z is 08:00 on the page
MAX_PAGE_BYTES = 1_000_000
VIEWPORT = {"width": 1366, "height": 768}  # a fab laptop


def dashboard_inputs(drift: dict) -> DashboardInputs:
    """Two lines x 6 scored hours, their performance document and a drift report."""
    scored = simulated_scored(0.0)
    levels = levels_frame({"3": {h: {"mae_avg": 10.0, "accuracy": 0.9} for h in (10, 15, 25)}})
    periods = with_levels(period_metrics(scored, TZ), levels)
    model = {"name": "amhs-predictor", "version": "3", "version_label": "3", "alias": "champion",
             "kind": "xgb", "selected_by": "registry alias 'champion'"}
    verdict = degradation(scored, levels, PerformanceConfig(min_rows=1))
    doc = performance_document(model=model, verdict=verdict, levels=levels, periods=periods,
                               scored=scored, sources={}, tz=TZ)
    history = pd.DataFrame({"measured_at": pd.date_range("2026-03-01", periods=3, freq="h", tz="UTC"),
                            "share_drifted": [0.05, 0.1, drift["share_drifted"]],
                            "drift_detected": [False, False, drift["drift_detected"]]})
    return DashboardInputs(doc, scored, periods, drift=drift, drift_history=history, timezone=TZ)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> tuple[Path, dict, dict[str, int]]:
    """A reports folder with the three pages; the drift document; charts per page."""
    folder = tmp_path_factory.mktemp("fab") / "data" / "reports"  # `serving`'s layout
    write_page(folder / "evaluation.html", render_evaluation_html(
        make_evaluation(), make_predictions(), make_importances(), timezone=TZ))
    result = detect_drift(*windows(cleaned(1, DRIFT_DAY + 1, drift_day=DRIFT_DAY), DRIFT_DAY))
    write_drift_html(result, folder / "drift.html", TZ)
    page, charts = render_dashboard(dashboard_inputs(result.document))
    write_page(folder / "dashboard.html", page)
    plots = {"dashboard.html": charts,
             "evaluation.html": page_plots((folder / "evaluation.html").read_text())}
    return folder, result.document, plots


def page_plots(page: str) -> int:
    """The plotly charts a page draws."""
    return page.count("Plotly.newPlot(")


def open_from_disk(browser, path: Path, plots: int) -> dict:
    """Open a page as file://, wait until its charts are drawn; what a reader sees and every
    console error or failed request."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        return open_page(context, path.as_uri(), plots)
    finally:
        context.close()


def open_page(context, url: str, plots: int) -> dict:
    """Open a URL in a new page of a browser context, wait until its charts are drawn."""
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed {r.url}"))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(url, wait_until="load", timeout=60_000)
    page.wait_for_function("n => document.querySelectorAll('.js-plotly-plot .main-svg').length"
                           " >= n", arg=plots, timeout=60_000)
    seen = page.evaluate("""() => ({
        drawn: Array.from(document.querySelectorAll('.js-plotly-plot')).filter(
            p => p.querySelector('.main-svg') && (p._fullData || []).length > 0
                 && p.getBoundingClientRect().height > 100).length,
        text: document.body.innerText,
        verdict: (document.querySelector('#verdict') || {}).innerText || null,
        top: document.querySelectorAll('#top-columns tr').length,
        plotly: typeof window.Plotly})""")
    seen["icons"] = page.evaluate("""async () => (await document.fonts.load('24px "Material Icons"'))
        .map(f => f.status).join() || 'none'""")
    page.close()
    return {**seen, "errors": errors}


def test_every_page_is_a_few_hundred_kb_on_the_shared_javascript(reports):
    folder, _, _ = reports
    shared = sorted(p.name for p in (folder / ASSETS_DIR).iterdir())
    assert shared == sorted([PLOTLY_JS, EVIDENTLY_JS, EVIDENTLY_FONT])  # one plotly.js for all
    for name in ("dashboard.html", "evaluation.html", "drift.html"):
        page = (folder / name).read_text(encoding="utf-8")
        assert len(page.encode()) < MAX_PAGE_BYTES, f"{name}: {len(page.encode()):,} bytes"
        sources = re.findall(r'<script[^>]*\bsrc="([^"]*)"', page)
        expected = f"{ASSETS_DIR}/{EVIDENTLY_JS if name == 'drift.html' else PLOTLY_JS}"
        assert sources == [expected], name  # relative: opens from disk and through the API
        assert "* plotly.js v" not in page and "base64," not in page  # no bundle, no font inline


@pytest.mark.parametrize("name", ["dashboard.html", "evaluation.html"])
def test_the_plotly_pages_draw_every_chart_from_disk_without_errors(reports, browser, name):
    folder, _, plots = reports
    seen = open_from_disk(browser, folder / name, plots[name])
    assert seen["errors"] == []
    assert seen["plotly"] == "object" and seen["drawn"] == plots[name] >= 4
    assert f"times in {TZ}" in seen["text"]


def test_the_drift_page_leads_with_the_verdict_then_evidently_draws_its_detail(reports, browser):
    folder, document, _ = reports
    seen = open_from_disk(browser, folder / "drift.html", 1)
    assert seen["errors"] == []
    assert document["drift_detected"] and seen["verdict"].startswith("✘ DRIFT DETECTED")
    share = f"share {document['share_drifted']:.2f} ≥ threshold {document['drift_share']:.2f}"
    assert share in seen["verdict"]
    assert seen["top"] == 1 + 10 and seen["drawn"] >= 1  # header + 10 columns; Evidently's plots
    assert seen["icons"] == "loaded"  # Evidently's font, from assets/ beside the page
    verdict_at, detail_at = seen["text"].index("DRIFT DETECTED"), seen["text"].index("Drift in column")
    assert verdict_at < seen["text"].index("Columns that moved most") < detail_at


def test_the_drift_page_shows_its_windows_on_the_fab_clock(reports):
    folder, document, _ = reports
    page = (folder / "drift.html").read_text(encoding="utf-8")
    windows_table = page.split('<table id="windows">', 1)[1].split("</table>", 1)[0]
    assert f"from → to ({TZ})" in windows_table and f"Times in <b>{TZ}</b>" in page
    # the current day 2026-02-16 00:00-23:59 UTC is 08:00 to 07:59 the next day in Taipei
    assert document["current"]["start"].startswith("2026-02-16T00:00")
    assert "2026-02-16 08:00 → 2026-02-17 07:59" in windows_table
    assert "2026-02-16T00:00" not in page.split('<div class="amhs">', 1)[1].split("</div>", 1)[0]


def test_amhs_serve_serves_every_page_and_plotly_js_once_for_all(reports, browser):
    folder, _, plots = reports
    root = folder.parent.parent
    with serving(root, f"sqlite:///{root}/mlflow.db", wait_model=False) as server:
        context = browser.new_context(viewport=VIEWPORT)  # one browser cache for the pages
        asked: set[str] = set()
        context.on("request", lambda r: asked.add(r.url) if f"/{ASSETS_DIR}/" in r.url else None)
        seen = {route: open_page(context, f"{server.url}/{route}", plots.get(f"{route}.html", 1))
                for route in ("dashboard", "evaluation", "drift")}
        context.close()
        metrics = httpx.get(f"{server.url}/metrics").text
    for route, page in seen.items():
        assert page["errors"] == [] and page["drawn"] >= 1, route
    assert seen["dashboard"]["drawn"] == plots["dashboard.html"]
    assert seen["drift"]["verdict"].startswith("✘ DRIFT DETECTED")
    # each shared file fetched once: the second page took plotly.js from the browser's cache
    assert f"{server.url}/{ASSETS_DIR}/{PLOTLY_JS}" in asked
    fetched = re.findall(r'amhs_api_requests_total\{endpoint="/assets/\{name\}",method="GET",'
                         r'status="(\d+)"\} (\S+)', metrics)
    assert fetched == [("200", f"{len(asked)}.0")], (fetched, asked)
