"""The deployment's environment: executor, Celery config and backfill split."""

from __future__ import annotations

from pathlib import Path

import pytest

from amhs_assets.config import DEPLOY_DIR, read_environment
from amhs_assets.defs.executors import celery_config


def test_the_embedded_profile_is_the_default():
    env = read_environment({})
    assert env.executor == "in_process" and env.days_per_run == 0
    assert env.celery_config == DEPLOY_DIR / "celery.yaml"


def test_the_production_profile_comes_from_the_environment(tmp_path: Path):
    settings = tmp_path / "s.yaml"
    settings.write_text("days_per_run: 7\n")
    env = read_environment({"AMHS_EXECUTOR": "celery", "AMHS_SETTINGS": str(settings),
                            "AMHS_CELERY_CONFIG": str(tmp_path / "c.yaml")})
    assert (env.executor, env.days_per_run, env.celery_config) == \
        ("celery", 7, tmp_path / "c.yaml")


def test_an_unknown_executor_is_refused_with_its_name_and_the_choices():
    with pytest.raises(ValueError, match="AMHS_EXECUTOR='dask'.*in_process, celery"):
        read_environment({"AMHS_EXECUTOR": "dask"})


def test_the_shipped_celery_config_takes_broker_and_backend_from_the_environment():
    config = celery_config(DEPLOY_DIR / "celery.yaml")
    assert config["broker"] == {"env": "AMHS_CELERY_BROKER"}
    assert config["backend"] == {"env": "AMHS_CELERY_BACKEND"}
    source = config["config_source"]
    assert source["task_acks_late"] and source["task_reject_on_worker_lost"]


def test_a_celery_config_without_its_block_names_the_file(tmp_path: Path):
    bad = tmp_path / "celery.yaml"
    bad.write_text("broker: redis://x\n")
    with pytest.raises(ValueError, match="celery.yaml: expected execution: config"):
        celery_config(bad)
    with pytest.raises(ValueError, match="cannot read"):
        celery_config(tmp_path / "missing.yaml")
