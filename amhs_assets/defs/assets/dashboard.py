"""Monitoring stage: the dashboard page people open (served by the API at /dashboard)."""

import json
import time

import dagster as dg
import pandas as pd

from amhs_assets.contract import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from amhs_assets.dashboard.page import (
    DashboardInputs,
    data_up_to,
    quarantined_per_day,
    render_dashboard,
)
from amhs_assets.defs.resources import AmhsSettings, MlflowTracking
from amhs_assets.html import write_page
from amhs_assets.monitoring.performance import PerformanceResult
from amhs_assets.monitoring.versions import version_events
from amhs_assets.registry.store import version_ref

GROUP = "monitoring"
DRIFT_REPORTS_SHOWN = 200


def drift_history(instance: dg.DagsterInstance, limit: int = DRIFT_REPORTS_SHOWN) -> pd.DataFrame:
    """share_drifted and drift_detected of the latest drift_report materializations."""
    records = instance.fetch_materializations(dg.AssetKey("drift_report"), limit=limit).records
    rows = []
    for record in records:  # at most `limit` small metadata dicts
        metadata = record.asset_materialization.metadata
        if "share_drifted" in metadata:
            rows.append({"measured_at": pd.Timestamp(record.timestamp, unit="s", tz="UTC"),
                         "share_drifted": float(metadata["share_drifted"].value),
                         "drift_detected": bool(metadata["drift_detected"].value)
                         if "drift_detected" in metadata else False})
    return pd.DataFrame(rows, columns=["measured_at", "share_drifted", "drift_detected"])


def _read_json(path) -> dict | None:
    """A JSON report, or None when it is not there."""
    return json.loads(path.read_text()) if path.is_file() else None


@dg.asset(group_name=GROUP, kinds={"html", "plotly"}, deps=[dg.AssetKey("cleaned_amhs_logs")])
def monitoring_dashboard(context: dg.AssetExecutionContext, settings: AmhsSettings,
                         mlflow: MlflowTracking, performance_monitor: PerformanceResult,
                         drift_report: dict) -> dg.MaterializeResult:
    """One HTML page (reports/dashboard.html, served at /dashboard): forecast status per line, live error against the evaluated level, predicted vs actual, drift, model versions and data quality."""
    started = time.perf_counter()
    tz = settings.fab_timezone
    client = mlflow.client()
    champion = version_ref(client, REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    events = version_events(client, REGISTERED_MODEL_NAME)
    quarantined, undated = quarantined_per_day(settings.quarantine_dir / "rows.csv", tz)
    drifts = drift_history(context.instance)
    page, charts = render_dashboard(DashboardInputs(
        performance=performance_monitor.document, scored=performance_monitor.scored,
        history=performance_monitor.history, drift=drift_report, drift_history=drifts,
        versions=events, champion=champion.version if champion else None,
        quality=_read_json(settings.reports_dir / "data_quality.json"), quarantined=quarantined,
        undated_quarantined=undated, timezone=tz, margin=settings.performance.mae_margin,
        explanations=getattr(performance_monitor, "explanations", None) or None))
    path = write_page(settings.reports_dir / "dashboard.html", page)
    elapsed = time.perf_counter() - started
    context.log.info(f"dashboard: {charts} charts, {len(page) / 2**10:.0f} KiB in {elapsed:.1f} s")
    return dg.MaterializeResult(metadata={
        "charts": charts, "page_bytes": len(page), "seconds": round(elapsed, 2),
        "lines": len(performance_monitor.document.get("latest", [])),
        "data_up_to": data_up_to(performance_monitor.document) or "no forecast yet",
        "versions": int(events["version"].nunique()) if len(events) else 0,
        "drift_reports": len(drifts), "quarantined_rows": int(quarantined["rows"].sum()),
        "champion_version": champion.version if champion else "none",
        "dashboard_html": dg.MetadataValue.path(str(path)),
        "url": settings.page_url("dashboard"),
    })
