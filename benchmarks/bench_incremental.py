"""Benchmark continuous operation (issue 13), simulated, 12 lines x 60 days by default:

1. the first full materialization of the data assets (ingest_job over every day: cleaned logs,
   features and targets stored by fab-local day) against one new day for every line (what
   raw_data_sensor launches: that day's partitions and the previous day's targets). Goal: the
   new day costs at most 5 % of the full materialization;
2. model_dataset + horizon_models with a 28-day training window on a warehouse of 60 and of 120
   days of history. Goal: peak RSS grows less than 15 % from 60 to 120 days.

Each case runs the real Dagster jobs or assets in a fresh process, so that its time and peak
RSS are its own (the time excludes the interpreter's start and imports, the same for all).

    python benchmarks/bench_incremental.py [--lines 12] [--days 60] [--window 28]
        [--history 60 120] [--skip-data] [--skip-training]
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
DATA_START = "2026-01-05"  # fab-local midnight


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


def simulate_local_days(raw: Path, lines: int, days: int, seed: int) -> list[Path]:
    """`days` whole fab-local days of simulated lines, one CSV per line and local day (loggers
    rotating at local midnight); the paths."""
    from amhs_assets.simulate.lines import line_names, simulate_lines, write_frame_by_day

    start = pd.Timestamp(DATA_START, tz=TZ).tz_convert("UTC")
    paths: list[Path] = []
    for name in line_names(lines):  # a line at a time: the benchmark's own memory stays small
        frame = simulate_lines([name], start, days, seed, progress=False)[name]
        paths.extend(write_frame_by_day(frame, raw, TZ))
    return paths


def _instance_and_definitions(data_dir: str):
    import dagster as dg

    from amhs_assets.definitions import build_definitions
    from amhs_assets.defs.resources import AmhsSettings, MlflowTracking

    settings = AmhsSettings.from_values({"data_dir": data_dir})
    return (dg.DagsterInstance.get(), settings,
            build_definitions(settings, MlflowTracking.for_data_dir(data_dir)))


def ingest_everything(data_dir: str) -> dict:
    """The first full materialization: ingest_job over every day the raw files cover."""
    from amhs_assets.runner import ingest_raw_files

    instance, _, defs = _instance_and_definitions(data_dir)
    started = time.perf_counter()
    assert ingest_raw_files(defs, instance, echo=lambda line: None), "ingest_job failed"
    return _measured(started)


def ingest_new_day(data_dir: str) -> dict:
    """What raw_data_sensor launches for new files: the plan of the changed days, run as the
    backfill daemon runs it (each day's planned assets; days whose logs changed first)."""
    import logging

    import dagster as dg

    from amhs_assets.defs.sensors import ingest_plan
    from amhs_assets.ingest.days import INDEX_FILE, RawIndex

    instance, settings, defs = _instance_and_definitions(data_dir)
    started = time.perf_counter()
    before = RawIndex.load(settings.layout.warehouse / INDEX_FILE, settings.fab_timezone)
    known = set(before.files)
    changed = sorted(str(p.relative_to(settings.raw_dir)) for p in settings.raw_dir.rglob("*.csv")
                     if str(p.relative_to(settings.raw_dir)) not in known)
    plan = ingest_plan(settings, changed, logging.getLogger("bench"))
    job = defs.resolve_implicit_global_asset_job_def()
    days = sorted({d for ds in plan.values() for d in ds},
                  key=lambda d: (d not in plan["cleaned_amhs_logs"], d))
    for day in days:
        assets = ["raw_amhs_logs"] * (day in plan["cleaned_amhs_logs"]) + [
            a for a, ds in plan.items() if day in ds]
        result = job.execute_in_process(instance=instance, partition_key=day,
                                        asset_selection=[dg.AssetKey(a) for a in assets],
                                        raise_on_error=True)
        assert result.success
    return _measured(started) | {"plan": {a: len(ds) for a, ds in plan.items()},
                                 "files": len(changed)}


def _measured(started: float) -> dict:
    return {"seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _case(*args: str, env: dict | None = None) -> dict:
    """One case of this script in a fresh process; its JSON answer."""
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         env=env)
    if out.returncode:
        raise SystemExit(f"case {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_data(lines: int, days: int, seed: int) -> None:
    """Full materialization of the data assets against one new day for every line."""
    import os

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        incoming, raw, home = root / "incoming", root / "data" / "raw", root / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        started = time.perf_counter()
        paths = simulate_local_days(incoming, lines, days + 1, seed)
        newest = max(p.stem.rsplit("_", 1)[-1] for p in paths)
        for path in paths:
            target = raw / path.relative_to(incoming)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not path.stem.endswith(newest):
                path.rename(target)
        print(f"{lines} lines x {days} days simulated as raw CSV per local day "
              f"({time.perf_counter() - started:.0f} s); the new day: {newest}")
        env = os.environ | {"DAGSTER_HOME": str(home), "AMHS_DATA_DIR": str(root / "data")}
        full = _case("--ingest-all", str(root / "data"), env=env)
        print(f"  first full materialization (ingest_job, {days} days): {full['seconds']} s, "
              f"peak RSS {full['peak_rss_mb']} MB")
        for path in incoming.rglob("*.csv"):
            target = raw / path.relative_to(incoming)
            path.rename(target)
        new = _case("--ingest-new", str(root / "data"), env=env)
        print(f"  one new day for every line ({new['files']} files; partitions "
              f"{new['plan']}): {new['seconds']} s, peak RSS {new['peak_rss_mb']} MB")
        share = new["seconds"] / full["seconds"]
        print(f"new day / full materialization: {share:.1%} of the time (goal <= 5 %): "
              f"{'met' if share <= 0.05 else 'NOT met'}")


def bench_training(lines: int, window: float, history: list[int], seed: int) -> None:
    """model_dataset + horizon_models with the window on two lengths of history."""
    results = {}
    for days in history:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            rows = build_warehouse(Path(tmp), lines, days, seed)
            print(f"{lines} lines x {days} days: {rows:,} rows in the warehouse "
                  f"({time.perf_counter() - started:.0f} s to build)")
            results[days] = _case("--train", tmp, "--window", str(window))
            print(f"  model_dataset + horizon_models, {window:g}-day window: "
                  f"{results[days]['seconds']} s, {results[days]['rows']:,} dataset rows, "
                  f"peak RSS {results[days]['peak_rss_mb']} MB")
    small, large = (results[d]["peak_rss_mb"] for d in history)
    growth = large / small - 1
    print(f"peak RSS growth {history[0]} -> {history[1]} days of history: "
          f"{growth:+.1%} (goal < +15 %): {'met' if growth < 0.15 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=12)
    parser.add_argument("--days", type=int, default=60, help="history of the data case")
    parser.add_argument("--window", type=float, default=28)
    parser.add_argument("--history", type=int, nargs=2, default=[60, 120])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-data", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--train", help=argparse.SUPPRESS)  # a case, in its own process
    parser.add_argument("--ingest-all", help=argparse.SUPPRESS)
    parser.add_argument("--ingest-new", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train or args.ingest_all or args.ingest_new:
        answer = (train(args.train, args.window) if args.train else
                  ingest_everything(args.ingest_all) if args.ingest_all else
                  ingest_new_day(args.ingest_new))
        print(json.dumps(answer))
        return
    if not args.skip_data:
        bench_data(args.lines, args.days, args.seed)
    if not args.skip_training:
        bench_training(args.lines, args.window, args.history, args.seed)


if __name__ == "__main__":
    main()
