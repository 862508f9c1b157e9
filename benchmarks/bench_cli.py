"""Benchmark the command line's start (issue 17): `amhs --help` and `amhs registry list`, each run
as a real process (interpreter start, imports, the command) a few times; median and range against
the goals (--help under 1 s, registry list under 3 s), with the CPU time each used (which other
processes' load barely changes: on a busy machine compare that).

`registry list` reads a temporary data folder whose embedded MLflow store holds stub versions
with the tags registered_model writes, a champion and a challenger (building the store, a
one-time schema migration of ~10 s, is not timed).

    python benchmarks/bench_cli.py [--runs 5] [--versions 6]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOALS_S = {"amhs --help": 1.0, "amhs registry list": 3.0}
AMHS = Path(sys.executable).with_name("amhs")  # the console script of this environment


def build_store(data: Path, versions: int) -> None:
    """An embedded store under data/mlflow with `versions` stub versions of amhs-predictor."""
    from mlflow import MlflowClient

    from amhs_assets.config import read_environment
    from amhs_assets.contract import CHALLENGER_ALIAS, REGISTERED_MODEL_NAME
    from amhs_assets.registry import store as reg
    from amhs_assets.registry.tags import version_tags

    uri = read_environment().resolved_tracking_uri
    client: MlflowClient = reg.connect(uri)
    experiment = reg.ensure_experiment(client, "amhs", str(data / "mlflow" / "artifacts"))
    run = client.create_run(experiment)
    client.log_text(run.info.run_id, "stub", "model/MLmodel")
    client.set_terminated(run.info.run_id)
    info = type("Info", (), {"model_uri": f"runs:/{run.info.run_id}/model",
                             "run_id": run.info.run_id, "model_id": None})
    for i in range(versions):
        mae = 30.0 - i
        metrics = {f"avg_mae_h{h}": mae * f for h, f in ((10, 0.8), (15, 1.0), (25, 1.2))}
        metrics |= {"mean_avg_mae": mae, "mean_state_accuracy": 0.9,
                    "mean_critical_recall": 0.5}
        window = {"start": "2026-02-05T00:00:00+00:00", "rows": 2000 + 100 * (i // 2),
                  "end": f"2026-02-{5 + i // 2:02d}T23:59:00+00:00"}
        tags = version_tags(kind="xgb", metrics=metrics, window=window, fingerprint="f" * 16,
                            feature_version="1.0.0", code_version="bench",
                            dagster_run_id="bench-run", checks={"xgb_beats_persistence": True},
                            baseline=None)
        reg.register_version(client, REGISTERED_MODEL_NAME, info, tags, "bench stub",
                             (CHALLENGER_ALIAS,))
    reg.promote(client, REGISTERED_MODEL_NAME, "1", "benchmark", "bench", None)


def time_command(args: list[str], env: dict[str, str], runs: int
                 ) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of `runs` runs of the command (each must succeed).
    CPU time barely moves with other processes' load; wall time is what a person waits."""
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([str(AMHS), *args], env=env, check=True, stdout=subprocess.DEVNULL)
        wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs of each command")
    parser.add_argument("--versions", type=int, default=6, help="versions in the store")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "AMHS_DATA_DIR": tmp}
        env.pop("MLFLOW_TRACKING_URI", None)
        os.environ.update({"AMHS_DATA_DIR": tmp})
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        started = time.perf_counter()
        build_store(Path(tmp), args.versions)
        print(f"store with {args.versions} version(s) built in "
              f"{time.perf_counter() - started:.1f} s (not timed below); {os.cpu_count()} CPU(s), "
              f"load average {os.getloadavg()[0]:.2f}")
        for command, goal in GOALS_S.items():
            wall, cpu = time_command(command.split()[1:], env, args.runs)
            median = statistics.median(wall)
            print(f"{command}: median {median:.2f} s wall over {args.runs} runs (min "
                  f"{min(wall):.2f}, max {max(wall):.2f}), {statistics.median(cpu):.2f} s CPU; "
                  f"goal < {goal:g} s: {'met' if median < goal else 'MISSED'}")


if __name__ == "__main__":
    main()
