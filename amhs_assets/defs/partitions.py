"""The partitions: forecast horizons of horizon_models, fab-local days of the data assets.

The horizons are read from `amhs_assets.config` (the settings file's ``horizons``, else the
contract's 10/15/25) and nowhere else: the targets, the dataset and the performance monitor
take theirs from `deployment_horizons`, so no setting can make them disagree.

The days are fab-local (the ``fab_timezone`` setting) from ``history_start`` to tomorrow:
cleaned_amhs_logs, amhs_features and amhs_targets store one Parquet file per day. A day's
features read the previous day (120 minutes of lookback), a day's targets the next (25 minutes
ahead): `FEATURES_LOOKBACK` and `TARGETS_LOOKAHEAD` say so to Dagster, so the UI shows those
dependencies and a backfill runs the days in order.
"""

from __future__ import annotations

import warnings

import dagster as dg

from amhs_assets.config import environment

# allow_nonexistent_upstream_partitions is marked beta; dagster's version is pinned
warnings.filterwarnings("ignore", message="Parameter `allow_nonexistent_upstream_partitions`",
                        category=dg.BetaWarning)

horizon_partitions = dg.StaticPartitionsDefinition([str(h) for h in environment().horizons])

day_partitions = dg.DailyPartitionsDefinition(
    start_date=environment().history_start, timezone=environment().fab_timezone, end_offset=1)

# concurrency pools (limits: `amhs up`, or `dagster instance concurrency set POOL N`); without a
# limit a pool does not hold anything back, as in the embedded profile
INGEST_POOL = "amhs_ingest"
TRAINING_POOL = "amhs_training"


def day_backfill_policy() -> dg.BackfillPolicy:
    """How a backfill of the day partitions becomes runs: the whole range in one run (a day at
    a time, the default), or ``days_per_run`` days per run so that workers share them."""
    days = environment().days_per_run
    return dg.BackfillPolicy.multi_run(days) if days > 0 else dg.BackfillPolicy.single_run()


FEATURES_LOOKBACK = dg.TimeWindowPartitionMapping(
    start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True)
TARGETS_LOOKAHEAD = dg.TimeWindowPartitionMapping(
    start_offset=0, end_offset=1, allow_nonexistent_upstream_partitions=True)


def deployment_horizons() -> tuple[int, ...]:
    """The forecast horizons in minutes: the keys of the horizon partitions."""
    return tuple(int(k) for k in horizon_partitions.get_partition_keys())


def all_partitions_tags(partitions: dg.PartitionsDefinition = horizon_partitions
                        ) -> dict[str, str]:
    """Run tags that make one run cover every partition (every horizon)."""
    keys = partitions.get_partition_keys()
    return range_tags(keys[0], keys[-1])


def range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover the partitions first..last."""
    return {"dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last}


def offered_days(days: list[str]) -> tuple[list[str], list[str]]:
    """The days the day partitions offer, and those they do not (before history_start or
    after tomorrow)."""
    offered = set(day_partitions.get_partition_keys())
    return [d for d in days if d in offered], [d for d in days if d not in offered]
