"""Benchmark a bounded training window: model_dataset + horizon_models with a 28-day window on a
warehouse of 60 and of 120 days of history (issue 13).

Goal: peak RSS of training with the window grows less than 15 % from 60 to 120 days of history
(model_dataset reads only the window and a day of lookback from the warehouse). Each case runs
the real Dagster assets in a fresh process, so that its peak RSS is its own.

Not measured yet: the first full materialization of the data assets and one new day for every
line, against each other (goal: the new day costs at most 5 %): that needs the day partitions of
cleaned_amhs_logs, amhs_features and amhs_targets, which are not built yet.

    python benchmarks/bench_incremental.py [--lines 12] [--window 28] [--history 60 120]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TZ = "Asia/Taipei"


def build_warehouse(root: Path, lines: int, days: int, seed: int) -> int:
    """Simulated lines -> cleaned grid, features and targets in the warehouse; rows."""
    from amhs_assets.contract import MAX_FILL_GAP_MIN, NUMERIC_COLUMNS, RAW_COLUMNS
    from amhs_assets.features.compute import build_features
    from amhs_assets.features.targets import build_targets
    from amhs_assets.ingest.clean import regularize
    from amhs_assets.simulate.lines import line_names, simulate_lines

    rows = 0
    for name in line_names(lines):  # a line at a time: the benchmark's own memory stays small
        raw = simulate_lines([name], pd.Timestamp("2026-01-05"), days, seed)[name]
        typed = raw.astype({c: "float64" for c in NUMERIC_COLUMNS})[list(RAW_COLUMNS)]
        cleaned = regularize(typed, MAX_FILL_GAP_MIN)
        for asset, frame in (("cleaned_amhs_logs", cleaned),
                             ("amhs_features", build_features(cleaned)),
                             ("amhs_targets", build_targets(cleaned))):
            _merge_line(root / "warehouse" / asset, frame)
        rows += len(cleaned)
    return rows


def _merge_line(root: Path, frame: pd.DataFrame) -> None:
    """Add one line's rows to each day of a dataset (days written line after line)."""
    from amhs_assets.warehouse import read_days, stored_days, write_days

    days = set(stored_days(root))
    local = frame["timestamp"].dt.tz_convert(TZ).dt.strftime("%Y-%m-%d")
    for day, part in frame.groupby(local.to_numpy()):
        if day in days:
            part = pd.concat([read_days(root, [day]), part], ignore_index=True)
        write_days(part, root, TZ)


def train(data_dir: str, window: float) -> dict:
    """model_dataset + horizon_models (every horizon) with the window, in this process."""
    import dagster as dg

    from amhs_assets.defs.assets.training import horizon_models, model_dataset
    from amhs_assets.defs.resources import AmhsSettings, MlflowTracking

    settings = AmhsSettings.from_values({"data_dir": data_dir,
                                         "splits": {"train_window_days": window}})
    started = time.perf_counter()
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [model_dataset, horizon_models], instance=instance,
            resources={"settings": settings, "mlflow": MlflowTracking.for_data_dir(data_dir),
                       "io_manager": dg.InMemoryIOManager()},
            tags={"dagster/asset_partition_range_start": "10",
                  "dagster/asset_partition_range_end": "25"})
    ds = result.output_for_node("model_dataset")
    return {"seconds": round(time.perf_counter() - started, 1), "rows": int(len(ds.X)),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=12)
    parser.add_argument("--window", type=float, default=28)
    parser.add_argument("--history", type=int, nargs=2, default=[60, 120])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--train", help=argparse.SUPPRESS)  # a case, in its own process
    args = parser.parse_args()
    if args.train:
        print(json.dumps(train(args.train, args.window)))
        return
    results = {}
    for days in args.history:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            rows = build_warehouse(Path(tmp), args.lines, days, args.seed)
            print(f"{args.lines} lines x {days} days: {rows:,} rows in the warehouse "
                  f"({time.perf_counter() - started:.0f} s to build)")
            out = subprocess.run([sys.executable, __file__, "--train", tmp,
                                  "--window", str(args.window)],
                                 capture_output=True, text=True, check=True)
            results[days] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  model_dataset + horizon_models, {args.window:g}-day window: "
                  f"{results[days]['seconds']} s, {results[days]['rows']:,} dataset rows, "
                  f"peak RSS {results[days]['peak_rss_mb']} MB")
    small, large = (results[d]["peak_rss_mb"] for d in args.history)
    growth = large / small - 1
    print(f"peak RSS growth {args.history[0]} -> {args.history[1]} days of history: "
          f"{growth:+.1%} (goal < +15 %): {'met' if growth < 0.15 else 'NOT met'}")


if __name__ == "__main__":
    main()
