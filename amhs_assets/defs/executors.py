"""Where the steps of a run execute.

- ``in_process`` (the embedded profile, the default): every step in the run's own process, one
  after another; a run over many days holds a day at a time.
- ``celery`` (the production profile, ``AMHS_EXECUTOR=celery``): each step is a task on a
  broker (Redis); dagster-celery workers on any machine that has the code, the data folder and
  the environment execute them. The executor's YAML (``AMHS_CELERY_CONFIG``, default
  ``deploy/celery.yaml``) is the one the workers start with (``dagster-celery worker start
  -y``), so both ends agree on broker, backend and the acknowledgement policy.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from amhs_assets.config import environment

STAGE_TAG = "amhs/stage"  # run tag the run queue's concurrency limits key on (deploy/dagster.yaml)


def celery_config(path: Path) -> dict:
    """The ``execution.config`` block of a dagster-celery executor YAML."""
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise ValueError(f"AMHS_CELERY_CONFIG: cannot read {path}: {error}") from None
    config = (values.get("execution") or {}).get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected execution: config: {{broker: ..., backend: ...}}")
    return config


def run_executor() -> dg.ExecutorDefinition:
    """The deployment's executor (AMHS_EXECUTOR)."""
    env = environment()
    if env.executor != "celery":
        return dg.in_process_executor
    from dagster_celery import celery_executor  # the production profile only

    return celery_executor.configured(celery_config(env.celery_config), name="celery")


def default_executor() -> dg.ExecutorDefinition | None:
    """The executor of runs that name none (asset backfills from the UI): Dagster's own default
    in the embedded profile, the deployment's executor otherwise."""
    return run_executor() if environment().executor != "in_process" else None
