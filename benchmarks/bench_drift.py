"""Benchmark of drift detection on simulated lines: false alarms on ordinary days, detection of a
regime change, Evidently's defaults for comparison, and run time.

    python benchmarks/bench_drift.py [--seeds 1 2 3] [--lines 2] [--ordinary-days 7] [--html]
                                     [--defaults]

Per seed: days 14 .. 14+N-1 of one regime, each against the 14 days before it, and day 14 of a
run whose regime changes on day 14 (more demand, fewer vehicles). Prints the share of drifted
(line, column) pairs with our calibrated thresholds and with Evidently's default method and
threshold per column (no calibration), and the seconds to calibrate + detect.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType

from amhs_assets.contract import NUMERIC_COLUMNS, RAW_COLUMNS
from amhs_assets.ingest.clean import regularize
from amhs_assets.monitoring.drift import detect_drift
from amhs_assets.monitoring.drift_calibration import DriftConfig
from amhs_assets.simulate.lines import line_names, simulate_lines

START = pd.Timestamp("2026-02-02", tz="UTC")
REFERENCE_DAYS = 14


def cleaned(lines: list[str], seed: int, days: int, drift_day: int | None) -> pd.DataFrame:
    raw = pd.concat(simulate_lines(lines, START, days, seed, drift_day=drift_day).values())
    return regularize(raw.astype({c: "float64" for c in NUMERIC_COLUMNS})[list(RAW_COLUMNS)], 5)


def windows(frame: pd.DataFrame, day: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    t, first = frame["timestamp"], START + pd.Timedelta(days=day)
    return (frame[(t >= first - pd.Timedelta(days=REFERENCE_DAYS)) & (t < first)],
            frame[(t >= first) & (t < first + pd.Timedelta(days=1))])


def default_share(reference: pd.DataFrame, current: pd.DataFrame, columns: tuple[str, ...]
                  ) -> float:
    """Share of (line, column) pairs Evidently's default method and threshold call drifted."""
    drifted = []
    for line, ref in reference.groupby("line_id"):
        cur = current[current["line_id"] == line]
        for column in columns:
            r, c = ref[column].dropna(), cur[column].dropna()
            test = get_stattest(r, c, ColumnType.Numerical, None)
            drifted.append(bool(test(r, c, ColumnType.Numerical, None).drifted))
    return float(np.mean(drifted))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--lines", type=int, default=2)
    parser.add_argument("--ordinary-days", type=int, default=7)
    parser.add_argument("--html", action="store_true", help="also time the Evidently HTML report")
    parser.add_argument("--defaults", action="store_true",
                        help="also score Evidently's default method and threshold (slow)")
    args = parser.parse_args()
    config, lines = DriftConfig(), line_names(args.lines)
    print(f"{args.lines} lines, {REFERENCE_DAYS}-day reference, drift_share {config.drift_share}, "
          f"margin {config.threshold_margin}")
    print(f"{'seed':>4} {'case':>9} {'share':>6} {'drift':>6} {'target':>6} {'default':>8} "
          f"{'sec':>5}")
    timings = []
    for seed in args.seeds:
        same = cleaned(lines, seed, REFERENCE_DAYS + args.ordinary_days, None)
        changed = cleaned(lines, seed, REFERENCE_DAYS + 1, REFERENCE_DAYS)
        days = range(REFERENCE_DAYS, REFERENCE_DAYS + args.ordinary_days)
        cases = [(f"day {d}", same, d) for d in days]
        for name, frame, day in [*cases, ("drift 14", changed, REFERENCE_DAYS)]:
            reference, current = windows(frame, day)
            tic = time.perf_counter()
            result = detect_drift(reference, current, config)
            timings.append(time.perf_counter() - tic)
            doc = result.document
            default = default_share(reference, current, config.columns) if args.defaults else np.nan
            print(f"{seed:>4} {name:>9} {doc['share_drifted']:>6.3f} "
                  f"{str(doc['drift_detected']):>6} {str(doc['target']['drifted']):>6} "
                  f"{default:>8.3f} {timings[-1]:>5.2f}")
    print(f"calibrate + detect: median {np.median(timings):.2f} s, max {np.max(timings):.2f} s")
    if args.html:
        tic = time.perf_counter()
        size = len(result.html)
        print(f"Evidently HTML report: {time.perf_counter() - tic:.1f} s, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
