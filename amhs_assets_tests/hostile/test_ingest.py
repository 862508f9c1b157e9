"""Hostile raw files against the real ingest (raw_amhs_logs and cleaned_amhs_logs materialized
in their own process): a 5 M-row garbage file, a file rewritten while it is read, links out of
the raw folder."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amhs_assets_tests.support import valid_rows

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
DAY = "2026-03-01"  # valid_rows start at 2026-03-01T00:00Z, 08:00 in the fab (Asia/Taipei)
# materialize the ingest of one day in this process, then say what happened and the peak RSS
SCRIPT = """
import json, resource, sys
from pathlib import Path
from amhs_assets_tests.defs.test_ingest_assets import materialize_ingest
result, checks, cleaned = materialize_ingest(Path(sys.argv[1]), **json.loads(sys.argv[2]))
print(json.dumps({"success": result.success, "lines": sorted(set(cleaned.get("line_id", []))),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def ingest_in_a_process(data_dir: Path, **settings) -> dict:
    """Materialize the day's ingest in a fresh Python process; its answer and data_quality.json."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(data_dir), json.dumps(settings)],
                          capture_output=True, text=True, timeout=540,
                          env={**os.environ, "DAGSTER_HOME": str(data_dir / "dagster")})
    assert done.returncode == 0, done.stderr[-4000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    answer["seconds"] = time.perf_counter() - started
    answer["quality"] = json.loads((data_dir / "reports" / "data_quality.json").read_text())
    return answer


def files_of(quality: dict) -> dict[str, dict]:
    return {f["path"]: f for f in quality["files"]}


def garbage_file(path: Path, rows: int = 5_000_000) -> None:
    """The contract's header, then `rows` lines of garbage (~65 MB): short, wide, empty-ish."""
    header = valid_rows(1).to_csv(index=False).splitlines()[0].encode() + b"\n"
    wide = b",".join([b"9"] * 40) + b"\n"  # wider than the header: the tolerant reader
    block = b"x,y\n" b"zz\n" b"nan,,,\n" + wide + b"q\n" b"1,2\n" b"-\n" b"a;b\n" b"b,c\n" b"7\n"
    per = block.count(b"\n")
    with path.open("wb") as handle:
        handle.write(header)
        handle.write(block * (rows // per))


@pytest.mark.parametrize("settings", [{}, {"ingest": {"max_file_rows": 10_000_000}}],
                         ids=["row limit", "bad-row limit"])
def test_a_5m_row_garbage_file_is_quarantined_whole_in_bounded_memory(data_dir, settings):
    raw = data_dir / "raw"
    garbage_file(raw / "garbage.csv")
    valid_rows(120).to_csv(raw / "good.csv", index=False)
    size = (raw / "garbage.csv").stat().st_size
    answer = ingest_in_a_process(data_dir, **settings)
    files = files_of(answer["quality"])
    print(f"\n{size / 1e6:.0f} MB garbage file ({settings or 'default limits'}): quarantined in "
          f"{answer['seconds']:.1f} s (process start included), peak RSS {answer['peak_mib']:.0f} MiB")
    assert answer["success"] and answer["lines"] == ["L1"]  # the good file goes on
    assert files["good.csv"]["status"] == "ok" and files["good.csv"]["rows_read"] == 120
    garbage = files["garbage.csv"]
    assert garbage["status"] == "quarantined"
    limit = "ingest.max_bad_rows" if settings else "ingest.max_file_rows"
    assert limit in garbage["reasons"][0], garbage["reasons"]
    assert answer["peak_mib"] < 1024
    quarantined = (data_dir / "quarantine" / "files.csv").read_text()
    assert "garbage.csv" in quarantined  # the whole file is listed with its reason
    assert (raw / "garbage.csv").stat().st_size == size  # never changed


REWRITER = """
import os, sys, time
path, a, b, stop = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read(), sys.argv[4]
n = 0
while not os.path.exists(stop):
    data = (a, b)[n % 2]
    with open(path, "wb") as handle:  # truncate, then the content in four writes
        for k in range(4):
            handle.write(data[k * len(data) // 4:(k + 1) * len(data) // 4])
            handle.flush()
    n += 1
print(n)
"""


def test_a_file_rewritten_during_the_ingest_is_never_half_ingested(data_dir, tmp_path):
    """Another process rewrites a raw file (truncate, then four writes) in a tight loop while
    the ingest runs: the file is either skipped with the reason or ingested whole as one of its
    versions, and the hash recorded is that version's; once it rests, the next run reads it."""
    raw = data_dir / "raw"
    versions = {}
    for name, seed in (("a", 1), ("b", 2)):
        versions[name] = tmp_path / f"{name}.csv"
        valid_rows(400, seed=seed).to_csv(versions[name], index=False)
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in versions.values()}
    valid_rows(60, "L2").to_csv(raw / "steady.csv", index=False)
    target, stop = raw / "moving.csv", tmp_path / "stop"
    target.write_bytes(versions["a"].read_bytes())
    writer = subprocess.Popen([sys.executable, "-c", REWRITER, str(target),
                               str(versions["a"]), str(versions["b"]), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    try:
        answer = ingest_in_a_process(data_dir)
    finally:
        stop.touch()
        rewrites = int(writer.communicate(timeout=30)[0])
    quality = answer["quality"]
    index = json.loads((data_dir / "warehouse" / "_raw_index.json").read_text())["files"]
    skipped = {s["path"]: s["reason"] for s in quality["skipped"]}
    print(f"\n{rewrites} rewrites during the run; moving.csv "
          f"{'skipped: ' + skipped['moving.csv'] if 'moving.csv' in skipped else 'ingested whole'}")
    assert rewrites > 10 and answer["success"] and "L2" in answer["lines"]
    moving = files_of(quality).get("moving.csv")
    if "moving.csv" in skipped:
        assert "skipped" in skipped["moving.csv"] and "next tick" in skipped["moving.csv"]
        assert moving is None or moving["rows_read"] in (0, 400)
    else:  # read between two rewrites: one whole version, its own hash recorded
        assert moving["rows_read"] == 400 and moving["rows_quarantined"] == 0
        assert index["moving.csv"]["sha256"] in digests
    # at rest, the next run reads the file whole and records the hash of what it read
    answer = ingest_in_a_process(data_dir)
    index = json.loads((data_dir / "warehouse" / "_raw_index.json").read_text())["files"]
    assert answer["quality"]["skipped"] == []
    assert files_of(answer["quality"])["moving.csv"]["rows_read"] == 400
    assert index["moving.csv"]["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()


def test_a_link_out_of_the_raw_folder_is_refused_and_never_read(data_dir, tmp_path):
    raw = data_dir / "raw"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    valid_rows(30, "SECRET").to_csv(outside / "secret.csv", index=False)
    valid_rows(30).to_csv(raw / "good.csv", index=False)
    os.symlink(outside / "secret.csv", raw / "linked.csv")
    os.symlink(outside, raw / "linked_folder")
    answer = ingest_in_a_process(data_dir)
    assert answer["success"] and answer["lines"] == ["L1"]  # nothing of SECRET
    files = files_of(answer["quality"])
    assert files["linked.csv"]["status"] == "quarantined"
    assert "outside the raw folder: refused, not followed" in files["linked.csv"]["reasons"][0]
    assert "linked_folder/secret.csv" not in files
