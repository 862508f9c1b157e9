"""The ingest assets materialized for real, into a temporary data folder and Dagster instance."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from amhs_assets.defs.assets.ingest import cleaned_amhs_logs, raw_amhs_logs
from amhs_assets.defs.resources import AmhsSettings
from amhs_assets_tests.support import valid_rows


def materialize_ingest(data_dir, **settings):
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [raw_amhs_logs, cleaned_amhs_logs], instance=instance,
            resources={"settings": AmhsSettings(data_dir=str(data_dir), **settings)},
        )
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        cleaned = result.output_for_node("cleaned_amhs_logs")
        return result, checks, cleaned


def test_materialized_ingest_writes_a_quality_report_that_adds_up(data_dir):
    frame = valid_rows(40)
    frame.loc[3, "vehicles_down"] = 10_000
    frame.to_csv(data_dir / "raw" / "a.csv", index=False)
    valid_rows(40).to_csv(data_dir / "raw" / "b.csv", index=False)  # 39 identical duplicates
    (data_dir / "raw" / "junk.parquet").write_bytes(b"not parquet")
    result, checks, cleaned = materialize_ingest(data_dir)
    assert result.success
    report = json.loads((data_dir / "reports" / "data_quality.json").read_text())
    assert report["rows_read"] == 80
    assert report["rows_read"] == report["rows_clean"] + report["rows_quarantined"] + report["rows_duplicate"]
    assert {f["path"]: f["status"] for f in report["files"]} == {
        "a.csv": "partial", "b.csv": "ok", "junk.parquet": "quarantined"}
    assert checks["rows_accounted_for"].passed
    assert isinstance(cleaned, pd.DataFrame) and len(cleaned) == 40
    rows = pd.read_csv(data_dir / "quarantine" / "rows.csv")
    assert "vehicles_down" in rows.loc[0, "reasons"]


def test_quarantine_share_check_warns_over_the_limit(data_dir):
    frame = valid_rows(10)
    frame.loc[:4, "wait_time_avg_s"] = -1.0
    frame.to_csv(data_dir / "raw" / "a.csv", index=False)
    result, checks, _ = materialize_ingest(data_dir, quarantine_warn_share=0.1)
    assert result.success
    assert not checks["quarantine_share_low"].passed
    assert checks["quarantine_share_low"].severity == dg.AssetCheckSeverity.WARN


def test_empty_raw_folder_materializes_an_empty_grid(data_dir):
    result, checks, cleaned = materialize_ingest(data_dir)
    assert result.success and len(cleaned) == 0 and checks["rows_accounted_for"].passed
