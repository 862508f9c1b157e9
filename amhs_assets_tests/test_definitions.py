"""Smoke test of the Definitions as users and programs see them: the asset keys of the contract,
their groups and lineage, the jobs, sensors and schedules, and `dagster dev`'s workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from amhs_assets import defs
from amhs_assets.contract import HORIZONS

REPO = Path(__file__).resolve().parents[1]
# the asset keys users' selections, sensors and automation refer to (docs/cli-and-dagster.md)
CONTRACT_KEYS = {"raw_amhs_logs", "cleaned_amhs_logs", "amhs_features", "feature_catalog",
                 "amhs_targets", "horizon_models", "unified_model", "ensemble_model",
                 "evaluation_report", "registered_model", "drift_report", "performance_monitor",
                 "monitoring_dashboard"}
GROUPS = {"ingest": {"raw_amhs_logs", "cleaned_amhs_logs"},
          "features": {"amhs_features", "feature_catalog", "amhs_targets"},
          "training": {"model_dataset", "horizon_models", "unified_model", "ensemble_model"},
          "evaluation": {"evaluation_report"}, "registry": {"registered_model", "champion_model"},
          "monitoring": {"drift_report", "performance_monitor", "monitoring_dashboard"}}


@pytest.fixture(scope="module")
def graph():
    return defs.resolve_asset_graph()


def test_every_contract_asset_key_is_defined_in_its_group(graph):
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert CONTRACT_KEYS <= keys
    for group, members in GROUPS.items():
        assert {k for k in members if graph.get(dg.AssetKey(k)).group_name == group} == members
    assert all(graph.get(k).description for k in graph.get_all_asset_keys())  # shown in the UI


def test_lineage_runs_from_raw_logs_to_the_dashboard(graph):
    upstream = {k.to_user_string() for k in
                dg.AssetSelection.assets("monitoring_dashboard").upstream().resolve(graph)}
    assert {"raw_amhs_logs", "cleaned_amhs_logs", "amhs_features", "horizon_models",
            "evaluation_report", "champion_model", "performance_monitor"} <= upstream
    every_model = {p.to_user_string() for p in graph.get(dg.AssetKey("evaluation_report")).parent_keys}
    assert {"horizon_models", "unified_model", "ensemble_model", "model_dataset"} <= every_model


def test_horizon_models_are_partitioned_by_the_deployments_horizons(graph):
    partitions = graph.get(dg.AssetKey("horizon_models")).partitions_def
    assert partitions.get_partition_keys() == [str(h) for h in HORIZONS]


def test_jobs_sensors_and_schedules_carry_their_documented_names():
    assert {j.name for j in defs.jobs} == {"ingest_job", "training_job", "promotion_job",
                                           "monitoring_job"}
    assert {s.name for s in defs.sensors} == {"raw_data_sensor", "retraining_trigger_sensor",
                                              "monitoring_after_promotion_sensor", "ingested_data_sensor",
                                              "run_failure_sensor"}
    assert {s.name for s in defs.schedules} == {"retraining_schedule", "promotion_schedule",
                                                "monitoring_schedule"}
    assert {"settings", "mlflow", "io_manager"} <= set(defs.resources)


@pytest.mark.slow
def test_dagster_loads_the_workspace_that_dagster_dev_uses(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "AMHS_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_the_embedded_profile_runs_steps_in_process_and_backfills_in_one_run():
    assert defs.resolve_job_def("ingest_job").executor_def.name == "in_process"
    assert defs.resolve_job_def("training_job").executor_def.name == "in_process"
    cleaned = defs.resolve_assets_def("cleaned_amhs_logs")
    assert cleaned.backfill_policy.max_partitions_per_run is None  # single run
    assert defs.resolve_job_def("training_job").tags["amhs/stage"] == "training"
    assert defs.resolve_job_def("ingest_job").tags["amhs/stage"] == "ingest"


PRODUCTION_PROBE = """
import json
from amhs_assets import defs
print(json.dumps({
    "executors": {j: defs.resolve_job_def(j).executor_def.name for j in ("ingest_job", "training_job")},
    "asset_job": defs.resolve_implicit_global_asset_job_def().executor_def.name,
    "days_per_run": {a: defs.resolve_assets_def(a).backfill_policy.max_partitions_per_run
                     for a in ("cleaned_amhs_logs", "amhs_features", "amhs_targets")},
    "pools": {a: defs.resolve_assets_def(a).op.pool for a in ("cleaned_amhs_logs", "horizon_models")},
    "values_dir": defs.resources["io_manager"].base_dir,
}))
"""


@pytest.mark.slow
def test_the_production_profile_sends_steps_to_celery_and_splits_backfills(tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("days_per_run: 3\n")
    env = {**os.environ, "AMHS_EXECUTOR": "celery", "AMHS_SETTINGS": str(settings),
           "AMHS_DATA_DIR": str(tmp_path / "data"), "AMHS_CELERY_BROKER": "redis://x:1/0",
           "AMHS_CELERY_BACKEND": "redis://x:1/1"}
    out = subprocess.run([sys.executable, "-c", PRODUCTION_PROBE], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    probe = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert probe["executors"] == {"ingest_job": "celery", "training_job": "celery"}
    assert probe["asset_job"] == "celery"  # backfills launched from the UI too
    assert set(probe["days_per_run"].values()) == {3}
    assert probe["pools"] == {"cleaned_amhs_logs": "amhs_ingest",
                              "horizon_models": "amhs_training"}
    assert probe["values_dir"] == str(tmp_path / "data" / "asset_values")
