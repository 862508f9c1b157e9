"""Ingestion: every kind of bad input is quarantined with file, row and field; nothing is lost."""

from __future__ import annotations

import gzip
import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amhs_assets.contract import FLAG_FILLED, FLAG_MISSING, NUMERIC_COLUMNS, RAW_COLUMNS
from amhs_assets.ingest.clean import clean_raw_logs, write_quarantine
from amhs_assets.ingest.files import read_raw_files
from amhs_assets.ingest.snapshot import RECENT_NS
from amhs_assets_tests.support import valid_rows


def ingest(raw_dir: Path, max_fill_gap: int = 5):
    """Read and clean a raw folder; assert the accounting invariant every time."""
    raw = read_raw_files(raw_dir)
    result = clean_raw_logs(raw, max_fill_gap)
    q = result.quality
    assert q["rows_read"] == q["rows_clean"] + q["rows_quarantined"] + q["rows_duplicate"]
    assert sum(f["rows_read"] for f in q["files"]) == q["rows_read"]
    return raw, result


def file_entry(result, path: str) -> dict:
    return next(f for f in result.quality["files"] if f["path"] == path)


def reasons_of(result, file: str, row: int) -> str:
    q = result.quarantined
    hit = q[(q["_source_file"] == file) & (q["_source_row"] == row)]
    assert len(hit) == 1, f"row {row} of {file} not quarantined exactly once"
    return hit["reasons"].iloc[0]


def test_valid_file_is_clean_and_on_a_utc_minute_grid(data_dir):
    valid_rows(60).to_csv(data_dir / "raw" / "a.csv", index=False)
    _, result = ingest(data_dir / "raw")
    cleaned = result.cleaned
    assert result.quality["rows_clean"] == 60 and result.quality["rows_quarantined"] == 0
    assert list(cleaned.columns[:2]) == ["line_id", "timestamp"]
    assert set(NUMERIC_COLUMNS) <= set(cleaned.columns)
    assert str(cleaned["timestamp"].dt.tz) == "UTC"
    assert (cleaned["timestamp"].diff().dropna() == pd.Timedelta("1min")).all()
    assert file_entry(result, "a.csv")["status"] == "ok"


def test_unparseable_number_quarantines_the_row_naming_file_row_and_field(data_dir):
    frame = valid_rows(10)
    frame["jobs_queued"] = frame["jobs_queued"].astype(object)
    frame.loc[3, "jobs_queued"] = "twelve"
    frame.to_csv(data_dir / "raw" / "a.csv", index=False)
    _, result = ingest(data_dir / "raw")
    assert "jobs_queued: not a number: 'twelve'" in reasons_of(result, "a.csv", 4)
    assert result.quality["rows_clean"] == 9
    assert file_entry(result, "a.csv")["status"] == "partial"


def test_out_of_range_values_are_quarantined_with_every_reason(data_dir):
    frame = valid_rows(10)
    frame.loc[2, "rail_utilization_pct"] = 140.0
    frame.loc[2, "vehicles_active"] = 999  # also above vehicles_total
    frame.loc[5, "pm_active"] = 2
    frame.loc[6, "jobs_queued"] = -1
    frame.to_csv(data_dir / "raw" / "a.csv", index=False)
    _, result = ingest(data_dir / "raw")
    row3 = reasons_of(result, "a.csv", 3)
    assert "rail_utilization_pct: out of range" in row3 and "140" in row3
    assert "vehicles_active <= vehicles_total" in row3
    assert "pm_active" in reasons_of(result, "a.csv", 6)
    assert "jobs_queued" in reasons_of(result, "a.csv", 7)
    assert result.quality["rows_quarantined"] == 3


def test_cross_column_transfer_time_rules(data_dir):
    frame = valid_rows(10)
    done = frame.index[frame["jobs_completed"] > 0]
    frame.loc[done[0], "transfer_time_min_s"] = 10_000.0  # min above avg
    frame.loc[done[1], "transfer_time_avg_s"] = ""  # completions but no transfer time
    frame.to_csv(data_dir / "raw" / "a.csv", index=False)
    _, result = ingest(data_dir / "raw")
    assert "transfer_time_min_s <= transfer_time_avg_s" in reasons_of(result, "a.csv", done[0] + 1)
    second = reasons_of(result, "a.csv", done[1] + 1)
    assert "transfer times present exactly when jobs_completed > 0" in second
    assert "transfer_time_avg_s=empty" in second


def test_missing_column_quarantines_the_file_and_the_others_go_on(data_dir):
    valid_rows(10).drop(columns=["wip_lots"]).to_csv(data_dir / "raw" / "bad.csv", index=False)
    valid_rows(10, line_id="L2").to_csv(data_dir / "raw" / "good.csv", index=False)
    _, result = ingest(data_dir / "raw")
    bad = file_entry(result, "bad.csv")
    assert bad["status"] == "quarantined" and "wip_lots" in bad["reasons"][0]
    assert bad["rows_read"] == 10 and result.quality["rows_quarantined"] == 10
    assert result.quality["rows_clean"] == 10
    assert set(result.cleaned["line_id"]) == {"L2"}


@pytest.mark.parametrize("content", [bytes(range(256)) * 20, b"\x1f\x8b\x08garbage"])
def test_a_binary_file_is_quarantined_whole(data_dir, content):
    (data_dir / "raw" / "junk.csv").write_bytes(content)
    valid_rows(5).to_csv(data_dir / "raw" / "ok.csv", index=False)
    _, result = ingest(data_dir / "raw")
    junk = file_entry(result, "junk.csv")
    assert junk["status"] == "quarantined" and junk["reasons"]
    assert result.quality["rows_clean"] == 5


def test_an_empty_file_is_skipped_while_new_and_quarantined_once_it_rests(data_dir):
    """An empty file changed moments ago is taken for one a writer has just truncated: skipped
    to the next tick; still empty seconds later, it is quarantined whole with the reason."""
    junk = data_dir / "raw" / "junk.csv"
    junk.write_bytes(b"")
    valid_rows(5).to_csv(data_dir / "raw" / "ok.csv", index=False)
    _, result = ingest(data_dir / "raw")
    assert "being written" in result.quality["skipped"][0]["reason"]
    assert "junk.csv" not in [f["path"] for f in result.quality["files"]]
    assert result.quality["rows_clean"] == 5
    time.sleep(max(0.0, junk.stat().st_ctime + RECENT_NS / 1e9 + 0.1 - time.time()))
    _, result = ingest(data_dir / "raw")
    assert result.quality["skipped"] == []
    entry = file_entry(result, "junk.csv")
    assert entry["status"] == "quarantined" and "empty file" in entry["reasons"][0]


def test_truncated_gzip_is_quarantined_whole(data_dir):
    blob = gzip.compress(valid_rows(50).to_csv(index=False).encode())
    (data_dir / "raw" / "cut.csv.gz").write_bytes(blob[: len(blob) // 2])
    _, result = ingest(data_dir / "raw")
    assert file_entry(result, "cut.csv.gz")["status"] == "quarantined"


def test_byte_order_mark_and_crlf_line_ends_are_read(data_dir):
    text = valid_rows(8).to_csv(index=False, lineterminator="\r\n")
    (data_dir / "raw" / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    _, result = ingest(data_dir / "raw")
    assert result.quality["rows_clean"] == 8


def test_extra_and_reordered_columns_are_accepted_and_extras_reported(data_dir):
    frame = valid_rows(8)
    frame["operator_note"] = "x"
    frame = frame[list(reversed(frame.columns))]
    frame.to_csv(data_dir / "raw" / "a.csv", index=False)
    _, result = ingest(data_dir / "raw")
    entry = file_entry(result, "a.csv")
    assert entry["status"] == "ok" and any("operator_note" in r for r in entry["reasons"])
    assert result.quality["rows_clean"] == 8


def test_offsets_are_converted_to_utc_and_naive_means_utc(data_dir):
    frame = valid_rows(3)
    frame["timestamp"] = ["2026-03-01T09:00:00+09:00", "2026-03-01 00:01:00", "2026-03-01T00:02:00Z"]
    frame.to_csv(data_dir / "raw" / "a.csv", index=False)
    _, result = ingest(data_dir / "raw")
    stamps = list(result.cleaned["timestamp"])
    assert stamps == list(pd.date_range("2026-03-01T00:00:00Z", periods=3, freq="min"))


def test_bad_timestamps_are_quarantined(data_dir):
    frame = valid_rows(4)
    frame.loc[1, "timestamp"] = "yesterday"
    frame.loc[2, "timestamp"] = "2026-03-01T00:02:30Z"  # not the start of a minute
    frame.to_csv(data_dir / "raw" / "a.csv", index=False)
    _, result = ingest(data_dir / "raw")
    assert "timestamp: not an ISO 8601 timestamp" in reasons_of(result, "a.csv", 2)
    assert "start of a minute" in reasons_of(result, "a.csv", 3)


def test_identical_duplicates_are_dropped_and_counted(data_dir):
    valid_rows(10).to_csv(data_dir / "raw" / "a.csv", index=False)
    valid_rows(10).to_csv(data_dir / "raw" / "b.csv", index=False)
    _, result = ingest(data_dir / "raw")
    q = result.quality
    assert q["rows_clean"] == 10 and q["rows_duplicate"] == 10 and q["duplicate_conflicts"] == 0


def test_conflicting_duplicates_keep_the_last_file(data_dir):
    first = valid_rows(10)
    second = valid_rows(10)
    second.loc[4, "jobs_queued"] = 777
    (data_dir / "raw" / "z").mkdir()
    first.to_csv(data_dir / "raw" / "z" / "a.csv", index=False)  # "z/a.csv" sorts after "b.csv"
    second.to_csv(data_dir / "raw" / "b.csv", index=False)
    _, result = ingest(data_dir / "raw")
    q = result.quality
    assert q["rows_duplicate"] == 10 and q["duplicate_conflicts"] == 1
    kept = result.cleaned.loc[4, "jobs_queued"]
    assert kept == first.loc[4, "jobs_queued"]
    assert result.duplicates["conflict"].sum() == 1


def test_unsorted_rows_are_sorted_per_line(data_dir):
    frame = pd.concat([valid_rows(20, "L2"), valid_rows(20, "L1")]).sample(frac=1, random_state=3)
    frame.to_csv(data_dir / "raw" / "a.csv", index=False)
    _, result = ingest(data_dir / "raw")
    cleaned = result.cleaned
    assert list(cleaned["line_id"].unique()) == ["L1", "L2"]
    assert cleaned.groupby("line_id")["timestamp"].apply(lambda s: s.is_monotonic_increasing).all()


def test_short_gaps_are_filled_and_flagged_long_gaps_stay_missing(data_dir):
    frame = valid_rows(60)
    keep = np.ones(60, dtype=bool)
    keep[10:15] = False  # 5 minutes: filled
    keep[30:36] = False  # 6 minutes: missing
    frame[keep].to_csv(data_dir / "raw" / "a.csv", index=False)
    _, result = ingest(data_dir / "raw", max_fill_gap=5)
    cleaned = result.cleaned
    assert len(cleaned) == 60
    assert cleaned[FLAG_FILLED].to_numpy().nonzero()[0].tolist() == list(range(10, 15))
    assert cleaned[FLAG_MISSING].to_numpy().nonzero()[0].tolist() == list(range(30, 36))
    assert (cleaned.loc[10:14, "jobs_queued"] == cleaned.loc[9, "jobs_queued"]).all()
    assert cleaned.loc[30:35, list(NUMERIC_COLUMNS)].isna().all().all()
    assert result.quality["rows_filled"] == 5 and result.quality["minutes_missing"] == 6


@pytest.mark.parametrize("line_id", ["../x", "a/b", "", "x" * 65, "<script>", "L 1", "C:\\x"])
def test_hostile_line_ids_are_quarantined(data_dir, line_id):
    frame = valid_rows(3)
    frame.loc[1, "line_id"] = line_id
    frame.to_csv(data_dir / "raw" / "a.csv", index=False)
    _, result = ingest(data_dir / "raw")
    assert "line_id" in reasons_of(result, "a.csv", 2)
    assert set(result.cleaned["line_id"]) == {"L1"}


def test_file_cut_off_mid_row_keeps_the_complete_rows(data_dir):
    text = valid_rows(10).to_csv(index=False)
    (data_dir / "raw" / "cut.csv").write_text(text[: len(text) - 60])
    _, result = ingest(data_dir / "raw")
    assert result.quality["rows_clean"] == 9
    assert "missing value" in reasons_of(result, "cut.csv", 10)


def test_ragged_row_with_too_many_fields_is_quarantined_by_row_number(data_dir):
    lines = valid_rows(6).to_csv(index=False).splitlines()
    lines[3] = lines[3] + ",1,2,3"
    (data_dir / "raw" / "ragged.csv").write_text("\n".join(lines) + "\n")
    _, result = ingest(data_dir / "raw")
    assert "expected 32 fields, found 35" in reasons_of(result, "ragged.csv", 3)
    assert result.quality["rows_clean"] == 5


def test_parquet_and_gzip_files_are_read(data_dir):
    frame = valid_rows(10)
    typed = frame.replace("", np.nan)
    typed["timestamp"] = pd.to_datetime(typed["timestamp"])
    typed.to_parquet(data_dir / "raw" / "a.parquet")
    valid_rows(10, "L2").to_csv(data_dir / "raw" / "b.csv.gz", index=False)
    _, result = ingest(data_dir / "raw")
    assert result.quality["rows_clean"] == 20
    assert {f["status"] for f in result.quality["files"]} == {"ok"}


def test_raw_files_are_never_modified(data_dir):
    frame = valid_rows(10)
    frame.loc[2, "jobs_queued"] = -5
    path = data_dir / "raw" / "a.csv"
    frame.to_csv(path, index=False)
    before = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns
    raw, result = ingest(data_dir / "raw")
    write_quarantine(result, raw.files, data_dir / "quarantine")
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before
    rows = pd.read_csv(data_dir / "quarantine" / "rows.csv")
    assert rows.loc[0, "_source_file"] == "a.csv" and rows.loc[0, "_source_row"] == 3


# pandas writes a bare line break inside a cell unquoted, which makes a different file than the
# frame (one row becomes two): line breaks get their own test below
cells = st.one_of(st.text(st.characters(exclude_characters="\r\n"), max_size=6),
                  st.integers(-5, 10_000).map(str), st.just(""),
                  st.floats(allow_nan=True).map(str))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mutations=st.lists(st.tuples(st.integers(0, 19), st.sampled_from(RAW_COLUMNS), cells),
                       max_size=25),
    duplicate_rows=st.lists(st.integers(0, 19), max_size=5),
    drop_rows=st.lists(st.integers(0, 19), max_size=5),
)
def test_no_row_is_ever_lost(tmp_path_factory, mutations, duplicate_rows, drop_rows):
    raw_dir = tmp_path_factory.mktemp("raw")
    frame = valid_rows(20).astype(object)
    for row, column, value in mutations:
        # a bare year ("1688") is a valid timestamp: one row centuries away makes a grid of
        # billions of minutes when the whole history is cleaned at once (the assets clean a day
        # at a time); keep mutated timestamps on the day, valid or not
        frame.loc[row, column] = f"2026-03-01T{value}" if column == "timestamp" else value
    frame = pd.concat([frame, frame.iloc[duplicate_rows]]).drop(index=drop_rows[:1])
    frame.to_csv(raw_dir / "a.csv", index=False)
    _, result = ingest(raw_dir)
    assert result.quality["rows_read"] == len(frame)
    assert result.quality["rows_clean"] == result.cleaned[
        ~result.cleaned[FLAG_FILLED] & ~result.cleaned[FLAG_MISSING]].shape[0]


def test_a_bare_line_break_inside_a_row_splits_it_and_both_parts_are_quarantined(data_dir):
    lines = valid_rows(5).to_csv(index=False).splitlines()
    cells = lines[2].split(",")
    cells[1] = "L\r1"  # an unquoted carriage return: a line end for every CSV reader
    lines[2] = ",".join(cells)
    (data_dir / "raw" / "cr.csv").write_bytes(("\n".join(lines) + "\n").encode())
    _, result = ingest(data_dir / "raw")
    assert result.quality["rows_read"] == 6 and result.quality["rows_clean"] == 4
    assert result.quality["rows_quarantined"] == 2
