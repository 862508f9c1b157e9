"""The deployment's storage of asset values.

- The data assets (cleaned_amhs_logs, amhs_features, amhs_targets), partitioned by fab-local
  day, go to the Parquet warehouse (`amhs_assets.warehouse`): an output is a mapping
  {day: frame} (a run over a range of days hands a lazy `DayFrames`, computed a day at a time)
  or one day's frame; each day is written to `<asset>/date=YYYY-MM-DD/`, and a downstream input
  is a `DayReader` that reads only the days (and columns) it asks for.
- Every other value is pickled by Dagster's filesystem IO manager, taught to store one output
  that covers several partitions: horizon_models (single-run backfill policy) runs every
  partition of a range in one step and returns ``{partition_key: value}``; each value goes to
  the file of its partition, exactly where a run of one partition would have put it.

Every pickled value is sealed: ``<file>.hmac`` beside it holds the HMAC-SHA256 of its bytes,
keyed by ``AMHS_STORAGE_KEY`` or a key file made once with mode 0600 (`amhs_assets.integrity`).
A value is unpickled only when its seal matches, so a value changed, corrupted or planted
since it was written fails the step that reads it, naming the asset and the file.

Loading also finds the classes of values stored before the package was laid out by stage
(``amhs_assets.modeling`` and the other flat modules), so an upgraded deployment reads its
stored models.
"""

from __future__ import annotations

import importlib
import io
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager
from pydantic import Field

from amhs_assets.contract import FAB_TIMEZONE
from amhs_assets.integrity import read_sealed, seal, storage_key
from amhs_assets.warehouse import DayReader, local_days, stored_days, write_day

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
    """Pickles to files like fs_io_manager, each sealed with an HMAC checked before unpickling;
    an output of several partitions is a dict by key."""

    def __init__(self, base_dir: str, key: bytes, **kwargs: Any):
        super().__init__(base_dir=base_dir, **kwargs)
        self.key = key

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: Any) -> None:
        super().dump_to_path(context, obj, path)
        seal(Path(path), self.key)

    def load_from_path(self, context: dg.InputContext, path: Any) -> Any:
        what = context.asset_key.to_user_string() if context.has_asset_key else "input"
        data = read_sealed(Path(path), self.key, what)
        return RelocatingUnpickler(io.BytesIO(data)).load()

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


WAREHOUSE_ASSETS = ("cleaned_amhs_logs", "amhs_features", "amhs_targets")


class WarehouseIOManager(dg.IOManager):
    """The warehouse assets as Parquet, one file per fab-local day (their day partitions); the
    rest pickled. An output is a `DayFrames` (or a frame for one day): each day is computed and
    written in turn, so a run over many days holds one in memory. An input is a `DayReader`
    over the upstream days the run maps to (the consumer reads the days and columns it needs)."""

    def __init__(self, pickles: PartitionRangePickleIOManager, warehouse: Path | None,
                 timezone: str):
        self.pickles, self.warehouse, self.timezone = pickles, warehouse, timezone

    def _dataset(self, key: dg.AssetKey) -> Path | None:
        name = key.to_user_string()
        return self.warehouse / name if self.warehouse and name in WAREHOUSE_ASSETS else None

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        root = self._dataset(context.asset_key)
        if root is None:
            self.pickles.handle_output(context, obj)
            return
        if not context.has_asset_partitions:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()} is stored by fab-local day: run it for "
                "day partitions")
        days = list(context.asset_partition_keys)
        frames = obj if isinstance(obj, Mapping) else {days[0]: obj}
        if len(days) > 1 and set(frames) != set(days) or len(days) == 1 and days[0] not in frames:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()} ran for days {days[0]}..{days[-1]}: it "
                f"must return one frame per day, got {sorted(frames)[:3]}...")
        rows = 0
        for day in days:
            frame = frames[day]
            outside = local_days(frame["timestamp"], self.timezone) != day if len(frame) else []
            if len(frame) and outside.any():
                raise dg.DagsterInvariantViolationError(
                    f"{context.asset_key.to_user_string()} day {day}: {int(outside.sum())} row(s) "
                    f"of other days, e.g. {frame.loc[outside, 'timestamp'].iloc[0]}")
            write_day(frame, root, day)
            rows += len(frame)
        context.add_output_metadata({
            "warehouse": dg.MetadataValue.path(str(root)), "days_written": len(days),
            "rows_written": rows, **getattr(obj, "stats", {})})

    def load_input(self, context: dg.InputContext) -> Any:
        root = self._dataset(context.upstream_output.asset_key)
        if root is None:
            return self.pickles.load_input(context)
        days = (list(context.asset_partition_keys) if context.has_asset_partitions
                else stored_days(root))
        return DayReader(root, days)


class AmhsIOManager(dg.ConfigurableIOManagerFactory):
    """The deployment's IO manager: the warehouse under warehouse_dir (when set) for the data
    assets, sealed pickles under <DAGSTER_HOME>/storage (or base_dir) for everything else (the
    seals' key: $AMHS_STORAGE_KEY, else base_dir/.storage_key, made on first use)."""

    base_dir: str | None = Field(default=None, description="folder of the pickled values")
    warehouse_dir: str | None = Field(
        default=None, description="$AMHS_DATA_DIR/warehouse: the Parquet datasets of "
                                  "cleaned_amhs_logs, amhs_features and amhs_targets")
    timezone: str = Field(default=FAB_TIMEZONE, description="the warehouse's days are fab-local")

    def create_io_manager(self, context: dg.InitResourceContext) -> WarehouseIOManager:
        base = self.base_dir or context.instance.storage_directory()
        warehouse = Path(self.warehouse_dir) if self.warehouse_dir else None
        pickles = PartitionRangePickleIOManager(base_dir=base, key=storage_key(Path(base)))
        return WarehouseIOManager(pickles, warehouse, self.timezone)
