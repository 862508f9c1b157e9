"""Dagster's filesystem IO manager, taught to store one output that covers several partitions.

A partitioned asset with a single-run backfill policy (horizon_models) runs every partition of a
range in one step and returns ``{partition_key: value}``; each value goes to the file of its
partition, exactly where a run of one partition would have put it. Everything else (one
partition, unpartitioned assets, loading) is Dagster's own FilesystemIOManager.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager
from pydantic import Field


class PartitionRangePickleIOManager(PickledObjectFilesystemIOManager):
    """Pickles to files like fs_io_manager; an output of several partitions is a dict by key."""

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if not context.has_asset_partitions or len(context.asset_partition_keys) < 2:
            super().handle_output(context, obj)
            return
        paths = self._get_paths_for_partitions(context)
        if not isinstance(obj, dict) or set(obj) != set(paths):
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()} ran for partitions {sorted(paths)} in one "
                "step: it must return a dict with exactly those partition keys, got "
                f"{sorted(obj) if isinstance(obj, dict) else type(obj).__name__}")
        for key, path in paths.items():
            self._handle_transition_to_partitioned_asset(context, path.parent)
            self.make_directory(path.parent)
            self.dump_to_path(context=context, obj=obj[key], path=path)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path.parent))})


class AmhsIOManager(dg.ConfigurableIOManagerFactory):
    """The deployment's IO manager: pickles under <DAGSTER_HOME>/storage (or base_dir)."""

    base_dir: str | None = Field(default=None, description="folder of the stored values")

    def create_io_manager(self, context: dg.InitResourceContext) -> PartitionRangePickleIOManager:
        base = self.base_dir or context.instance.storage_directory()
        return PartitionRangePickleIOManager(base_dir=base)
