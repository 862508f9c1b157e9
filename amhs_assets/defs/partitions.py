"""The horizon partitions of horizon_models: one per forecast horizon of the deployment.

The horizons are read from `amhs_assets.config` (the settings file's ``horizons``, else the
contract's 10/15/25) and nowhere else: the targets, the dataset and the performance monitor
take theirs from `deployment_horizons`, so no setting can make them disagree.
"""

from __future__ import annotations

import dagster as dg

from amhs_assets.config import environment

horizon_partitions = dg.StaticPartitionsDefinition([str(h) for h in environment().horizons])


def deployment_horizons() -> tuple[int, ...]:
    """The forecast horizons in minutes: the keys of the horizon partitions."""
    return tuple(int(k) for k in horizon_partitions.get_partition_keys())


def all_partitions_tags(partitions: dg.PartitionsDefinition = horizon_partitions
                        ) -> dict[str, str]:
    """Run tags that make one run cover every partition (every horizon)."""
    keys = partitions.get_partition_keys()
    return {"dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1]}
