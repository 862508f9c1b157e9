"""The shipped deployment files agree with each other and with `amhs up`, and hold no secret.
(docker-compose.yml and the Helm values cannot be run here: no container runtime, no cluster.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from amhs_assets.config import DEPLOY_DIR
from amhs_assets.defs.partitions import INGEST_POOL, TRAINING_POOL
from amhs_assets.stack import POOL_LIMITS, Stack

DAGSTER = yaml.safe_load((DEPLOY_DIR / "dagster.yaml").read_text())
COMPOSE = yaml.safe_load((DEPLOY_DIR / "docker-compose.yml").read_text())
HELM = yaml.safe_load((DEPLOY_DIR / "helm" / "values.yaml").read_text())


def _leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, str(i)))
    else:
        yield path, value


def test_dagster_storage_comes_from_the_environment_only():
    db = DAGSTER["storage"]["postgres"]["postgres_db"]
    for key in ("hostname", "port", "username", "password", "db_name"):
        assert set(db[key]) == {"env"}, key
    assert DAGSTER["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert DAGSTER["run_retries"]["enabled"] and DAGSTER["run_monitoring"]["enabled"]


def test_one_training_run_at_a_time_and_several_ingest_runs_everywhere():
    limits = {(t["key"], t["value"]): t["limit"]
              for t in DAGSTER["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert limits[("amhs/stage", "training")] == 1 and limits[("amhs/stage", "ingest")] > 1
    helm = {(t["key"], t["value"]): t["limit"] for t in HELM["dagsterDaemon"]["runCoordinator"][
        "config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]}
    assert helm == limits
    assert POOL_LIMITS == {TRAINING_POOL: 2, INGEST_POOL: 4}


def test_compose_runs_the_services_amhs_up_starts():
    up = {re.sub(r"-\d+$", "", s) for s in Stack(root=Path("/x"), data_dir=Path("/y")).services}
    assert set(COMPOSE["services"]) == up
    assert COMPOSE["services"]["worker"]["deploy"]["replicas"] == 2


def test_no_password_or_token_is_written_in_a_deployment_file():
    for name, doc in (("dagster.yaml", DAGSTER), ("docker-compose.yml", COMPOSE),
                      ("helm/values.yaml", HELM)):
        for path, value in _leaves(doc):
            secret = re.search(r"PASSWORD|TOKEN", path[-1].upper())
            credentials = isinstance(value, str) and re.search(r"://[^/\s]*@", value)
            if secret or credentials:  # a reference to the environment, never a value
                assert path[-1] == "env" or "${" in str(value), (name, path, value)
