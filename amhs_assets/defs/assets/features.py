"""Feature stage: the 222 features, their catalog, and the multi-horizon targets."""

from collections import Counter

import dagster as dg
import numpy as np
import pandas as pd

from amhs_assets.contract import N_FEATURES, STATES
from amhs_assets.defs.metadata import markdown_table
from amhs_assets.defs.partitions import (
    INGEST_POOL,
    day_backfill_policy,
    FEATURES_LOOKBACK,
    TARGETS_LOOKAHEAD,
    day_partitions,
    deployment_horizons,
)
from amhs_assets.defs.resources import AmhsSettings
from amhs_assets.documents import write_text
from amhs_assets.features.compute import build_features, feature_rows_usable
from amhs_assets.features.spec import FEATURE_VERSION
from amhs_assets.features.spec import feature_catalog as make_catalog
from amhs_assets.features.targets import build_targets
from amhs_assets.ingest.clean import stitch_days
from amhs_assets.ingest.days import neighbour_day
from amhs_assets.progress import Progress
from amhs_assets.warehouse import DayFrames, DayReader, local_days

GROUP = "features"


def day_rows(frame: pd.DataFrame, day: str, timezone: str) -> pd.DataFrame:
    """The rows of one fab-local day."""
    if frame.empty:
        return frame
    return frame[(local_days(frame["timestamp"], timezone) == day).to_numpy()].reset_index(drop=True)


def stitched(cleaned: DayReader, days: list[str], settings: AmhsSettings) -> pd.DataFrame:
    """Consecutive days of the cleaned grid as one grid (gaps across midnight regridded)."""
    return stitch_days([cleaned.read([d]) for d in days], settings.max_fill_gap_min)


@dg.asset(group_name=GROUP, kinds={"pandas", "numpy", "parquet"}, code_version=FEATURE_VERSION,
          partitions_def=day_partitions, backfill_policy=day_backfill_policy(), pool=INGEST_POOL,
          ins={"cleaned_amhs_logs": dg.AssetIn(partition_mapping=FEATURES_LOOKBACK)})
def amhs_features(context: dg.AssetExecutionContext, settings: AmhsSettings,
                  cleaned_amhs_logs: DayReader) -> dg.Output[DayFrames]:
    """222 features per line and minute of each fab-local day, each from at most 120 minutes at or before the minute (the previous day's last two hours included)."""
    days = list(context.partition_keys)
    stats: Counter = Counter()
    progress = Progress("amhs_features", len(days), "days", context.log.info)

    def features(day: str) -> pd.DataFrame:
        grid = stitched(cleaned_amhs_logs, [neighbour_day(day, -1), day], settings)
        today = (local_days(grid["timestamp"], settings.fab_timezone) == day).to_numpy() \
            if len(grid) else np.zeros(0, bool)
        frame = build_features(grid)[today].reset_index(drop=True)
        usable = feature_rows_usable(grid)[today] if len(grid) else np.zeros(0, bool)
        stats.update(rows=len(frame), rows_usable=int(usable.sum()),
                     rows_unusable=int((~usable).sum()))
        progress.advance()
        if progress.done == progress.total:
            progress.close()
        return frame

    frames = DayFrames(days, features)
    frames.stats = stats
    return dg.Output(frames, metadata={
        "first_day": days[0], "last_day": days[-1], "days": len(days),
        "features": N_FEATURES, "feature_version": FEATURE_VERSION})


@dg.asset(group_name=GROUP, kinds={"csv"}, code_version=FEATURE_VERSION)
def feature_catalog(settings: AmhsSettings) -> dg.Output[pd.DataFrame]:
    """Name, source columns, transform, window and description of each of the 222 features."""
    catalog = make_catalog()
    path = settings.reports_dir / "feature_catalog.csv"
    write_text(path, catalog.to_csv(index=False))
    by_transform = catalog["transform"].value_counts().rename_axis("transform").reset_index()
    return dg.Output(catalog, metadata={
        "features": len(catalog),
        "feature_version": FEATURE_VERSION,
        "path": dg.MetadataValue.path(str(path)),
        "by_transform": dg.MetadataValue.md(markdown_table(by_transform)),
        "catalog": dg.MetadataValue.md(markdown_table(catalog, max_rows=222)),
    })


@dg.asset(group_name=GROUP, kinds={"pandas", "parquet"}, partitions_def=day_partitions,
          backfill_policy=day_backfill_policy(), pool=INGEST_POOL,
          ins={"cleaned_amhs_logs": dg.AssetIn(partition_mapping=TARGETS_LOOKAHEAD)})
def amhs_targets(context: dg.AssetExecutionContext, settings: AmhsSettings,
                 cleaned_amhs_logs: DayReader) -> dg.Output[DayFrames]:
    """MIN, MAX, AVG of the target column over the next h minutes and the 3-class state, per horizon, for each fab-local day (the next day's first minutes included)."""
    days = list(context.partition_keys)
    horizons = deployment_horizons()
    counts = {h: np.zeros(len(STATES) + 1, dtype=np.int64) for h in horizons}

    def targets(day: str) -> pd.DataFrame:
        grid = stitched(cleaned_amhs_logs, [day, neighbour_day(day, 1)], settings)
        frame = day_rows(build_targets(grid, horizons, settings.target_column, settings.warning_s,
                                       settings.critical_s), day, settings.fab_timezone)
        for h in horizons:  # state codes -1 (unavailable), 0, 1, 2
            counts[h] += np.bincount(frame[f"state_{h}"].to_numpy() + 1, minlength=len(STATES) + 1)
        frames.stats = class_mix(counts)
        return frame

    frames = DayFrames(days, targets)
    return dg.Output(frames, metadata={
        "first_day": days[0], "last_day": days[-1], "days": len(days),
        "target_column": settings.target_column,
        "horizons": str(list(horizons)),
        "thresholds_s": f"WARNING >= {settings.warning_s:g}, CRITICAL >= {settings.critical_s:g}"})


def class_mix(counts: dict[int, np.ndarray]) -> dict:
    """Materialization metadata of the state mix per horizon, from counts of codes -1..2."""
    mix = []
    for h, codes in counts.items():
        known = codes[1:]
        shares = known / max(int(known.sum()), 1)
        mix.append({"horizon": h, "rows": int(known.sum()),
                    **{s: round(float(v), 4) for s, v in zip(STATES, shares)}})
    return {"class_mix": dg.MetadataValue.md(markdown_table(pd.DataFrame(mix))),
            **{f"critical_share_{m['horizon']}": m["CRITICAL"] for m in mix}}
