"""Runs a crash left behind are closed when `amhs run` starts: a real Dagster instance, a real
process that died, a real MLflow store."""

from __future__ import annotations

import subprocess
import sys
import uuid

import dagster as dg
import mlflow

from amhs_assets.defs.recovery import HOST_TAG, PID_TAG, process_tags, recover
from amhs_assets.registry.store import connect


def started_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> str:
    run = dg.DagsterRun(job_name="training_job", run_id=str(uuid.uuid4()),
                        status=dg.DagsterRunStatus.STARTED, tags=tags)
    instance.add_run(run)
    return run.run_id


def test_a_run_whose_process_died_is_failed_and_its_mlflow_run_killed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process that ran and is gone: its pid names no live process of ours
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    mine = process_tags()
    crashed = started_run(instance, {**mine, PID_TAG: str(dead.pid)})
    running = started_run(instance, mine)  # this very process: alive
    elsewhere = started_run(instance, {HOST_TAG: "another-host", PID_TAG: str(dead.pid)})
    client = connect(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("amhs", artifact_location=str(tmp_path / "art"))
    left_open = client.create_run(experiment, tags={"dagster_run_id": crashed}).info.run_id
    still_on = client.create_run(experiment, tags={"dagster_run_id": running}).info.run_id

    failed, killed = recover(instance, client, echo=lambda _: None)

    assert failed == [crashed] and killed == [left_open]
    assert instance.get_run_by_id(crashed).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(running).status == dg.DagsterRunStatus.STARTED
    assert instance.get_run_by_id(elsewhere).status == dg.DagsterRunStatus.STARTED
    assert client.get_run(left_open).info.status == "KILLED"
    assert client.get_run(still_on).info.status == "RUNNING"
    assert recover(instance, client, echo=lambda _: None) == ([], [])  # nothing left twice
