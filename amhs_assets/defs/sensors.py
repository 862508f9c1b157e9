"""The sensors:
- raw_data_sensor: new or changed raw files -> one backfill of the day partitions they touch,
  per state of the folder (the logic lives in ingest.watch);
- ingested_data_sensor: a burst's backfill done -> one training_job run;
- retraining_trigger_sensor: a drift or degradation episode -> one training_job run per episode
  (monitoring.triggers), and a webhook message when an episode starts and when it ends;
- monitoring_after_promotion_sensor: a promotion_job -> one monitoring_job run;
- run_failure_sensor: a failed run of any job here -> a webhook message.
"""

from __future__ import annotations

import json

import dagster as dg

from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.execution.backfill import BulkActionStatus

from amhs_assets.contract import TRIGGER_REASON_TAG, TRIGGER_TAG
from amhs_assets.defs.executors import STAGE_TAG
from amhs_assets.defs.jobs import MONITORING_JOB, reason_tags, training_job, training_tags
from amhs_assets.defs.partitions import offered_days
from amhs_assets.defs.resources import AmhsSettings
from amhs_assets.ingest.days import INDEX_FILE, affected_days, update_stored_index
from amhs_assets.ingest.watch import WATCH_FILE, decide, load_state, partitions_to_refresh
from amhs_assets.monitoring.triggers import (
    SOURCES,
    Change,
    Report,
    Source,
    TriggerState,
    adopt,
    combine,
    episodes,
    launch_for,
)
from amhs_assets.notify import messages
from amhs_assets.notify.config import NotifyConfig
from amhs_assets.notify.sender import send_now

RAW_ASSET = dg.AssetKey("raw_amhs_logs")


def latest_raw_fingerprint(instance: dg.DagsterInstance) -> str:
    """The folder fingerprint recorded by the latest raw_amhs_logs materialization, or ''."""
    event = instance.get_latest_materialization_event(RAW_ASSET)
    materialization = event.asset_materialization if event else None
    value = materialization.metadata.get("fingerprint") if materialization else None
    return str(value.value) if value is not None else ""


BURST_TAG = "amhs/burst"  # on a burst's backfill and its runs: the folder state it ingests
BURST_DAYS_TAG = "amhs/burst_days"  # how many days of cleaned logs the burst re-materializes
DATA_ASSETS = ("raw_amhs_logs", "cleaned_amhs_logs", "amhs_features", "amhs_targets")


def ingest_plan(settings: AmhsSettings, changed: list[str], log) -> dict[str, list[str]]:
    """The day partitions that the changed raw files touch (see partitions_to_refresh), from
    the raw index before and after the change (a corrected file may move rows between days)."""
    before, after = update_stored_index(settings.layout.warehouse, settings.raw_dir,
                                        settings.fab_timezone, limits=settings.ingest.pure())
    days, outside = offered_days(affected_days(before, after, changed))
    if outside:
        log.warning(f"raw rows on {len(outside)} day(s) outside the day partitions are not "
                    f"ingested: {outside[:5]}")
    return partitions_to_refresh(days, set(after.days()))


def backfill_request(graph, plan: dict[str, list[str]], tags: dict[str, str]) -> dg.RunRequest:
    """A backfill of raw_amhs_logs and the planned day partitions: the backfill daemon runs
    them in dependency order, contiguous days of an asset in one run."""
    wanted = {AssetKeyPartitionKey(dg.AssetKey("raw_amhs_logs"), None)} | {
        AssetKeyPartitionKey(dg.AssetKey(asset), day) for asset, days in plan.items()
        for day in days}
    return dg.RunRequest.for_asset_graph_subset(
        AssetGraphSubset.from_asset_partition_set(wanted, graph), tags=tags)


def raw_data_sensor(settings: AmhsSettings) -> dg.SensorDefinition:
    """New or changed raw files -> a backfill of only the days they touch (ingest_job's data
    assets); ingested_data_sensor launches training_job when it is done."""

    @dg.sensor(name="raw_data_sensor", asset_selection=dg.AssetSelection.assets(*DATA_ASSETS),
               minimum_interval_seconds=settings.sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Watches {settings.raw_dir} (path, size, time; SHA-256 to confirm): "
                           "new, changed or removed raw files, once they hold still for a tick, "
                           "launch one backfill of only the fab-local days they touch (cleaned "
                           "logs, features and targets, plus the next day's features and the "
                           "previous day's targets), tagged amhs/burst; ingested_data_sensor "
                           "then launches training_job.")
    def _sensor(context: dg.SensorEvaluationContext):
        detail = settings.layout.warehouse / WATCH_FILE
        state = load_state(context.cursor, detail)
        # no launch remembered (first tick, or a reset cursor): the data of the last
        # materialization is the baseline, so a restart does not redo unchanged data; but a
        # warehouse never written (a data folder from before the day partitions) is filled
        indexed = (settings.layout.warehouse / INDEX_FILE).is_file()
        baseline = "" if state.fingerprint or not indexed else latest_raw_fingerprint(
            context.instance)
        decision = decide(settings.raw_dir, state, baseline, settings.ingest.pure())
        decision.state.save_detail(detail)
        context.update_cursor(decision.state.cursor())
        if decision.action != "launch":
            return dg.SkipReason(decision.reason)
        plan = ingest_plan(settings, decision.changed, context.log)
        shown = ", ".join(decision.changed[:5]) + (", ..." if len(decision.changed) > 5 else "")
        tags = {BURST_TAG: decision.run_key, STAGE_TAG: "ingest",
                BURST_DAYS_TAG: str(len(plan["cleaned_amhs_logs"]))} | reason_tags(
            "data", f"{decision.reason}: {shown}")
        return backfill_request(context.repository_def.asset_graph, plan, tags)

    return _sensor


DONE = (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED)
ENDED = (*DONE, BulkActionStatus.COMPLETED_FAILED, BulkActionStatus.FAILED,
         BulkActionStatus.CANCELED)


def ingested_data_sensor(settings: AmhsSettings) -> dg.SensorDefinition:
    """training_job once per raw-data burst whose backfill completed (run key train-<burst>)."""

    @dg.sensor(name="ingested_data_sensor", job=training_job,
               minimum_interval_seconds=settings.sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="When the backfill of a raw_data_sensor burst has ended: training_job "
                           "on the updated warehouse if every partition was stored (once per "
                           "burst; run key train-<burst>), nothing if it failed or touched no "
                           "day.")
    def _sensor(context: dg.SensorEvaluationContext):
        handled = json.loads(context.cursor) if context.cursor else []
        ended = [b for b in context.instance.get_backfills(limit=100)
                 if BURST_TAG in b.tags and b.status in ENDED and b.backfill_id not in handled]
        if not ended:
            return dg.SkipReason("no raw-data burst has finished its ingest since the last look")
        context.update_cursor(json.dumps((handled + [b.backfill_id for b in ended])[-200:]))
        requests, notes = [], []
        for backfill in sorted(ended, key=lambda b: b.backfill_timestamp):
            burst = backfill.tags[BURST_TAG]
            if backfill.status not in DONE:
                notes.append(f"ingest of {burst} ended {backfill.status.value}: no training")
            elif backfill.tags.get(BURST_DAYS_TAG) == "0":
                notes.append(f"{burst} touched no day: nothing to train on")
            else:
                requests.append(dg.RunRequest(run_key=f"train-{burst}", tags=training_tags(
                    backfill.tags.get(TRIGGER_TAG, "data"),
                    backfill.tags.get(TRIGGER_REASON_TAG, burst))))
        for note in notes:
            context.log.info(note)
        # one training run for everything ingested since the last look: the newest burst
        return requests[-1:] if requests else dg.SkipReason("; ".join(notes))

    return _sensor


def _records(instance: dg.DagsterInstance, source: Source, after: int) -> list:
    """A source's materialization records after a storage id, oldest first."""
    return list(instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(source.asset), after_storage_id=after),
        limit=1000, ascending=True).records)


def _metadata(record) -> dict:
    """A materialization's metadata as plain values."""
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _latest_report(instance: dg.DagsterInstance, source: Source) -> Report | None:
    """A source's latest materialization as a Report, or None (never materialized, or no such
    asset)."""
    records = instance.fetch_materializations(dg.AssetKey(source.asset), limit=1).records
    return source.report(records[0].storage_id, _metadata(records[0])) if records else None


NOTIFY_KINDS = {"drift": "drift", "performance": "degradation"}  # source -> message kind
NOTIFY_WAIT_S = 15.0  # a tick waits this long at most for its webhooks (ticks time out at 60 s)


def episode_message(source: Source, change: Change, record, config: NotifyConfig) -> dict:
    """The webhook message of an episode that a materialization started or ended."""
    plain = {k: v for k, v in _metadata(record).items()
             if v is None or isinstance(v, (str, int, float, bool))}
    run_id = record.run_id or None
    return messages.monitoring_episode(
        NOTIFY_KINDS[source.name], change.started, change.report.reason, record.storage_id,
        run_id, config.run_url(run_id) if run_id else None, plain)


def retraining_trigger_sensor(settings: AmhsSettings) -> dg.SensorDefinition:
    """training_job once per drift episode of drift_report and once per degradation episode of
    performance_monitor (when that asset exists), with the reason in the run's tags; the
    webhooks of notify.drift_webhooks and notify.degradation_webhooks hear of each episode's
    start and end."""
    config = settings.notify.pure()  # a wrong URL stops the code location from loading

    @dg.sensor(name="retraining_trigger_sensor", job=training_job,
               minimum_interval_seconds=settings.sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Reads new drift_report (drift_detected) and performance_monitor "
                           "(degraded) materializations: the first flagged report of an episode "
                           "launches training_job, tagged amhs/trigger and amhs/trigger_reason; "
                           "the episode ends with the next clean report. The start and the end "
                           "of each episode are posted to the notify webhooks.")
    def _sensor(context: dg.SensorEvaluationContext):
        state = TriggerState.loads(context.cursor)
        launches, posts = [], []
        for source in SOURCES:
            if source.name not in state.sources:
                state.sources[source.name] = adopt(_latest_report(context.instance, source))
                continue
            records = _records(context.instance, source, state.sources[source.name].after)
            by_id = {r.storage_id: r for r in records}
            state.sources[source.name], changes = episodes(
                state.sources[source.name],
                [source.report(r.storage_id, _metadata(r)) for r in records])
            launch = launch_for(source.name, changes)
            launches += [launch] if launch else []
            posts += [(NOTIFY_KINDS[source.name], episode_message(
                source, c, by_id[c.report.storage_id], config)) for c in changes]
        context.update_cursor(state.dumps())
        if posts and (missed := send_now(config, posts, NOTIFY_WAIT_S)):
            context.log.warning(f"{missed} drift or degradation webhook message(s) not delivered "
                                "(see the log of amhs_assets.notify.sender)")
        launch = combine(launches)
        if launch is None:
            return dg.SkipReason("no new drift or degradation episode")
        return dg.RunRequest(run_key=launch.run_key,
                             tags=training_tags(launch.trigger, launch.reason))

    return _sensor


def latest_storage_id(instance: dg.DagsterInstance, asset: str) -> int:
    """The storage id of an asset's latest materialization, 0 when it has none."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
    return records[0].storage_id if records else 0


def monitoring_after_promotion_sensor(settings: AmhsSettings) -> dg.SensorDefinition:
    """monitoring_job after every new champion_model materialization (the promotion gate ran),
    unless the monitoring assets were already refreshed after it (as `amhs run` does)."""

    @dg.sensor(name="monitoring_after_promotion_sensor", job_name=MONITORING_JOB,
               minimum_interval_seconds=settings.sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="After each promotion_job (a new champion_model materialization), "
                           "refreshes drift, live performance and the dashboard for the champion "
                           "now served; skips when they were materialized after the gate.")
    def _sensor(context: dg.SensorEvaluationContext):
        gate = latest_storage_id(context.instance, "champion_model")
        seen = int(context.cursor or 0)
        if gate <= seen:
            return dg.SkipReason("no promotion_job since the last look")
        context.update_cursor(str(gate))
        if latest_storage_id(context.instance, "performance_monitor") > gate:
            return dg.SkipReason("monitoring already ran after the latest promotion_job")
        return dg.RunRequest(run_key=f"promotion-{gate}", tags=reason_tags(
            "promotion", "monitoring refreshed after the promotion gate"))

    return _sensor


RUN_TAG_PREFIXES = ("amhs/", "dagster/partition", "dagster/asset_partition_range",
                    "dagster/backfill", "dagster/sensor_name", "dagster/schedule_name")


def _root_error(event) -> str:
    """The innermost error of a step failure event, as 'Class: message'."""
    error = event.event_specific_data.error if event.event_specific_data else None
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message.strip()[:messages.MAX_ERROR_CHARS] \
        if error is not None else "unknown error"


def run_failure_sensor(settings: AmhsSettings) -> dg.SensorDefinition:
    """Every failed run of a job of this code location -> one run_failure message to the
    webhooks of notify.run_failure_webhooks."""
    config = settings.notify.pure()

    @dg.run_failure_sensor(name="run_failure_sensor",
                           minimum_interval_seconds=settings.sensor_interval_s,
                           default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Posts each failed run of this code location (job, run "
                                       "id and link, the failed steps and their errors) to the "
                                       "notify.run_failure_webhooks; nothing when none is set.")
    def _sensor(context: dg.RunFailureSensorContext):
        if not config.run_failure_webhooks:
            return dg.SkipReason("no notify.run_failure_webhooks")
        run = context.dagster_run
        steps = [{"step": e.step_key, "error": _root_error(e)}
                 for e in context.get_step_failure_events()]
        tags = {k: v for k, v in run.tags.items() if k.startswith(RUN_TAG_PREFIXES)}
        message = messages.run_failure(run.job_name, run.run_id, config.run_url(run.run_id),
                                       context.failure_event.message or "", steps, tags)
        if missed := send_now(config, [("run_failure", message)], NOTIFY_WAIT_S):
            context.log.warning(f"the failure of run {run.run_id} was not delivered to {missed} "
                                "webhook(s) (see the log of amhs_assets.notify.sender)")
        return None

    return _sensor
