"""The ingest assets materialized for real, into a temporary data folder and Dagster instance."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from amhs_assets.defs.assets.ingest import cleaned_amhs_logs, raw_amhs_logs
from amhs_assets.defs.io_manager import AmhsIOManager
from amhs_assets.defs.partitions import range_tags
from amhs_assets.defs.resources import AmhsSettings
from amhs_assets.warehouse import read_days, stored_days
from amhs_assets_tests.support import valid_rows

DAY = "2026-03-01"  # valid_rows start at 2026-03-01T00:00Z, 08:00 in the fab (Asia/Taipei)


def materialize_ingest(data_dir, first: str = DAY, last: str = DAY, **settings):
    """raw_amhs_logs and the cleaned days first..last in one run, stored in the warehouse."""
    warehouse = data_dir / "warehouse"
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [raw_amhs_logs, cleaned_amhs_logs], instance=instance, tags=range_tags(first, last),
            resources={"settings": AmhsSettings(data_dir=str(data_dir), **settings),
                       "io_manager": AmhsIOManager(base_dir=str(data_dir / "storage"),
                                                   warehouse_dir=str(warehouse))},
        )
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        root = warehouse / "cleaned_amhs_logs"
        cleaned = read_days(root) if stored_days(root) else pd.DataFrame()
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


def test_each_row_is_accounted_for_on_its_fab_local_day(data_dir):
    # 20 hours from 2026-03-01T08:00 fab time: 16 hours on the 1st, 4 on the 2nd
    frame = valid_rows(20 * 60)
    frame.loc[5, "timestamp"] = "yesterday"  # no day of its own: counted on the file's home day
    frame.loc[1100, "vehicles_down"] = 10_000  # a bad row on the 2nd
    frame.to_csv(data_dir / "raw" / "a.csv", index=False)
    (data_dir / "raw" / "junk.csv").write_text("no,contract\n1,2\n")
    result, checks, cleaned = materialize_ingest(data_dir, DAY, "2026-03-02")
    assert result.success and checks["rows_accounted_for"].passed
    assert stored_days(data_dir / "warehouse" / "cleaned_amhs_logs") == [DAY, "2026-03-02"]
    parts = {d: json.loads((data_dir / "reports" / "data_quality" / f"date={d}.json").read_text())
             for d in (DAY, "2026-03-02")}
    assert parts[DAY]["rows_read"] == 16 * 60 and parts[DAY]["rows_quarantined"] == 1
    assert parts["2026-03-02"]["rows_read"] == 4 * 60 and parts["2026-03-02"]["rows_quarantined"] == 1
    report = json.loads((data_dir / "reports" / "data_quality.json").read_text())
    assert report["rows_read"] == 20 * 60 + 1  # and the rejected file's one row
    assert report["rows_read"] == report["rows_clean"] + report["rows_quarantined"] + report["rows_duplicate"]
    files = {f["path"]: f for f in report["files"]}
    assert files["a.csv"]["rows_read"] == 20 * 60 and files["a.csv"]["status"] == "partial"
    assert files["a.csv"]["reasons"].count("2 row(s) quarantined") == 1
    assert files["junk.csv"]["status"] == "quarantined"
    assert "missing required column" in files["junk.csv"]["reasons"][0]
    rows = pd.read_csv(data_dir / "quarantine" / "rows.csv")
    assert sorted(rows["_source_row"]) == [6, 1101]  # 1-based data rows of the file
    assert list(pd.read_csv(data_dir / "quarantine" / "files.csv")["path"]) == ["junk.csv"]
    assert len(cleaned) == 20 * 60 and int(cleaned["is_filled"].sum()) == 2  # the two bad minutes
