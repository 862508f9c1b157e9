"""Runs a crash left behind: a Dagster run still STARTED whose process is gone, and the MLflow
run it opened still RUNNING. `amhs run` marks them failed (Dagster) and KILLED (MLflow) when it
starts, so the UI and the tracking server never show work that is not happening.

A run launched by `amhs run` carries the host and process that ran it (tags amhs/host and
amhs/pid); it is orphaned when that process no longer exists on this host, or the pid now
belongs to a process that started after the run did (a reused pid).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import dagster as dg
import psutil
from mlflow import MlflowClient

HOST_TAG, PID_TAG = "amhs/host", "amhs/pid"
ACTIVE = (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING)


def process_tags() -> dict[str, str]:
    """The tags that name this process as a run's owner."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _alive(pid: int, since: float | None) -> bool:
    """Whether process `pid` exists and started no later than `since` (epoch seconds)."""
    try:
        created = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False
    return since is None or created <= since + 1.0


def orphaned_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """This host's STARTED/STARTING runs whose process is gone."""
    host = socket.gethostname()
    out = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=list(ACTIVE))):
        run = record.dagster_run
        pid = run.tags.get(PID_TAG, "")
        if run.tags.get(HOST_TAG) != host or not pid.isdigit():
            continue  # another host's run, or one the daemon launched: not ours to judge
        since = record.start_time or record.create_timestamp.timestamp()
        if not _alive(int(pid), since):
            out.append(run)
    return out


def recover(instance: dg.DagsterInstance, client: MlflowClient | None,
            echo: Callable[[str], None] = print) -> tuple[list[str], list[str]]:
    """Mark this host's orphaned Dagster runs failed, and set KILLED every MLflow run still
    RUNNING whose Dagster run is not running; returns both lists of run ids."""
    failed = []
    for run in orphaned_runs(instance):
        instance.report_run_failed(
            run, message=f"its process {run.tags[PID_TAG]} on {run.tags[HOST_TAG]} is gone "
                         "(killed or crashed); marked failed when amhs run started again")
        failed.append(run.run_id)
        echo(f"run {run.run_id[:8]} {run.job_name}: left STARTED by a process that is gone; "
             "marked failed")
    killed = []
    if client is not None:
        for run in client.search_runs(experiment_ids=[e.experiment_id for e in
                                                      client.search_experiments()],
                                      filter_string="attributes.status = 'RUNNING'"):
            dagster_run = run.data.tags.get("dagster_run_id")
            status = (instance.get_run_by_id(dagster_run).status
                      if dagster_run and instance.get_run_by_id(dagster_run) else None)
            if status not in ACTIVE:
                client.set_terminated(run.info.run_id, status="KILLED")
                killed.append(run.info.run_id)
                echo(f"MLflow run {run.info.run_id[:8]} (Dagster run "
                     f"{(dagster_run or '?')[:8]}) was still RUNNING; set KILLED")
    return failed, killed
