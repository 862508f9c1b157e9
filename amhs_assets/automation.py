"""Jobs and schedules: the promotion gate runs daily in a planned window, in fab time."""

import dagster as dg

from amhs_assets.resources import AmhsSettings

PROMOTION_ASSETS = dg.AssetSelection.assets("champion_model")

promotion_job = dg.define_asset_job(
    "promotion_job", selection=PROMOTION_ASSETS,
    description="The promotion gate: the challenger becomes champion of amhs-predictor if it "
                "beats it on the same test window (or there is no champion, or the champion's "
                "features are older); the decision and its reason are tagged on the version.")


def promotion_schedule(settings: AmhsSettings) -> dg.ScheduleDefinition:
    """promotion_job on settings.promotion_cron (default daily 06:00) in the fab's timezone."""
    return dg.ScheduleDefinition(
        name="promotion_schedule", job=promotion_job, cron_schedule=settings.promotion_cron,
        execution_timezone=settings.fab_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Challengers trained during the day go live at {settings.promotion_cron} "
                    f"({settings.fab_timezone}), if they pass the gate.")
