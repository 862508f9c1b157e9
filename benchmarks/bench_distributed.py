"""Benchmark the production profile (issue 14), on simulated data:

1. a backfill of the day-partitioned data assets (cleaned_amhs_logs, amhs_features,
   amhs_targets) over every day of the raw files, through the Dagster daemon and dagster-celery
   workers of a real `amhs up` stack (PostgreSQL, Redis), first with ONE worker, then with TWO;
   the ratio shows whether the work spreads (on a 2-core machine the run processes and the
   workers share the same two cores, so the ceiling is well under 2x);
2. the XGBoost models of every horizon trained with training_backend=local against dask
   (xgboost.dask) on the same dataset, on the default LocalCluster (one worker) and on a
   cluster of two workers: time and test MAE of each (across workers XGBoost approximates the
   leaf medians of the absolute-error regressors).

    python benchmarks/bench_distributed.py [--lines 6] [--days 8] [--days-per-run 2]
        [--skip-backfill] [--skip-training]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from amhs_assets_tests.support import THRESHOLDS, free_port

DAY_ASSETS = ("cleaned_amhs_logs", "amhs_features", "amhs_targets")


def bench_backfill(lines: int, days: int, days_per_run: int) -> None:
    from amhs_assets.config import read_environment
    from amhs_assets.ingest.days import update_stored_index
    from amhs_assets.simulate.lines import write_simulation
    from amhs_assets.stack import Stack
    from amhs_assets.webserver_client import launch_backfill, wait_for_backfill

    top = Path(tempfile.mkdtemp(prefix="amhs-bench-stack-", dir="/tmp"))
    top.chmod(0o755)
    never = "0 0 1 1 *"
    settings = top / "settings.yaml"
    settings.write_text(yaml.safe_dump({
        "days_per_run": days_per_run, "sensor_interval_s": 86400, "retraining_cron": never,
        "promotion_cron": never, "monitoring_cron": never}))
    stack = Stack(root=top / "stack", data_dir=top / "data", pg_port=free_port(),
                  redis_port=free_port(), mlflow_port=free_port(), dagster_port=free_port(),
                  api_port=free_port(), workers=2, settings_file=settings)
    try:
        started = time.perf_counter()
        stack.up(lambda line: None)
        print(f"stack up (PostgreSQL, Redis, MLflow, Dagster webserver + daemon, 2 workers, "
              f"API): {time.perf_counter() - started:.1f} s")
        write_simulation(stack.data_dir / "raw", lines=lines, days=days, seed=3, progress=False)
        env = read_environment(stack.env())
        _, index = update_stored_index(stack.data_dir / "warehouse", stack.data_dir / "raw",
                                       env.fab_timezone)
        partitions = index.days()
        url = stack.urls()["dagster-webserver"]
        print(f"backfill: {lines} lines x {len(partitions)} fab-local days, "
              f"{days_per_run} day(s) per run, assets {', '.join(DAY_ASSETS)}")
        times = {}
        for workers in (1, 2):
            if workers == 1:
                stack.stop("worker-2")
            else:
                stack.start("worker-2")
            started = time.perf_counter()
            backfill = launch_backfill(url, DAY_ASSETS, partitions, {"amhs/stage": "ingest"})
            status = wait_for_backfill(url, backfill, timeout_s=3600, poll_s=1)
            times[workers] = time.perf_counter() - started
            print(f"  {workers} worker(s): {times[workers]:7.1f} s  ({status})")
        print(f"  speed-up with two workers: {times[1] / times[2]:.2f}x  (cores here: "
              f"{os.cpu_count()})")
    finally:
        stack.down(lambda line: None)
        shutil.rmtree(top, ignore_errors=True)


def bench_training(lines: int, days: int) -> None:
    import pandas as pd

    from amhs_assets.contract import HORIZONS, RAW_COLUMNS
    from amhs_assets.models.dataset import dataset_from_raw
    from amhs_assets.models.xgb import XgbConfig, fit_xgb_model
    from amhs_assets.simulate.lines import line_names, simulate_lines

    frames = simulate_lines(line_names(lines), pd.Timestamp("2026-01-05", tz="UTC"), days, 3)
    raw = pd.concat(frames.values(), ignore_index=True)[list(RAW_COLUMNS)]
    ds = dataset_from_raw(raw, HORIZONS, THRESHOLDS)[1]
    config = XgbConfig(device="cpu")
    print(f"training: {lines} lines x {days} days, {len(ds.X):,} rows x {ds.X.shape[1]} "
          f"features, every horizon's four boosters")
    from distributed import LocalCluster

    two = LocalCluster(n_workers=2, threads_per_worker=max(1, (os.cpu_count() or 2) // 2),
                       dashboard_address=None, silence_logs=logging.ERROR)
    cases = {"local": {}, "dask, LocalCluster of 1 worker (the default)": {
        "training_backend": "dask"}, "dask, cluster of 2 workers": {
        "training_backend": "dask", "dask_address": two.scheduler_address}}
    times = {}
    for backend, changes in cases.items():
        started = time.perf_counter()
        model = fit_xgb_model(ds, dataclasses.replace(config, **changes))
        times[backend] = time.perf_counter() - started
        test = ds.mask("test")
        maes = []
        for h in model.horizons:
            y = ds.target("avg", h)[test]
            known = ~np.isnan(y)
            maes.append(float(np.abs(model.predict(ds.X[test], h)["avg"][known] - y[known]).mean()))
        print(f"  {backend:45s} {times[backend]:6.1f} s  ({times[backend] / times['local']:.2f}x "
              f"local)  test MAE avg by horizon {' / '.join(f'{m:.1f}' for m in maes)}")
    two.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=6)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--days-per-run", type=int, default=2)
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    if not args.skip_backfill:
        bench_backfill(args.lines, args.days, args.days_per_run)
    if not args.skip_training:
        bench_training(args.lines, args.days)


if __name__ == "__main__":
    main()
