"""Ingest stage: raw files in, a validated one-minute grid per fab-local day out, every row
accounted for."""

from collections import Counter

import dagster as dg
import pandas as pd

from amhs_assets.defs.metadata import markdown_table
from amhs_assets.defs.partitions import (
    INGEST_POOL,
    day_backfill_policy,
    day_partitions,
    offered_days,
)
from amhs_assets.defs.resources import AmhsSettings
from amhs_assets.documents import DataQualityDocument, write_json
from amhs_assets.ingest.clean import empty_cleaned
from amhs_assets.ingest.days import (
    COUNTS,
    RawIndex,
    clean_day,
    publish_quality,
    update_stored_index,
    write_day_quality,
)
from amhs_assets.ingest.files import discover_raw_files, manifest_fingerprint
from amhs_assets.progress import Progress
from amhs_assets.warehouse import DayFrames

GROUP = "ingest"


def current_index(settings: AmhsSettings, log=None, warn=None) -> RawIndex:
    """The raw index refreshed (only new or changed files are read, within the ingest limits)
    and stored; each file skipped because it changed while read is told to `warn`."""
    files = discover_raw_files(settings.raw_dir)
    with Progress("indexing raw files", len(files), "files", log) as progress:
        index = update_stored_index(settings.layout.warehouse, settings.raw_dir,
                                    settings.fab_timezone, progress, settings.ingest.pure())[1]
    for path, reason in index.skipped.items():
        (warn or log or print)(f"raw file {path}: {reason}")
    return index


@dg.asset(group_name=GROUP, kinds={"csv", "parquet"})
def raw_amhs_logs(context: dg.AssetExecutionContext, settings: AmhsSettings
                  ) -> dg.Output[pd.DataFrame]:
    """Inventory of the raw log files under AMHS_DATA_DIR/raw: path, size, time, content hash and the fab-local days each covers."""
    index = current_index(settings, context.log.info, context.log.warning)
    manifest = index.manifest()
    days, outside = offered_days(index.days())
    context.log.info(f"{len(manifest)} raw file(s) under {settings.raw_dir}, {len(days)} day(s)")
    if outside:
        context.log.warning(
            f"{len(outside)} day(s) of raw rows lie outside the day partitions "
            f"({settings.history_start} to tomorrow) and are not ingested: {outside[:5]}; set "
            "history_start earlier (or check the clocks of the files)")
    shown = manifest.assign(modified=manifest["modified"].astype(str),
                            sha256=manifest["sha256"].str[:12])
    return dg.Output(manifest, metadata={
        "raw_dir": str(settings.raw_dir),
        "files": len(manifest),
        "bytes": int(manifest["bytes"].sum()) if len(manifest) else 0,
        "fingerprint": manifest_fingerprint(manifest),
        "files_rejected": len(index.rejected()), "files_skipped": len(index.skipped),
        "first_day": days[0] if days else "", "last_day": days[-1] if days else "",
        "days": len(days), "days_outside_partitions": ", ".join(outside[:20]),
        "manifest": dg.MetadataValue.md(markdown_table(shown) if len(shown) else "no files"),
    })


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "pandera", "parquet"},
    deps=[raw_amhs_logs],
    partitions_def=day_partitions,
    backfill_policy=day_backfill_policy(), pool=INGEST_POOL,
    check_specs=[
        dg.AssetCheckSpec("rows_accounted_for", asset="cleaned_amhs_logs",
                          description="rows_read = rows_clean + rows_quarantined + rows_duplicate"),
        dg.AssetCheckSpec("quarantine_share_low", asset="cleaned_amhs_logs",
                          description="share of quarantined rows under the configured limit"),
    ],
)
def cleaned_amhs_logs(context: dg.AssetExecutionContext, settings: AmhsSettings):
    """Validated raw rows of each fab-local day on a one-minute grid per line: short gaps filled and flagged, long gaps missing."""
    index = current_index(settings, context.log.info, context.log.warning)
    days = list(context.partition_keys)
    totals: Counter = Counter(files_skipped=0)  # files skipped: changed since indexed
    progress = Progress("cleaning days", len(days), "days", context.log.info)
    limits = settings.ingest.pure()

    def clean(day: str) -> pd.DataFrame:
        result = clean_day(settings.raw_dir, index, day, settings.max_fill_gap_min, limits) \
            if index.files_for(day) else None
        write_day_quality(result, day, settings.reports_dir, settings.quarantine_dir)
        totals.update({k: (result.quality[k] if result else 0) for k in COUNTS})
        for skipped in result.quality["skipped"] if result else []:
            totals["files_skipped"] += 1
            context.log.warning(f"{day}: raw file {skipped['path']} {skipped['reason']}")
        progress.advance()
        return result.cleaned if result else empty_cleaned()

    frames = DayFrames(days, clean)
    frames.stats = totals  # the IO manager adds them to the materialization once every day is done
    report = settings.reports_dir / "data_quality.json"
    yield dg.Output(frames, metadata={
        "first_day": days[0], "last_day": days[-1], "days": len(days),
        "raw_fingerprint": manifest_fingerprint(index.manifest()),  # the hashes read against
        "days_with_files": sum(bool(index.files_for(d)) for d in days),
        "data_quality_report": dg.MetadataValue.path(str(report))})
    progress.close()
    quality = publish_quality(index, settings.reports_dir, settings.quarantine_dir)
    DataQualityDocument.model_validate(quality)  # the shape other programs read
    write_json(report, quality)
    accounted = totals["rows_clean"] + totals["rows_quarantined"] + totals["rows_duplicate"]
    yield dg.AssetCheckResult(
        check_name="rows_accounted_for",
        passed=accounted == totals["rows_read"],
        metadata={"rows_read": totals["rows_read"], "rows_accounted": accounted},
    )
    share = totals["rows_quarantined"] / totals["rows_read"] if totals["rows_read"] else 0.0
    yield dg.AssetCheckResult(
        check_name="quarantine_share_low",
        passed=share <= settings.quarantine_warn_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined_share": float(share), "limit": settings.quarantine_warn_share},
    )
