"""What one raw file may cost, symbolic links, and files that change while they are read."""

from __future__ import annotations

import gzip
import hashlib
import os

import pandas as pd
import pytest

from amhs_assets.contract import TRANSFER_TIME_COLUMNS
from amhs_assets.ingest.clean import clean_raw_logs
from amhs_assets.ingest.days import RawIndex, clean_day, refresh_index
from amhs_assets.ingest.files import CHANGED_SINCE_INDEXED, read_raw_files
from amhs_assets.ingest.limits import FileChanged, FileRejected, IngestConfig
from amhs_assets.ingest.snapshot import survey_raw_folder, take_snapshot
from amhs_assets_tests.support import valid_rows

DAY = "2026-03-01"  # valid_rows start at 2026-03-01T00:00Z, 08:00 in Asia/Taipei
TZ = "Asia/Taipei"


def entry(raw, path: str):
    return next(f for f in raw.files if f.path == path)


def test_a_file_over_the_byte_limit_is_quarantined_whole_unread_and_the_others_go_on(data_dir):
    raw_dir = data_dir / "raw"
    valid_rows(40).to_csv(raw_dir / "big.csv", index=False)
    valid_rows(10, "L2").to_csv(raw_dir / "ok.csv", index=False)
    size = (raw_dir / "big.csv").stat().st_size
    raw = read_raw_files(raw_dir, limits=IngestConfig(max_file_bytes=size - 1))
    big = entry(raw, "big.csv")
    assert big.status == "quarantined" and big.rejected
    assert f"{size:,} bytes" in big.reasons[0] and "ingest.max_file_bytes" in big.reasons[0]
    assert entry(raw, "ok.csv").status == "ok" and len(raw.frame) == 10


def test_a_gzip_that_decompresses_past_the_byte_limit_is_refused(data_dir):
    raw_dir = data_dir / "raw"
    text = valid_rows(200).to_csv(index=False).encode()
    (raw_dir / "bomb.csv.gz").write_bytes(gzip.compress(text))
    raw = read_raw_files(raw_dir, limits=IngestConfig(max_file_bytes=len(text) // 2))
    bomb = entry(raw, "bomb.csv.gz")
    assert bomb.rejected and "decompresses to more bytes" in bomb.reasons[0]
    assert len(read_raw_files(raw_dir).frame) == 200  # within the default limit: read


def test_a_file_over_the_row_limit_is_quarantined_whole_with_its_row_count(data_dir):
    raw_dir = data_dir / "raw"
    valid_rows(50).to_csv(raw_dir / "long.csv", index=False)
    raw = read_raw_files(raw_dir, limits=IngestConfig(max_file_rows=49))
    long = entry(raw, "long.csv")
    assert long.rejected and long.rows_read == long.rows_quarantined == 50
    assert "50 data rows" in long.reasons[0] and "ingest.max_file_rows" in long.reasons[0]
    assert read_raw_files(raw_dir, limits=IngestConfig(max_file_rows=50)).files[0].status == "ok"


@pytest.mark.parametrize("garbage", [b"x,y\n", b"1,2,3,4,5,6,7,8,9,10," * 4 + b"\n"],
                         ids=["short rows", "wide rows"])
def test_a_file_of_mostly_unusable_rows_is_quarantined_whole_after_one_chunk(data_dir, garbage):
    raw_dir = data_dir / "raw"
    header = valid_rows(1).to_csv(index=False).splitlines()[0].encode() + b"\n"
    (raw_dir / "junk.csv").write_bytes(header + garbage * 5000)
    limits = IngestConfig(max_bad_rows=100, chunk_rows=500)
    junk = entry(read_raw_files(raw_dir, limits=limits), "junk.csv")
    assert junk.rejected and junk.rows_read == 5000  # every row counted, all quarantined
    assert "more than 100 unusable rows" in junk.reasons[0] and "row 1 (" in junk.reasons[0]
    # under the limit the same rows are quarantined one by one, each with its reason
    raw = read_raw_files(raw_dir, limits=IngestConfig(max_bad_rows=5000, chunk_rows=500))
    result = clean_raw_logs(raw, 5)
    assert result.quality["rows_quarantined"] == 5000 and not entry(raw, "junk.csv").rejected


def test_a_number_column_of_text_is_typed_chunk_by_chunk_and_its_cells_named(data_dir):
    raw_dir = data_dir / "raw"
    frame = valid_rows(30).astype({"wip_lots": object})
    frame.loc[[3, 25], "wip_lots"] = ["many", "lots"]
    frame.to_csv(raw_dir / "a.csv", index=False)
    raw = read_raw_files(raw_dir, limits=IngestConfig(chunk_rows=7))
    assert raw.frame["wip_lots"].dtype == "float64"
    result = clean_raw_logs(raw, 5)
    reasons = result.quarantined.set_index("_source_row")["reasons"]
    assert "wip_lots: not a number: 'many'" in reasons[4]
    assert "wip_lots: not a number: 'lots'" in reasons[26]
    assert result.quality["rows_clean"] == 28


def test_links_out_of_the_raw_folder_are_refused_and_links_inside_are_read(data_dir, tmp_path):
    raw_dir = data_dir / "raw"
    outside = tmp_path / "outside"
    (outside / "more").mkdir(parents=True)
    valid_rows(5, "SECRET").to_csv(outside / "secret.csv", index=False)
    valid_rows(5, "SECRET").to_csv(outside / "more" / "s.csv", index=False)
    valid_rows(10).to_csv(raw_dir / "real.csv", index=False)
    (raw_dir / "sub").mkdir()
    os.symlink(outside / "secret.csv", raw_dir / "out.csv")
    os.symlink(outside / "more", raw_dir / "folder_out")
    os.symlink(raw_dir / "real.csv", raw_dir / "sub" / "alias.csv")  # inside: read
    os.symlink(raw_dir / "gone.csv", raw_dir / "dangling.csv")
    folder = survey_raw_folder(raw_dir)
    assert [p.relative_to(raw_dir).as_posix() for p in folder.files] == ["real.csv",
                                                                          "sub/alias.csv"]
    assert set(folder.refused) == {"out.csv", "folder_out", "dangling.csv"}
    assert "outside the raw folder: refused, not followed" in folder.refused["out.csv"]
    assert "does not exist" in folder.refused["dangling.csv"]
    raw = read_raw_files(raw_dir)
    assert "SECRET" not in set(raw.frame["line_id"]) and len(raw.frame) == 20
    index, _ = refresh_index(raw_dir, RawIndex(TZ))
    assert index.files["out.csv"].rejected == folder.refused["out.csv"]
    assert index.files["out.csv"].sha256 == "" and "out.csv" in index.rejected()


def test_a_link_swapped_in_after_the_survey_is_caught_when_opened(data_dir, tmp_path):
    raw_dir = data_dir / "raw"
    valid_rows(5).to_csv(tmp_path / "secret.csv", index=False)
    path = raw_dir / "a.csv"
    os.symlink(tmp_path / "secret.csv", path)
    with pytest.raises(FileRejected, match="outside the raw folder"):
        take_snapshot(path, raw_dir, IngestConfig())


def test_a_file_rewritten_while_it_is_read_is_skipped_not_half_read(data_dir):
    raw_dir = data_dir / "raw"
    path = raw_dir / "a.csv"
    valid_rows(60).to_csv(path, index=False)
    whole = path.read_bytes()

    def tear() -> None:  # another process rewrites the file: half of it, cut mid-row
        path.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(FileChanged, match="changed while it was read"):
        take_snapshot(path, raw_dir, IngestConfig(), between=tear)
    snapshot = take_snapshot(path, raw_dir, IngestConfig())  # still: read whole, as it is now
    assert snapshot.data == whole[: len(whole) // 2]
    assert snapshot.sha256 == hashlib.sha256(snapshot.data).hexdigest()


def test_a_file_caught_between_a_writers_truncate_and_its_writes_is_skipped(data_dir):
    """A writer truncates, then writes: an empty file changed moments ago is one being written,
    skipped, not quarantined as empty; once it rests it is read (and refused) as it is."""
    raw_dir = data_dir / "raw"
    path = raw_dir / "a.csv"
    path.write_bytes(b"")
    with pytest.raises(FileChanged, match="being written"):
        take_snapshot(path, raw_dir, IngestConfig())
    rested = path.stat().st_mtime_ns - 10 * 10**9
    os.utime(path, ns=(rested, rested))  # the ctime stays recent: still taken for being written
    with pytest.raises(FileChanged, match="being written"):
        take_snapshot(path, raw_dir, IngestConfig())


def test_a_recent_file_written_again_before_its_second_read_is_skipped(data_dir, monkeypatch):
    """The second read of a file changed moments ago comes after a pause; a write in the pause
    (here: the same bytes again, so only the file's times tell) skips it."""
    import amhs_assets.ingest.snapshot as snapshot_module

    raw_dir = data_dir / "raw"
    path = raw_dir / "a.csv"
    valid_rows(20).to_csv(path, index=False)
    whole = path.read_bytes()
    pause = snapshot_module.time.sleep

    def write_in_the_pause(seconds: float) -> None:
        pause(0.01)  # past the clock's granularity
        path.write_bytes(whole)

    monkeypatch.setattr(snapshot_module.time, "sleep", write_in_the_pause)
    with pytest.raises(FileChanged, match="two reads differ"):
        take_snapshot(path, raw_dir, IngestConfig())
    monkeypatch.setattr(snapshot_module.time, "sleep", pause)
    assert take_snapshot(path, raw_dir, IngestConfig()).data == whole


def test_a_file_changed_after_indexing_is_skipped_by_the_cleaning_with_the_reason(data_dir):
    raw_dir = data_dir / "raw"
    path = raw_dir / "a.csv"
    valid_rows(60).to_csv(path, index=False)
    valid_rows(60, "L2").to_csv(raw_dir / "b.csv", index=False)
    index, _ = refresh_index(raw_dir, RawIndex(TZ))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # torn: 718 rows and half of one, as in the issue
    result = clean_day(raw_dir, index, DAY, 5)
    assert result.quality["skipped"] == [{"path": "a.csv", "reason": CHANGED_SINCE_INDEXED}]
    assert set(result.cleaned["line_id"].dropna()) == {"L2"}  # nothing of the torn file
    assert [f["path"] for f in result.quality["files"]] == ["b.csv"]
    # the next refresh hashes what is there now, and the cleaning reads that
    index, changed = refresh_index(raw_dir, index)
    assert changed == ["a.csv"]
    assert index.files["a.csv"].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    again = clean_day(raw_dir, index, DAY, 5)
    assert again.quality["skipped"] == []
    torn = next(f for f in again.quality["files"] if f["path"] == "a.csv")
    assert torn["status"] == "partial" and torn["rows_quarantined"] == 1  # the cut row, named


def test_changed_limits_read_every_file_again(data_dir):
    raw_dir = data_dir / "raw"
    valid_rows(50).to_csv(raw_dir / "a.csv", index=False)
    index, _ = refresh_index(raw_dir, RawIndex(TZ))
    assert not index.files["a.csv"].rejected
    stricter, changed = refresh_index(raw_dir, index, limits=IngestConfig(max_file_rows=10))
    assert changed == ["a.csv"] and "ingest.max_file_rows" in stricter.files["a.csv"].rejected


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="ingest.max_file_rows must be at least 1"):
        IngestConfig(max_file_rows=0)
    with pytest.raises(ValueError, match="ingest.max_bad_rows"):
        IngestConfig(max_bad_rows=-1)


def test_a_parquet_file_is_read_in_batches_within_the_limits(data_dir):
    raw_dir = data_dir / "raw"
    frame = valid_rows(30)
    frame[list(TRANSFER_TIME_COLUMNS)] = frame[list(TRANSFER_TIME_COLUMNS)].apply(pd.to_numeric,
                                                                      errors="coerce")
    frame.to_parquet(raw_dir / "a.parquet")
    raw = read_raw_files(raw_dir, limits=IngestConfig(chunk_rows=4))
    assert len(raw.frame) == 30 and list(raw.frame["_source_row"]) == list(range(1, 31))
    pd.testing.assert_series_equal(raw.frame["wip_lots"], frame["wip_lots"].astype(float),
                                   check_names=False)
    over = entry(read_raw_files(raw_dir, limits=IngestConfig(max_file_rows=29)), "a.parquet")
    assert over.rejected and "30 data rows" in over.reasons[0]
