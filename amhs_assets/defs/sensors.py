"""The sensors: raw_data_sensor (new or changed raw files -> one training_job run per state of
the folder), retraining_trigger_sensor (a drift or degradation episode -> one training_job run
per episode; their logic lives in ingest.watch and monitoring.triggers) and
monitoring_after_promotion_sensor (a promotion_job -> one monitoring_job run)."""

from __future__ import annotations

import dagster as dg

from amhs_assets.defs.jobs import MONITORING_JOB, reason_tags, training_job, training_tags
from amhs_assets.defs.resources import AmhsSettings
from amhs_assets.ingest.watch import WatchState, decide
from amhs_assets.monitoring.triggers import (
    SOURCES,
    Report,
    Source,
    TriggerState,
    adopt,
    advance,
    combine,
)

RAW_ASSET = dg.AssetKey("raw_amhs_logs")


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
