"""Stored asset values survive the re-layout: values pickled under the flat modules of earlier
versions (amhs_assets.modeling, ...) load as the classes of the stage packages."""

from __future__ import annotations

import io
import pickle
import sys
import types

import dagster as dg
import pytest

from amhs_assets.defs.io_manager import AmhsIOManager, RelocatingUnpickler
from amhs_assets.integrity import seal, storage_key
from amhs_assets.models.splits import SplitConfig
from amhs_assets.models.xgb import XgbConfig


def pickled_as(obj, old_module: str) -> bytes:
    """obj pickled as an earlier version stored it: its class under old_module."""
    cls = type(obj)
    fake, real = types.ModuleType(old_module), cls.__module__
    setattr(fake, cls.__qualname__, cls)
    sys.modules[old_module], cls.__module__ = fake, old_module
    try:
        return pickle.dumps(obj)
    finally:
        cls.__module__ = real
        del sys.modules[old_module]


def test_values_pickled_under_the_flat_layout_load_as_the_new_classes():
    blob = pickled_as(XgbConfig(max_depth=3), "amhs_assets.modeling")
    assert b"amhs_assets.modeling" in blob
    with pytest.raises(ModuleNotFoundError):  # plain pickle cannot: the module is gone
        pickle.loads(blob)
    assert RelocatingUnpickler(io.BytesIO(blob)).load() == XgbConfig(max_depth=3)
    split = pickled_as(SplitConfig(gap_min=15), "amhs_assets.splits")
    assert RelocatingUnpickler(io.BytesIO(split)).load() == SplitConfig(gap_min=15)


def test_the_deployment_io_manager_reads_an_asset_stored_under_the_flat_layout(tmp_path):
    @dg.asset
    def stored_config() -> int:  # stands in for any asset whose value was pickled earlier
        return 0

    @dg.asset
    def reader(stored_config) -> int:
        return stored_config.max_depth

    manager = AmhsIOManager(base_dir=str(tmp_path))
    dg.materialize([stored_config], resources={"io_manager": manager})
    earlier = pickled_as(XgbConfig(max_depth=5), "amhs_assets.modeling")
    (tmp_path / "stored_config").write_bytes(earlier)
    seal(tmp_path / "stored_config", storage_key(tmp_path))  # adopted: unsealed values are refused
    result = dg.materialize([stored_config.to_source_asset(), reader],
                            resources={"io_manager": manager}, selection=[reader])
    assert result.output_for_node("reader") == 5
