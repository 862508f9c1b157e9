"""The jobs: what people run by hand and what the schedules (schedules.py) and the sensors
(sensors.py) launch.

- ingest_job: raw files through the features, targets and catalog, by fab-local day.
- training_job: the warehouse's training window through registration (and the drift report),
  every horizon in ONE run:
  horizon_models trains every partition of the run's range in one step (single-run backfill
  policy, AmhsIOManager stores one file per partition), so its runs carry the range tags.
- promotion_job: the promotion gate. monitoring_job: drift and performance reports.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from amhs_assets.contract import TRIGGER_REASON_TAG, TRIGGER_TAG
from amhs_assets.defs.executors import STAGE_TAG, run_executor
from amhs_assets.defs.partitions import all_partitions_tags, day_partitions

INGEST_KEYS = ("raw_amhs_logs", "cleaned_amhs_logs", "amhs_features", "feature_catalog",
               "amhs_targets")
MONITORING_KEYS = ("drift_report", "performance_monitor", "monitoring_dashboard")
PROMOTION_ASSETS = dg.AssetSelection.assets("champion_model")
INGEST_ASSETS = dg.AssetSelection.assets(*INGEST_KEYS)
TRAINING_ASSETS = (dg.AssetSelection.assets("registered_model").upstream() - INGEST_ASSETS
                   | dg.AssetSelection.assets("drift_report"))


def reason_tags(trigger: str, reason: str) -> dict[str, str]:
    """What launched a run and why (registered_model copies both onto the new model version)."""
    return {TRIGGER_TAG: trigger, TRIGGER_REASON_TAG: reason}


def training_tags(trigger: str, reason: str) -> dict[str, str]:
    """Tags of a training_job run: every horizon in one run, what launched it and why."""
    return all_partitions_tags() | reason_tags(trigger, reason)


# one process per run (embedded profile): a run over many days is one step per asset, each holding
# a day at a time; with AMHS_EXECUTOR=celery each step is a task for the workers
INGEST_JOB = "ingest_job"
ingest_job = dg.define_asset_job(
    INGEST_JOB, selection=INGEST_ASSETS, partitions_def=day_partitions,
    executor_def=run_executor(), tags={STAGE_TAG: "ingest"},
    description="Raw files through cleaning, the 222 features, the catalog and the targets, by "
                "fab-local day: the raw index says which days the files cover; a run over a "
                "range of days (tags dagster/asset_partition_range_start/_end) does each asset "
                "in one step, a day at a time. raw_data_sensor launches it for the days new or "
                "changed files touch.")

# one process per run, steps in order: each step process costs seconds of imports and XGBoost
# already uses every core (integration test, 2 lines x 4 days on a busy 2-core machine: 68 s
# from file drop to success, 227 s with a process per step)
training_job = dg.define_asset_job(
    "training_job", selection=TRAINING_ASSETS, executor_def=run_executor(),
    tags={STAGE_TAG: "training"},
    description="Retrain on the warehouse (ingest_job keeps it current): the training window "
                "through every model, the evaluation and a new registered version "
                "(challenger if it passes the checks), plus the drift report. Run it "
                "over every horizon in one run (tags dagster/asset_partition_range_start=10, "
                "_end=25; the sensors and the nightly schedule do); promotion stays with "
                "promotion_job.")

promotion_job = dg.define_asset_job(
    "promotion_job", selection=PROMOTION_ASSETS, tags={STAGE_TAG: "promotion"},
    description="The promotion gate: the challenger becomes champion of amhs-predictor if it "
                "beats it on the same test window (or there is no champion, or the champion's "
                "features are older); the decision and its reason are tagged on the version.")


MONITORING_JOB = "monitoring_job"


def monitoring_job(asset_keys: Iterable[dg.AssetKey]) -> dg.UnresolvedAssetJobDefinition:
    """The monitoring assets that exist in this graph (drift_report, performance_monitor,
    monitoring_dashboard) on today's models and data."""
    present = [k for k in MONITORING_KEYS if dg.AssetKey(k) in set(asset_keys)]
    return dg.define_asset_job(
        MONITORING_JOB, selection=dg.AssetSelection.assets(*present), tags={STAGE_TAG: "monitoring"},
        description=f"Monitoring on the stored models and data, no training: {', '.join(present)}.")


