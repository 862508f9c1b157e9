"""The schedules, in the fab's timezone: retraining_schedule (nightly training_job over every
horizon), promotion_schedule (daily promotion_job, before the day shift) and
monitoring_schedule (monitoring_job every hour, so the dashboard is never older than that)."""

from __future__ import annotations

import dagster as dg

from amhs_assets.defs.jobs import MONITORING_JOB, promotion_job, training_job, training_tags
from amhs_assets.defs.resources import AmhsSettings


def promotion_schedule(settings: AmhsSettings) -> dg.ScheduleDefinition:
    """promotion_job on settings.promotion_cron (default daily 06:00) in the fab's timezone."""
    return dg.ScheduleDefinition(
        name="promotion_schedule", job=promotion_job, cron_schedule=settings.promotion_cron,
        execution_timezone=settings.fab_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Challengers trained during the day go live at {settings.promotion_cron} "
                    f"({settings.fab_timezone}), if they pass the gate.")


def monitoring_schedule(settings: AmhsSettings) -> dg.ScheduleDefinition:
    """monitoring_job on settings.monitoring_cron (default hourly) in the fab's timezone."""
    return dg.ScheduleDefinition(
        name="monitoring_schedule", job_name=MONITORING_JOB, cron_schedule=settings.monitoring_cron,
        execution_timezone=settings.fab_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Drift, live performance and the dashboard refreshed at "
                    f"{settings.monitoring_cron} ({settings.fab_timezone}) on the stored models "
                    "and data; a failed check starts retraining through "
                    "retraining_trigger_sensor.")


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
