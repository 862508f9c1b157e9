"""Ingest stage: raw files in, a validated one-minute grid out, every row accounted for."""

import dagster as dg
import pandas as pd

from amhs_assets.defs.metadata import markdown_table
from amhs_assets.defs.resources import AmhsSettings
from amhs_assets.documents import DataQualityDocument, write_json
from amhs_assets.ingest.clean import clean_raw_logs, write_quarantine
from amhs_assets.ingest.files import (
    discover_raw_files,
    manifest_fingerprint,
    raw_file_manifest,
    read_raw_files,
)
from amhs_assets.progress import Progress

GROUP = "ingest"


@dg.asset(group_name=GROUP, kinds={"csv", "parquet"})
def raw_amhs_logs(context: dg.AssetExecutionContext, settings: AmhsSettings
                  ) -> dg.Output[pd.DataFrame]:
    """Inventory of the raw log files under AMHS_DATA_DIR/raw: path, size, time and content hash."""
    manifest = raw_file_manifest(settings.raw_dir)
    context.log.info(f"{len(manifest)} raw file(s) under {settings.raw_dir}")
    shown = manifest.assign(modified=manifest["modified"].astype(str),
                            sha256=manifest["sha256"].str[:12])
    return dg.Output(manifest, metadata={
        "raw_dir": str(settings.raw_dir),
        "files": len(manifest),
        "bytes": int(manifest["bytes"].sum()) if len(manifest) else 0,
        "fingerprint": manifest_fingerprint(manifest),
        "manifest": dg.MetadataValue.md(markdown_table(shown) if len(shown) else "no files"),
    })


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "pandera"},
    deps=[raw_amhs_logs],
    check_specs=[
        dg.AssetCheckSpec("rows_accounted_for", asset="cleaned_amhs_logs",
                          description="rows_read = rows_clean + rows_quarantined + rows_duplicate"),
        dg.AssetCheckSpec("quarantine_share_low", asset="cleaned_amhs_logs",
                          description="share of quarantined rows under the configured limit"),
    ],
)
def cleaned_amhs_logs(context: dg.AssetExecutionContext, settings: AmhsSettings):
    """Validated raw rows on a regular one-minute grid per line: short gaps filled and flagged, long gaps missing."""
    files = discover_raw_files(settings.raw_dir)
    with Progress("reading raw files", len(files), "files", context.log.info) as progress:
        raw = read_raw_files(settings.raw_dir, files, progress)
    result = clean_raw_logs(raw, settings.max_fill_gap_min)
    write_quarantine(result, raw.files, settings.quarantine_dir)
    quality = result.quality
    DataQualityDocument.model_validate(quality)  # the shape other programs read
    report = write_json(settings.reports_dir / "data_quality.json", quality)
    files = pd.DataFrame(quality["files"])
    if len(files):
        files["reasons"] = files["reasons"].map(lambda r: "; ".join(r)[:200])
    cleaned = result.cleaned
    yield dg.Output(
        cleaned,
        metadata={
            **{k: quality[k] for k in ("rows_read", "rows_clean", "rows_quarantined",
                                       "rows_duplicate", "duplicate_conflicts", "rows_filled",
                                       "minutes_missing")},
            "lines": len(quality["lines"]),
            "first_minute": str(cleaned["timestamp"].min()) if len(cleaned) else "",
            "last_minute": str(cleaned["timestamp"].max()) if len(cleaned) else "",
            "data_quality_report": dg.MetadataValue.path(str(report)),
            "files": dg.MetadataValue.md(markdown_table(files) if len(files) else "no files"),
        },
    )
    accounted = quality["rows_clean"] + quality["rows_quarantined"] + quality["rows_duplicate"]
    yield dg.AssetCheckResult(
        check_name="rows_accounted_for",
        passed=accounted == quality["rows_read"],
        metadata={"rows_read": quality["rows_read"], "rows_accounted": accounted},
    )
    share = quality["rows_quarantined"] / quality["rows_read"] if quality["rows_read"] else 0.0
    yield dg.AssetCheckResult(
        check_name="quarantine_share_low",
        passed=share <= settings.quarantine_warn_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined_share": float(share), "limit": settings.quarantine_warn_share},
    )
