"""The monitoring assets on a small simulated fab, through `amhs run` (run_pipeline): the
performance monitor and its check against the champion, and the dashboard opened in a real
headless browser (Playwright driving the system chromium), from disk and through `amhs serve`."""

from __future__ import annotations

import json
import os
import shutil
import types
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from amhs_assets.contract import STATES
from amhs_assets.definitions import build_definitions
from amhs_assets.defs.resources import AmhsSettings, MlflowTracking
from amhs_assets.documents import PerformanceDocument
from amhs_assets.monitoring.performance import HISTORY_KEY
from amhs_assets.runner import run_pipeline
from amhs_assets.serve.prediction_log import PredictionLog
from amhs_assets.simulate.lines import simulate_lines, write_frame_by_day
from amhs_assets_tests.support import serving

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
SMALL = {"xgb": {"num_boost_round": 15}, "ensemble": {"hgb_max_iter": 10, "mlp_epochs": 2}}
PAGES_URL = "http://amhs.fab.example:8100/"  # where people reach the API
DAYS = 14  # the drift report calibrates on at least 7 daily windows of the training split
MONITORING = dg.AssetSelection.assets("performance_monitor", "monitoring_dashboard")
CHARTS = 6  # live error, predicted vs actual, drift share, drifted columns, versions, quarantine


def write_bad_rows(raw: Path, frame: pd.DataFrame) -> None:
    """A file of five rows that break the contract (more active vehicles than vehicles)."""
    bad = frame.head(5).assign(vehicles_active=frame["vehicles_total"].head(5) + 1)
    write_frame_by_day(bad.assign(line_id="BAD"), raw / "bad")


@pytest.fixture(scope="module")
def fab(tmp_path_factory):
    """2 lines x 14 simulated days (and a few bad rows) through `amhs run` in a test instance."""
    root = tmp_path_factory.mktemp("fab")
    data = root / "data"
    frames = simulate_lines(["A", "B"], pd.Timestamp("2026-02-02", tz="UTC"), DAYS, 21)
    for frame in frames.values():
        write_frame_by_day(frame, data / "raw")
    write_bad_rows(data / "raw", frames["A"])
    settings = AmhsSettings(data_dir=str(data), pages_url=PAGES_URL, **SMALL)
    tracking = MlflowTracking.for_data_dir(data)
    defs = build_definitions(settings, tracking)
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        assert run_pipeline(lines.append, defs, instance), "\n".join(lines)
        yield types.SimpleNamespace(root=root, data=data, defs=defs, instance=instance,
                                    tracking=tracking, settings=settings, echo=lines)


def latest(instance: dg.DagsterInstance, key: str) -> dict:
    """The metadata of an asset's latest materialization, as plain values."""
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def check_result(instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("performance_monitor"), "performance_within_evaluated_level"),
        limit=1)
    return records[0].event.dagster_event.event_specific_data


def test_amhs_run_watches_the_champion_and_finds_it_within_its_evaluated_level(fab):
    reports = fab.data / "reports"
    document = json.loads((reports / "performance.json").read_text())
    PerformanceDocument.model_validate(document)
    assert document["model"]["version"] == "1" and document["model"]["alias"] == "champion"
    assert document["sources"]["evaluated_levels"]["1"].startswith("test metrics of MLflow run")
    assert set(document["live"]) == {"10", "15", "25"} and document["judged"]
    assert {r["line_id"] for r in document["latest"]} == {"A", "B"}
    meta = latest(fab.instance, "performance_monitor")
    assert meta["degraded"] is False and isinstance(meta["degradation_reason"], str)
    for h in (10, 15, 25):
        assert meta[f"live_mae_avg_h{h}"] > 0 and meta[f"evaluated_mae_avg_h{h}"] > 0
        assert meta[f"mae_ratio_h{h}"] == pytest.approx(
            meta[f"live_mae_avg_h{h}"] / meta[f"evaluated_mae_avg_h{h}"])
        assert isinstance(meta[f"critical_recall_h{h}"], float) and meta[f"rows_h{h}"] >= 60
    assert check_result(fab.instance).passed
    history = pd.read_parquet(reports / "performance_history.parquet")
    assert set(history["model_version"]) == {"1"} and set(history["period"]) == {"hour", "day"}
    dashboard = latest(fab.instance, "monitoring_dashboard")
    assert dashboard["charts"] == CHARTS and dashboard["champion_version"] == "1"
    for key, route in (("monitoring_dashboard", "dashboard"), ("evaluation_report", "evaluation"),
                       ("drift_report", "drift")):  # the Dagster UI links each page
        assert latest(fab.instance, key)["url"] == f"http://amhs.fab.example:8100/{route}"
    page = (reports / "dashboard.html").read_text()
    assert "Champion: <b>v1</b> · watching <b>v1</b>" in page
    # each line's newest forecast explained beside its light; the champion's alarms live
    assert page.count('<small class="why"') == 2 * 3  # lines A and B x 3 horizons
    assert 'id="alarms"' in page and "median lead time (min)" in page
    for h in ("10", "15", "25"):
        assert "false_alarms_per_shift" in document["window_metrics"][h]
    stamp = {k: fab.instance.get_latest_materialization_event(dg.AssetKey(k)).timestamp
             for k in ("champion_model", "performance_monitor", "monitoring_dashboard")}
    assert stamp["champion_model"] < stamp["performance_monitor"] < stamp["monitoring_dashboard"]


def test_amhs_run_launches_named_jobs_and_names_its_mlflow_runs(fab):
    runs = sorted(fab.instance.get_runs(), key=lambda r: fab.instance.get_run_stats(
        r.run_id).start_time or 0)
    assert [r.job_name for r in runs] == ["ingest_job", "training_job", "promotion_job",
                                          "monitoring_job"]
    days = sorted(fab.instance.get_materialized_partitions(dg.AssetKey("cleaned_amhs_logs")))
    assert (runs[0].tags["dagster/asset_partition_range_start"],
            runs[0].tags["dagster/asset_partition_range_end"]) == (days[0], days[-1])
    assert runs[1].tags["dagster/asset_partition_range_start"] == "10"
    names = {r.info.run_name for r in fab.tracking.client().search_runs(
        [e.experiment_id for e in fab.tracking.client().search_experiments()])}
    assert f"training_job h10-25 manual {runs[1].run_id[:8]}" in names, names


def degraded_log(fab, offset: float) -> int:
    """Log, as the API would, champion forecasts of the last day shifted by `offset` seconds."""
    scored = fab.defs.load_asset_value("performance_monitor", instance=fab.instance).scored
    day = scored[scored["timestamp"] > scored["timestamp"].max() - pd.Timedelta(hours=24)]
    log = PredictionLog(fab.data / "predictions", flush_s=60)
    log.start()
    model = {"name": "amhs-predictor", "version": "1", "alias": "champion"}
    answers = []
    for (line, as_of), rows in day.groupby(["line_id", "timestamp"]):  # one answer per minute
        answers.append({"line_id": line, "as_of": as_of.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "horizons": {str(r.horizon): {
                            "min": r.pred_min + offset, "max": r.pred_max + offset,
                            "avg": r.pred_avg + offset, "state": STATES[r.pred_state],
                            "proba": {s: getattr(r, f"proba_{s}") for s in STATES}}
                            for r in rows.itertuples()}})
    log.append(model, answers)
    log.close()
    return len(answers)


def test_a_shifted_model_in_the_api_log_fails_the_check_once_per_rerun_without_duplicates(fab):
    logged = degraded_log(fab, offset=300.0)
    result = dg.materialize(fab.defs.assets, selection=MONITORING, instance=fab.instance,
                            resources=fab.defs.resources, raise_on_error=False)
    assert result.success  # a failed check does not fail the run
    meta = latest(fab.instance, "performance_monitor")
    assert meta["degraded"] is True and "h10: live avg MAE" in meta["degradation_reason"]
    assert meta["log_predictions"] == 3 * logged and meta["mae_ratio_h10"] > 5
    evaluation = check_result(fab.instance)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    reports = fab.data / "reports"
    document = json.loads((reports / "performance.json").read_text())
    assert document["degraded"] and {r["source"] for r in document["latest"]} == {"api"}
    history = pd.read_parquet(reports / "performance_history.parquet")
    assert not history.duplicated(list(HISTORY_KEY)).any() and "api" in set(history["source"])
    again = dg.materialize(fab.defs.assets, selection=["performance_monitor"],
                           instance=fab.instance, resources=fab.defs.resources)
    assert again.success
    assert len(pd.read_parquet(reports / "performance_history.parquet")) == len(history)
    page = (reports / "dashboard.html").read_text()
    assert "✘ DEGRADED" in page and "API log, v1" in page


# --- the page in a real browser (the browser fixture: conftest.py) -----------------------------
def open_page(browser, url: str, screenshot: Path) -> dict:
    """Load a page at 1366x768, wait for plotly, screenshot it; what a reader would see."""
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(url, wait_until="load", timeout=120_000)
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length"
                           f" >= {CHARTS}", timeout=60_000)
    seen = page.evaluate("""() => ({
        plots: document.querySelectorAll('.js-plotly-plot').length,
        drawn: Array.from(document.querySelectorAll('.js-plotly-plot')).filter(
            p => p.querySelector('.main-svg') && p.getBoundingClientRect().height > 100).length,
        traces: document.querySelectorAll('.js-plotly-plot .trace').length,
        scroll: document.documentElement.scrollWidth, width: window.innerWidth})""")
    page.screenshot(path=str(screenshot), full_page=True)
    artifacts = os.environ.get("AMHS_ARTIFACTS_DIR")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / screenshot.name)
    page.close()
    return {**seen, "errors": errors}


def test_the_dashboard_draws_every_chart_without_errors_or_sideways_scroll(fab, browser, tmp_path):
    shot = tmp_path / "dashboard-file.png"
    seen = open_page(browser, (fab.data / "reports" / "dashboard.html").as_uri(), shot)
    assert seen["plots"] == seen["drawn"] == CHARTS and seen["traces"] > CHARTS
    assert seen["errors"] == []
    assert seen["scroll"] <= seen["width"] == 1366  # no horizontal scrolling on a laptop
    assert shot.stat().st_size > 50_000


def test_amhs_serve_shows_the_dashboard_at_slash_dashboard(fab, browser, tmp_path):
    with serving(fab.root, fab.tracking.tracking_uri, wait_model=False) as server:
        seen = open_page(browser, f"{server.url}/dashboard", tmp_path / "dashboard-served.png")
    assert seen["plots"] == seen["drawn"] == CHARTS and seen["errors"] == []
    assert seen["scroll"] <= seen["width"]
