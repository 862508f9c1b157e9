"""Dagster's filesystem IO manager, taught to store one output that covers several partitions.

A partitioned asset with a single-run backfill policy (horizon_models) runs every partition of a
range in one step and returns ``{partition_key: value}``; each value goes to the file of its
partition, exactly where a run of one partition would have put it. Everything else (one
partition, unpartitioned assets) is Dagster's own FilesystemIOManager. Loading also finds the
classes of values stored before the package was laid out by stage (``amhs_assets.modeling``
and the other flat modules), so an upgraded deployment reads its stored assets.
"""

from __future__ import annotations

import importlib
import pickle
from typing import Any

import dagster as dg
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager
from pydantic import Field

# modules of the flat layout (before the stage packages) -> where their classes live now
RELOCATED = {
    "amhs_assets.modeling": ("amhs_assets.models.dataset", "amhs_assets.models.xgb",
                             "amhs_assets.models.persistence"),
    "amhs_assets.splits": ("amhs_assets.models.splits",),
    "amhs_assets.unified": ("amhs_assets.models.unified",),
    "amhs_assets.ensemble": ("amhs_assets.models.ensemble",),
    "amhs_assets.ingest": ("amhs_assets.ingest.files",),
    "amhs_assets.ingest_clean": ("amhs_assets.ingest.clean",),
    "amhs_assets.drift": ("amhs_assets.monitoring.drift",),
    "amhs_assets.drift_calibration": ("amhs_assets.monitoring.drift_calibration",),
    "amhs_assets.performance": ("amhs_assets.monitoring.performance",),
    "amhs_assets.live_predictions": ("amhs_assets.monitoring.live",),
}


class RelocatingUnpickler(pickle.Unpickler):
    """An unpickler that finds classes pickled under a module of the flat layout."""

    def find_class(self, module: str, name: str) -> Any:
        for target in RELOCATED.get(module, ()):
            found = getattr(importlib.import_module(target), name, None)
            if found is not None:
                return found
        return super().find_class(module, name)


class PartitionRangePickleIOManager(PickledObjectFilesystemIOManager):
    """Pickles to files like fs_io_manager; an output of several partitions is a dict by key."""

    def load_from_path(self, context: dg.InputContext, path: Any) -> Any:
        with path.open("rb") as file:
            return RelocatingUnpickler(file).load()

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
