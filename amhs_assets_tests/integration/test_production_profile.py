"""The production profile as `amhs up` starts it: a real PostgreSQL (Debian's package, initdb
in a temporary folder, run as a non-root OS user), a real Redis, the MLflow server on
PostgreSQL with proxied artifacts, the Dagster webserver and daemon on PostgreSQL, two
dagster-celery workers and the API.

- A backfill of the day-partitioned data assets over every day of the raw files runs a day
  per run; the step events show that both workers executed steps.
- A worker killed (SIGKILL, the whole process group) in the middle of a step, and the daemon
  killed and restarted, lose no partition: the interrupted step runs again and every day of
  every asset is materialised.
- A model registered through the MLflow server lands in PostgreSQL and in the proxied artifact
  folder, and the API (MLFLOW_TRACKING_URI only) serves it as champion.
- `down` leaves no process behind.

Skipped, with the reason, only when PostgreSQL or Redis cannot be installed.
"""

from __future__ import annotations

import os
import shutil
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

from amhs_assets.stack import POOL_LIMITS, Stack, StackError, postgres_bin_dir
from amhs_assets_tests.support import (
    free_port,
    json_records,
    register_version,
    simulated_rows,
    train_tiny_predictor,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

DAY_ASSETS = ("cleaned_amhs_logs", "amhs_features", "amhs_targets")
VISIBILITY_S = 25  # a killed worker's step is handed out again after this (test only)
TOKEN = "prod-profile-token"


def _services_or_skip() -> None:
    """PostgreSQL and Redis from Debian's packages, installed when missing; skip if they
    cannot be."""
    def missing() -> list[str]:
        wanted = [] if shutil.which("redis-server") else ["redis-server"]
        try:
            postgres_bin_dir()
        except StackError:
            wanted.append("postgresql")
        return wanted

    if not missing():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        for cmd in (["apt-get", "install", "-y", "-qq", *missing()], ["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", *missing()]):
            subprocess.run(cmd, capture_output=True, timeout=900,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
            if not missing():
                return
    pytest.skip(f"cannot install {', '.join(missing())} (apt-get install failed or no root): "
                "the production profile needs a real PostgreSQL and Redis")


@pytest.fixture(scope="module")
def stack():
    _services_or_skip()
    top = Path(tempfile.mkdtemp(prefix="amhs-stack-", dir="/tmp"))
    top.chmod(0o755)  # the PostgreSQL user walks through it
    settings = top / "settings.yaml"
    never = "0 0 1 1 *"  # no schedule fires during the test
    settings.write_text(yaml.safe_dump({
        "days_per_run": 1, "sensor_interval_s": 86400, "retraining_cron": never,
        "promotion_cron": never, "monitoring_cron": never}))
    celery = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "celery.yaml").read_text())
    celery["execution"]["config"]["config_source"]["broker_transport_options"][
        "visibility_timeout"] = VISIBILITY_S
    (top / "celery.yaml").write_text(yaml.safe_dump(celery))
    st = Stack(root=top / "stack", data_dir=top / "data", pg_port=free_port(),
               redis_port=free_port(), mlflow_port=free_port(), dagster_port=free_port(),
               api_port=free_port(), workers=2, settings_file=settings,
               celery_config=top / "celery.yaml",
               extra_env={"AMHS_RELOAD_INTERVAL_S": "2", "AMHS_API_TOKEN": TOKEN})
    saved = dict(os.environ)
    try:
        st.up()
        os.environ.update(st.env())  # the test's own DagsterInstance reads the same storage
        yield st
    finally:
        st.down()
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(top, ignore_errors=True)


def _instance(stack: Stack):
    import dagster as dg

    return dg.DagsterInstance.from_config(str(stack.dagster_home))


def _worker_steps(instance, backfill_id: str) -> list[tuple[str, str, str]]:
    """(run id, step key, Celery worker) of every step a worker took, from the step events."""
    import dagster as dg

    found = []
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    for run in runs:
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            metadata = entry.dagster_event.event_specific_data.metadata
            if "Celery worker" in metadata:
                found.append((run.run_id, entry.step_key, metadata["Celery worker"].value))
    return found


def _succeeded(instance, run_id: str, step_key: str) -> bool:
    import dagster as dg

    return any(e.step_key == step_key for e in
               instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS))


def _kill_group(pid: int) -> None:
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _days_of_raw_files(stack: Stack) -> list[str]:
    from amhs_assets.config import read_environment
    from amhs_assets.ingest.days import update_stored_index

    env = read_environment(stack.env())
    _, index = update_stored_index(stack.data_dir / "warehouse", stack.data_dir / "raw",
                                   env.fab_timezone)
    return index.days()


def test_backfill_spreads_over_both_workers_and_survives_a_killed_worker_and_daemon(stack):
    import dagster as dg

    from amhs_assets.simulate.lines import write_simulation
    from amhs_assets.webserver_client import wait_for_backfill

    write_simulation(stack.data_dir / "raw", lines=2, days=2, seed=11)
    days = _days_of_raw_files(stack)
    assert len(days) >= 3, days  # 2 UTC days span 3 fab-local (UTC+8) days
    url = stack.urls()["dagster-webserver"]
    launched = subprocess.run(  # as a user would: `amhs backfill` against the webserver
        [sys.executable, "-c", "from amhs_assets.cli import main; main()", "backfill",
         "--url", url], env={**os.environ, **stack.env()}, capture_output=True, text=True,
        timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]
    backfill = re.search(r"backfill (\w+): (\d+) day", launched.stdout).group(1)
    assert f"{len(days)} day(s), {days[0]} to {days[-1]}" in launched.stdout
    instance = _instance(stack)
    for pool, limit in POOL_LIMITS.items():  # amhs up set the pools' limits in PostgreSQL
        assert instance.event_log_storage.get_concurrency_info(pool).slot_count == limit

    # a step in flight on worker-1: kill the whole worker (its pool child included), start it
    # again; kill the daemon (its run processes go on) and start it again
    victim, deadline = None, time.monotonic() + 300
    while victim is None and time.monotonic() < deadline:
        for run_id, step, worker in _worker_steps(instance, backfill):
            if worker.startswith("worker-1@") and not _succeeded(instance, run_id, step):
                victim = (run_id, step)
                break
        else:
            time.sleep(0.3)
    assert victim is not None, "worker-1 never took a step"
    _kill_group(stack.pid("worker-1"))
    killed_at = time.time()
    daemon = stack.pid("dagster-daemon")
    os.kill(daemon, signal.SIGKILL)
    stack.start("worker-1")
    stack.start("dagster-daemon")

    status = wait_for_backfill(url, backfill, timeout_s=900, poll_s=3)
    assert status == "COMPLETED_SUCCESS", (status, stack.new_log("dagster-daemon")[-3000:])

    # no partition lost: every day of every asset is materialised and stored
    for asset in DAY_ASSETS:
        materialized = instance.get_materialized_partitions(dg.AssetKey(asset))
        assert set(days) <= materialized, (asset, sorted(set(days) - materialized))
    stored = {p.parent.name.removeprefix("date=") for p in
              (stack.data_dir / "warehouse" / "amhs_features").glob("date=*/part-0.parquet")}
    assert stored == set(days)

    # the work spread: both workers executed steps
    steps = _worker_steps(instance, backfill)
    workers = {w.split("@")[0] for _, _, w in steps}
    assert workers == {"worker-1", "worker-2"}, steps
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill}))
    assert len(runs) >= len(days), "a day per run (days_per_run: 1)"
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)

    # the interrupted step ran again after the kill, and succeeded
    run_id, step = victim
    again = [e for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
             if e.step_key == step and "Celery worker" in
             e.dagster_event.event_specific_data.metadata and e.timestamp > killed_at]
    finished = [e for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
                if e.step_key == step]
    assert finished, f"{step} of run {run_id} never succeeded"
    print(f"killed worker-1 during {step} of run {run_id[:8]}: handed out again "
          f"{len(again)} time(s), succeeded {finished[0].timestamp - killed_at:+.1f} s after")
    if finished[0].timestamp > killed_at:  # it was in flight when the worker died
        assert again, f"{step} was not handed out again after worker-1 died"


def test_a_model_registered_through_the_mlflow_server_is_served_by_the_api(stack):
    from mlflow import MlflowClient

    from amhs_assets.contract import REGISTERED_MODEL_NAME
    from amhs_assets_tests.support import EXPERIMENT

    uri = stack.urls()["mlflow"]
    client = MlflowClient(uri, uri)
    client.create_experiment(EXPERIMENT)  # the server chooses where artifacts go: proxied
    raw = simulated_rows(days=2)
    version = register_version(train_tiny_predictor(raw), raw, uri, stack.root / "work")

    # the registry is PostgreSQL's, the files are in the server's artifact folder
    with stack.pg_connect("mlflow") as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM model_versions WHERE name = %s", (REGISTERED_MODEL_NAME,))
        assert [str(v) for (v,) in cur.fetchall()] == [version]
    assert list((stack.root / "mlflow-artifacts").rglob("MLmodel")), "artifacts not proxied"
    assert not (stack.root / "work" / "artifacts").exists()

    # the API reaches the registry through MLFLOW_TRACKING_URI only, and serves the champion
    api = stack.urls()["api"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if httpx.get(api + "/health", timeout=10).status_code == 200:
            break
        time.sleep(1)
    lines = simulated_rows(("A", "B"), days=1, seed=5).groupby("line_id").tail(150)
    answer = httpx.post(api + "/v1/predict", json={"rows": json_records(lines)}, timeout=60)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["model"] == {"name": REGISTERED_MODEL_NAME, "version": version,
                            "alias": "champion"}
    assert [p["line_id"] for p in doc["predictions"]] == ["A", "B"]


def test_down_leaves_no_process_behind(stack):
    pids = {name: stack.pid(name) for name in stack.services}
    assert all(pids.values()), pids
    assert stack.down() == []
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] == "Z", name
    assert not stack.stragglers()
    assert not list(stack.pids.glob("*.pid"))
