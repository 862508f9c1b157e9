"""The Parquet warehouse: the data assets by fab-local day, read back exactly as written, by any
Parquet reader, replaced day by day atomically; and the deployment's IO manager that uses it."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from amhs_assets.contract import MAX_FILL_GAP_MIN
from amhs_assets.defs.assets.training import model_dataset
from amhs_assets.defs.io_manager import AmhsIOManager
from amhs_assets.defs.partitions import FEATURES_LOOKBACK, day_partitions, range_tags
from amhs_assets.ingest.clean import stitch_days
from amhs_assets.ingest.days import RawIndex, clean_day, refresh_index
from amhs_assets.defs.resources import AmhsSettings
from amhs_assets.features.compute import build_features, feature_rows_usable
from amhs_assets.features.targets import build_targets
from amhs_assets.models.dataset import dataset_from_raw
from amhs_assets.warehouse import (
    DayFrames,
    DayReader,
    days_since,
    read_days,
    stored_days,
    window_days,
    write_days,
)
from amhs_assets_tests.support import simulated_rows, write_local_days

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


def test_the_io_manager_stores_data_assets_by_day_and_hands_out_day_readers(frames, tmp_path):
    cleaned = frames["cleaned_amhs_logs"]
    local = cleaned["timestamp"].dt.tz_convert(TZ).dt.strftime("%Y-%m-%d")
    days = sorted(local.unique())
    computed = []

    @dg.asset(partitions_def=day_partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def cleaned_amhs_logs(context) -> DayFrames:
        def day(key: str) -> pd.DataFrame:
            computed.append(key)
            return cleaned[(local == key).to_numpy()]
        return DayFrames(list(context.partition_keys), day)

    @dg.asset(partitions_def=day_partitions,
              ins={"cleaned_amhs_logs": dg.AssetIn(partition_mapping=FEATURES_LOOKBACK)})
    def lookback(context, cleaned_amhs_logs: DayReader) -> dict:
        return {"days": cleaned_amhs_logs.days, "rows": len(cleaned_amhs_logs.read())}

    @dg.asset(deps=[cleaned_amhs_logs])
    def row_count(cleaned_amhs_logs: DayReader) -> int:
        return len(cleaned_amhs_logs.read())

    manager = AmhsIOManager(base_dir=str(tmp_path / "storage"),
                            warehouse_dir=str(tmp_path / "warehouse"), timezone=TZ)
    with dg.instance_for_test() as instance:
        result = dg.materialize([cleaned_amhs_logs], resources={"io_manager": manager},
                                instance=instance, tags=range_tags(days[0], days[-1]))
        assert result.success and computed == days  # one step, a day at a time, in order
        root = tmp_path / "warehouse" / "cleaned_amhs_logs"
        pd.testing.assert_frame_equal(read_days(root), cleaned.reset_index(drop=True))
        assert not (tmp_path / "storage" / "cleaned_amhs_logs").exists()  # no pickle of the data
        meta = result.asset_materializations_for_node("cleaned_amhs_logs")[0].metadata
        assert meta["days_written"].value == len(days) and meta["rows_written"].value == len(cleaned)
        one = dg.materialize([cleaned_amhs_logs.to_source_asset(), lookback], selection=[lookback],
                             partition_key=days[1], resources={"io_manager": manager},
                             instance=instance)
        value = one.output_for_node("lookback")
        assert value == {"days": days[:2], "rows": int(local.isin(days[:2]).sum())}
        assert (tmp_path / "storage" / "lookback" / days[1]).is_file()  # the rest pickled

    @dg.asset(name="cleaned_amhs_logs", partitions_def=day_partitions)
    def every_day_in_one(context) -> pd.DataFrame:
        return cleaned

    wrong = dg.materialize([every_day_in_one], partition_key=days[0],
                           resources={"io_manager": manager}, raise_on_error=False)
    assert not wrong.success  # rows of other days never land in a day's file


def test_day_partitions_compute_exactly_what_the_whole_history_computes(tmp_path):
    """Cleaning each fab-local day alone, then stitching a day to its neighbour, gives the
    features and targets of cleaning everything at once, gaps across midnight included; the
    one difference: the filled minutes that end a day before a short gap across midnight have
    targets but no features (a day's features do not read the next day), and the missing
    minutes that start a day after a long gap have features but no targets; neither is a
    usable row."""
    rows = simulated_rows(("A", "B"), days=3)
    local = pd.to_datetime(rows["timestamp"], utc=True).dt.tz_convert(TZ)
    day_of = local.dt.strftime("%Y-%m-%d")
    days = sorted(day_of.unique())
    minute = local.dt.strftime("%H:%M")
    short = (rows["line_id"] == "A") & (day_of == days[1]) & minute.between("23:58", "23:59")
    long_gap = (rows["line_id"] == "B") & (day_of == days[2]) & (minute <= "00:30")
    rows = rows[~(short | long_gap)]  # a filled gap and a missing stretch across midnight
    whole, _ = dataset_from_raw(rows)
    write_local_days(rows, tmp_path / "raw", TZ)
    index, _ = refresh_index(tmp_path / "raw", RawIndex(TZ))
    per_day = {d: clean_day(tmp_path / "raw", index, d, MAX_FILL_GAP_MIN).cleaned for d in days}
    wanted = {d: (whole["timestamp"].dt.tz_convert(TZ).dt.strftime("%Y-%m-%d") == d).to_numpy()
              for d in days}
    for i, d in enumerate(days[1:-1], start=1):
        back = stitch_days([per_day[days[i - 1]], per_day[d]], MAX_FILL_GAP_MIN)
        ahead = stitch_days([per_day[d], per_day[days[i + 1]]], MAX_FILL_GAP_MIN)
        mine = {"features": build_features(back), "targets": build_targets(ahead)}
        theirs = {"features": build_features(whole), "targets": build_targets(whole)}
        for name in mine:
            own = (mine[name]["timestamp"].dt.tz_convert(TZ).dt.strftime("%Y-%m-%d") == d).to_numpy()
            got, expected = mine[name][own], theirs[name][wanted[d]]
            keys = pd.MultiIndex.from_frame(expected[["line_id", "timestamp"]])
            present = keys.isin(pd.MultiIndex.from_frame(got[["line_id", "timestamp"]]))
            absent = whole[wanted[d]][~present]
            # absent: filled minutes that end a day (no features) or missing minutes that start
            # one (targets); neither is ever a usable row
            assert (absent["is_filled"] if name == "features" else absent["is_missing"]).all()
            assert len(absent) == {("features", 1): 2, ("targets", 2): 31}.get((name, i), 0)
            # equal up to float rounding: the prefix sums start at another row
            pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                          expected[present].reset_index(drop=True),
                                          check_exact=False, rtol=1e-4, atol=1e-4)
    stitched = stitch_days([per_day[days[1]], per_day[days[2]]], MAX_FILL_GAP_MIN)
    across = stitched[(stitched["line_id"] == "A") & stitched["is_filled"]]
    assert len(across) >= 2  # the short gap across midnight is filled, as in the whole history
    assert stitched.loc[stitched["line_id"] == "B", "is_missing"].sum() >= 30


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
