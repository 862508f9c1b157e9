"""The Parquet warehouse: the data assets by fab-local day, read back exactly as written, by any
Parquet reader, replaced day by day atomically; and the deployment's IO manager that uses it."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from amhs_assets.defs.assets.training import model_dataset
from amhs_assets.defs.io_manager import AmhsIOManager
from amhs_assets.defs.resources import AmhsSettings
from amhs_assets.features.compute import build_features, feature_rows_usable
from amhs_assets.features.targets import build_targets
from amhs_assets.models.dataset import dataset_from_raw
from amhs_assets.warehouse import days_since, read_days, stored_days, window_days, write_days
from amhs_assets_tests.support import simulated_rows

TZ = "Asia/Taipei"


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    cleaned, _ = dataset_from_raw(simulated_rows(("A", "B"), days=2))
    return {"cleaned_amhs_logs": cleaned, "amhs_features": build_features(cleaned),
            "amhs_targets": build_targets(cleaned)}


@pytest.mark.parametrize("name", ["cleaned_amhs_logs", "amhs_features", "amhs_targets"])
def test_a_dataset_reads_back_exactly_with_its_column_types(frames, tmp_path, name):
    frame = frames[name]
    days = write_days(frame, tmp_path / name, TZ, replace_all=True)
    local = frame["timestamp"].dt.tz_convert(TZ).dt.strftime("%Y-%m-%d")
    assert days == sorted(local.unique()) == stored_days(tmp_path / name)
    pd.testing.assert_frame_equal(read_days(tmp_path / name), frame.reset_index(drop=True))
    one = read_days(tmp_path / name, [days[1]], columns=["line_id", "timestamp"])
    assert len(one) == int((local == days[1]).sum())
    assert list(one.columns) == ["line_id", "timestamp"]


def test_any_parquet_reader_sees_the_hive_layout(frames, tmp_path):
    write_days(frames["amhs_features"], tmp_path / "amhs_features", TZ)
    table = pq.read_table(tmp_path / "amhs_features")  # no project code: hive partitions
    assert "date" in table.column_names and table.num_rows == len(frames["amhs_features"])
    schema = dict(zip(table.schema.names, map(str, table.schema.types)))
    assert schema["timestamp"] == "timestamp[ns, tz=UTC]" and schema["line_id"] == "string"
    assert schema["transfer_time_avg_s__value"] == "float"  # float32, as computed


def test_a_day_is_replaced_alone_and_stale_days_go_with_a_full_rewrite(frames, tmp_path):
    root = tmp_path / "amhs_targets"
    frame = frames["amhs_targets"]
    days = write_days(frame, root, TZ)
    before = {d: (root / f"date={d}" / "part-0.parquet").stat().st_mtime_ns for d in days}
    local = frame["timestamp"].dt.tz_convert(TZ).dt.strftime("%Y-%m-%d")
    changed = frame[local == days[1]].assign(avg_10=1.0)
    assert write_days(changed, root, TZ) == [days[1]]
    after = {d: (root / f"date={d}" / "part-0.parquet").stat().st_mtime_ns for d in days}
    assert [d for d in days if after[d] != before[d]] == [days[1]]
    assert (read_days(root, [days[1]])["avg_10"] == 1.0).all()
    write_days(frame[local != days[0]], root, TZ, replace_all=True)
    assert stored_days(root) == days[1:]
    assert not list(root.glob("**/*.tmp"))  # atomic writes leave nothing behind


def test_the_io_manager_keeps_data_assets_in_the_warehouse_and_the_rest_pickled(frames, tmp_path):
    cleaned = frames["cleaned_amhs_logs"]

    @dg.asset
    def cleaned_amhs_logs() -> pd.DataFrame:
        return cleaned

    @dg.asset
    def row_count(cleaned_amhs_logs: pd.DataFrame) -> int:
        return len(cleaned_amhs_logs)

    manager = AmhsIOManager(base_dir=str(tmp_path / "storage"),
                            warehouse_dir=str(tmp_path / "warehouse"), timezone=TZ)
    result = dg.materialize([cleaned_amhs_logs, row_count], resources={"io_manager": manager})
    assert result.success and result.output_for_node("row_count") == len(cleaned)
    root = tmp_path / "warehouse" / "cleaned_amhs_logs"
    pd.testing.assert_frame_equal(read_days(root), cleaned.reset_index(drop=True))
    assert not (tmp_path / "storage" / "cleaned_amhs_logs").exists()  # no pickle of the data
    assert (tmp_path / "storage" / "row_count").is_file()
    meta = result.asset_materializations_for_node("cleaned_amhs_logs")[0].metadata
    assert meta["warehouse_days"].value == len(stored_days(root))


def test_a_data_folder_from_before_the_warehouse_is_read_from_its_pickle(frames, tmp_path):
    cleaned = frames["cleaned_amhs_logs"]

    @dg.asset
    def cleaned_amhs_logs() -> pd.DataFrame:
        return cleaned

    @dg.asset
    def row_count(cleaned_amhs_logs: pd.DataFrame) -> int:
        return len(cleaned_amhs_logs)

    storage = str(tmp_path / "storage")
    dg.materialize([cleaned_amhs_logs], resources={"io_manager": AmhsIOManager(base_dir=storage)})
    upgraded = AmhsIOManager(base_dir=storage, warehouse_dir=str(tmp_path / "warehouse"))
    result = dg.materialize([cleaned_amhs_logs.to_source_asset(), row_count],
                            resources={"io_manager": upgraded}, selection=[row_count])
    assert result.output_for_node("row_count") == len(cleaned)


def test_window_days_are_the_newest_days_and_one_of_lookback(tmp_path):
    for day in ("2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"):
        (tmp_path / f"date={day}").mkdir()
        (tmp_path / f"date={day}" / "part-0.parquet").write_bytes(b"")
    assert window_days(tmp_path, 0) == stored_days(tmp_path)  # 0: all history
    assert window_days(tmp_path, 2) == ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]
    assert window_days(tmp_path, 1.5) == window_days(tmp_path, 2)
    assert window_days(tmp_path, 30) == stored_days(tmp_path)


def test_model_dataset_reads_only_the_window_it_trains_on(tmp_path):
    cleaned, whole = dataset_from_raw(simulated_rows(("A", "B"), days=5))
    warehouse = tmp_path / "warehouse"
    for name, frame in (("cleaned_amhs_logs", cleaned), ("amhs_features", build_features(cleaned)),
                        ("amhs_targets", build_targets(cleaned))):
        write_days(frame, warehouse / name, TZ)
    settings = AmhsSettings.from_values({"data_dir": str(tmp_path),
                                         "splits": {"train_window_days": 2}})
    result = dg.materialize([model_dataset], resources={
        "settings": settings, "io_manager": dg.InMemoryIOManager()})
    ds = result.output_for_node("model_dataset")
    meta = result.asset_materializations_for_node("model_dataset")[0].metadata
    assert meta["warehouse_days_read"].value == 4 < len(stored_days(warehouse / "amhs_features"))
    newest = cleaned["timestamp"].max()
    assert ds.timestamp.min() > newest - pd.Timedelta(days=2)
    # the window starts with its first minute: the day before was read for the lookback
    assert ds.timestamp.min() <= newest - pd.Timedelta(days=2) + pd.Timedelta(minutes=1)
    # the rows of the window are those of the whole history's dataset, usability included
    within = whole.timestamp > newest - pd.Timedelta(days=2)
    assert len(ds.X) <= int(within.sum()) and len(ds.X) > 0.9 * int(within.sum())
    # each row's features are those computed over the whole history (the lookback day is read)
    features = build_features(cleaned)
    keys = pd.MultiIndex.from_arrays([features["line_id"], features["timestamp"]])
    rows = keys.get_indexer(pd.MultiIndex.from_arrays([ds.line_id, ds.timestamp]))
    assert (rows >= 0).all()
    np.testing.assert_array_equal(ds.X, features.iloc[rows, 2:].to_numpy())
    usable = feature_rows_usable(cleaned)
    assert usable[rows].all()  # usability as over the whole history


def test_days_since_a_start_are_contiguous_to_the_newest_with_a_day_of_lookback(tmp_path):
    for day in ("2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"):
        (tmp_path / f"date={day}").mkdir()
        (tmp_path / f"date={day}" / "part-0.parquet").write_bytes(b"")
    # 2026-03-02T20:00Z is 2026-03-03 04:00 in Taipei: its day, the day before, and after
    assert days_since(tmp_path, pd.Timestamp("2026-03-02T20:00Z"), TZ) == [
        "2026-03-02", "2026-03-03", "2026-03-04"]
    assert days_since(tmp_path, pd.Timestamp("2026-02-01T00:00Z"), TZ) == stored_days(tmp_path)
