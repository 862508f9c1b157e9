"""Benchmark the cleaning of raw logs: a year of one line (525,600 rows in 365 daily CSVs).

Prints the seconds to index the raw folder (every file new: read once, hashed, its days found),
to read and to clean (validate, de-duplicate, regularize), rows per second, and the peak
resident memory. Goal (issue 2): the whole cleaning under 20 s on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

from amhs_assets.ingest.clean import clean_raw_logs
from amhs_assets.ingest.days import RawIndex, refresh_index
from amhs_assets.ingest.files import read_raw_files
from amhs_assets.simulate.lines import (
    DEFAULT_SEED,
    DEFAULT_START,
    simulate_lines,
    write_frame_by_day,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw_dir = Path(tmp) / "raw"
        frame = simulate_lines(["OHT-A"], pd.Timestamp(DEFAULT_START), args.days, DEFAULT_SEED)["OHT-A"]
        files = write_frame_by_day(frame, raw_dir)
        print(f"input: {len(frame):,} rows in {len(files)} CSV files")
        for attempt in range(args.repeat):
            started = time.perf_counter()
            index, _ = refresh_index(raw_dir, RawIndex("Asia/Taipei"))
            print(f"run {attempt + 1}: index {time.perf_counter() - started:.2f} s "
                  f"({len(index.files)} files)")
            started = time.perf_counter()
            raw = read_raw_files(raw_dir)
            read_s = time.perf_counter() - started
            result = clean_raw_logs(raw, 5)
            total_s = time.perf_counter() - started
            q = result.quality
            print(f"run {attempt + 1}: read {read_s:.2f} s, clean {total_s - read_s:.2f} s, "
                  f"total {total_s:.2f} s, {q['rows_read'] / total_s:,.0f} rows/s "
                  f"(clean {q['rows_clean']:,}, quarantined {q['rows_quarantined']:,})")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:,.0f} MiB; goal: total < 20 s")


if __name__ == "__main__":
    main()
