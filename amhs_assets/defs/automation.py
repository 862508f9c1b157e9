"""Jobs, schedules and sensors: what people run by hand, what runs on the clock, what runs on its own.

- ingest_job: raw files through the features, targets and catalog.
- training_job: raw files through registration (and the drift report), every horizon in ONE run:
  horizon_models trains every partition of the run's range in one step (single-run backfill
  policy, AmhsIOManager stores one file per partition), so its runs carry the range tags.
- promotion_job: the promotion gate. monitoring_job: drift and performance reports.
- raw_data_sensor: new or changed raw files -> training_job (one run per state of the folder).
- retraining_trigger_sensor: a drift or performance episode -> training_job (one run per episode).
- retraining_schedule (nightly) -> training_job; promotion_schedule (daily) -> promotion_job.
"""

from __future__ import annotations

from typing import Iterable

import dagster as dg

from amhs_assets.defs.assets.training import horizon_partitions
from amhs_assets.contract import TRIGGER_REASON_TAG, TRIGGER_TAG
from amhs_assets.defs.resources import AmhsSettings
from amhs_assets.monitoring.triggers import SOURCES, Report, Source, TriggerState, adopt, advance, combine
from amhs_assets.ingest.watch import WatchState, decide

RAW_ASSET = dg.AssetKey("raw_amhs_logs")
INGEST_KEYS = ("raw_amhs_logs", "cleaned_amhs_logs", "amhs_features", "feature_catalog",
               "amhs_targets")
MONITORING_KEYS = ("drift_report", "performance_monitor", "monitoring_dashboard")
PROMOTION_ASSETS = dg.AssetSelection.assets("champion_model")
TRAINING_ASSETS = (dg.AssetSelection.assets("registered_model").upstream()
                   | dg.AssetSelection.assets("feature_catalog", "drift_report"))


def all_partitions_tags(partitions: dg.PartitionsDefinition = horizon_partitions
                        ) -> dict[str, str]:
    """Run tags that make one run cover every partition (every horizon)."""
    keys = partitions.get_partition_keys()
    return {"dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1]}


def reason_tags(trigger: str, reason: str) -> dict[str, str]:
    """What launched a run and why (registered_model copies both onto the new model version)."""
    return {TRIGGER_TAG: trigger, TRIGGER_REASON_TAG: reason}


def training_tags(trigger: str, reason: str) -> dict[str, str]:
    """Tags of a training_job run: every horizon in one run, what launched it and why."""
    return all_partitions_tags() | reason_tags(trigger, reason)


ingest_job = dg.define_asset_job(
    "ingest_job", selection=dg.AssetSelection.assets(*INGEST_KEYS),
    description="Raw files through cleaning, the 222 features, the catalog and the targets: "
                "to look at new data without training.")

# one process per run, steps in order: each step process costs seconds of imports and XGBoost
# already uses every core (integration test, 2 lines x 4 days on a busy 2-core machine: 68 s
# from file drop to success, 227 s with a process per step)
training_job = dg.define_asset_job(
    "training_job", selection=TRAINING_ASSETS, executor_def=dg.in_process_executor,
    description="Retrain: raw files through every model, the evaluation and a new registered "
                "version (challenger if it passes the checks), plus the drift report. Run it "
                "over every horizon in one run (tags dagster/asset_partition_range_start=10, "
                "_end=25; the sensors and the nightly schedule do); promotion stays with "
                "promotion_job.")

promotion_job = dg.define_asset_job(
    "promotion_job", selection=PROMOTION_ASSETS,
    description="The promotion gate: the challenger becomes champion of amhs-predictor if it "
                "beats it on the same test window (or there is no champion, or the champion's "
                "features are older); the decision and its reason are tagged on the version.")


def monitoring_job(asset_keys: Iterable[dg.AssetKey]) -> dg.UnresolvedAssetJobDefinition:
    """The monitoring assets that exist in this graph (drift_report, performance_monitor,
    monitoring_dashboard) on today's models and data."""
    present = [k for k in MONITORING_KEYS if dg.AssetKey(k) in set(asset_keys)]
    return dg.define_asset_job(
        "monitoring_job", selection=dg.AssetSelection.assets(*present),
        description=f"Monitoring on the stored models and data, no training: {', '.join(present)}.")


def promotion_schedule(settings: AmhsSettings) -> dg.ScheduleDefinition:
    """promotion_job on settings.promotion_cron (default daily 06:00) in the fab's timezone."""
    return dg.ScheduleDefinition(
        name="promotion_schedule", job=promotion_job, cron_schedule=settings.promotion_cron,
        execution_timezone=settings.fab_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Challengers trained during the day go live at {settings.promotion_cron} "
                    f"({settings.fab_timezone}), if they pass the gate.")


def retraining_schedule(settings: AmhsSettings) -> dg.ScheduleDefinition:
    """training_job over every horizon on settings.retraining_cron (default nightly 02:00)."""
    when = f"{settings.retraining_cron} ({settings.fab_timezone})"

    @dg.schedule(name="retraining_schedule", job=training_job,
                 cron_schedule=settings.retraining_cron,
                 execution_timezone=settings.fab_timezone,
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=f"Nightly retraining at {when}, every horizon in one run: a new "
                             "challenger for promotion_schedule to judge.")
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        # a RunRequest, not ScheduleDefinition(tags=...): the range tags are system tags
        return dg.RunRequest(tags=training_tags("schedule", f"nightly retraining at {when}"))

    return _schedule


def latest_raw_fingerprint(instance: dg.DagsterInstance) -> str:
    """The folder fingerprint recorded by the latest raw_amhs_logs materialization, or ''."""
    event = instance.get_latest_materialization_event(RAW_ASSET)
    materialization = event.asset_materialization if event else None
    value = materialization.metadata.get("fingerprint") if materialization else None
    return str(value.value) if value is not None else ""


def raw_data_sensor(settings: AmhsSettings) -> dg.SensorDefinition:
    """training_job whenever the raw folder settles in a new state (see amhs_assets.ingest.watch)."""

    @dg.sensor(name="raw_data_sensor", job=training_job,
               minimum_interval_seconds=settings.sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Watches {settings.raw_dir} (path, size, time; SHA-256 to confirm): "
                           "new, changed or removed raw files launch one training_job run once "
                           "they hold still for a tick; run key = fingerprint of the folder.")
    def _sensor(context: dg.SensorEvaluationContext):
        state = WatchState.loads(context.cursor)
        # no launch remembered (first tick, or a reset cursor): the data of the last
        # materialization is the baseline, so a restart does not retrain on unchanged data
        baseline = "" if state.fingerprint else latest_raw_fingerprint(context.instance)
        decision = decide(settings.raw_dir, state, baseline)
        context.update_cursor(decision.state.dumps())
        if decision.action != "launch":
            return dg.SkipReason(decision.reason)
        shown = ", ".join(decision.changed[:5]) + (", ..." if len(decision.changed) > 5 else "")
        return dg.RunRequest(run_key=decision.run_key,
                             tags=training_tags("data", f"{decision.reason}: {shown}"))

    return _sensor


def _report(source: Source, record) -> Report:
    """A materialization record of a source's asset as a Report."""
    metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    return source.report(record.storage_id, metadata)


def _reports(instance: dg.DagsterInstance, source: Source, after: int) -> list[Report]:
    """A source's materializations after a storage id, oldest first."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(source.asset), after_storage_id=after),
        limit=1000, ascending=True).records
    return [_report(source, r) for r in records]


def _latest_report(instance: dg.DagsterInstance, source: Source) -> Report | None:
    """A source's latest materialization, or None (never materialized, or no such asset)."""
    records = instance.fetch_materializations(dg.AssetKey(source.asset), limit=1).records
    return _report(source, records[0]) if records else None


def retraining_trigger_sensor(settings: AmhsSettings) -> dg.SensorDefinition:
    """training_job once per drift episode of drift_report and once per degradation episode of
    performance_monitor (when that asset exists), with the reason in the run's tags."""

    @dg.sensor(name="retraining_trigger_sensor", job=training_job,
               minimum_interval_seconds=settings.sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Reads new drift_report (drift_detected) and performance_monitor "
                           "(degraded) materializations: the first flagged report of an episode "
                           "launches training_job, tagged amhs/trigger and amhs/trigger_reason; "
                           "the episode ends with the next clean report.")
    def _sensor(context: dg.SensorEvaluationContext):
        state = TriggerState.loads(context.cursor)
        launches = []
        for source in SOURCES:
            if source.name not in state.sources:
                state.sources[source.name] = adopt(_latest_report(context.instance, source))
                continue
            reports = _reports(context.instance, source, state.sources[source.name].after)
            state.sources[source.name], launch = advance(source.name,
                                                         state.sources[source.name], reports)
            launches += [launch] if launch else []
        context.update_cursor(state.dumps())
        launch = combine(launches)
        if launch is None:
            return dg.SkipReason("no new drift or degradation episode")
        return dg.RunRequest(run_key=launch.run_key,
                             tags=training_tags(launch.trigger, launch.reason))

    return _sensor
