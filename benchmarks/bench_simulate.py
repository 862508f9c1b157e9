"""Benchmark the AMHS simulator: a year of one line, and the default 30 days x 3 lines as CSV."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from amhs_assets.simulate.lines import (
    DEFAULT_SEED,
    DEFAULT_START,
    line_names,
    simulate_lines,
    write_simulation,
)


def time_year(days: float, lines: int) -> None:
    """Print seconds and rows per second for `days` of `lines` lines."""
    started = time.perf_counter()
    frames = simulate_lines(line_names(lines), pd.Timestamp(DEFAULT_START), days, DEFAULT_SEED)
    seconds = time.perf_counter() - started
    rows = sum(len(f) for f in frames.values())
    print(f"simulate {days:g} days x {lines} line(s): {seconds:.2f} s, {rows:,} rows, "
          f"{rows / seconds:,.0f} rows/s")


def time_csv(days: int, lines: int) -> None:
    """Print seconds to simulate and write `days` x `lines` as daily CSV files."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = write_simulation(Path(tmp), lines=lines, days=days, progress=False)
        seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in paths) / 2**20
    print(f"write {days} days x {lines} lines: {seconds:.2f} s, {len(paths)} files, {size:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=365.0, help="days of one line to simulate")
    parser.add_argument("--lines", type=int, default=1)
    args = parser.parse_args()
    time_year(args.days, args.lines)
    time_csv(30, 3)


if __name__ == "__main__":
    main()
