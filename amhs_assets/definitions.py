"""The Definitions: assets, checks, jobs, schedules, sensors and resources in one place.

The deployment (data folder, MLflow server, settings file) comes from `amhs_assets.config`,
which reads the environment once; assets only ever see resources.
"""

from __future__ import annotations

import dagster as dg

from amhs_assets.config import environment
from amhs_assets.defs import jobs, schedules, sensors
from amhs_assets.defs.executors import default_executor
from amhs_assets.defs.assets import (
    dashboard,
    drift,
    evaluation,
    features,
    ingest,
    performance,
    registry,
    training,
)
from amhs_assets.defs.io_manager import AmhsIOManager
from amhs_assets.defs.resources import AmhsSettings, MlflowTracking, settings_from_environment

ASSET_MODULES = [ingest, features, training, evaluation, registry, drift, performance, dashboard]


def build_definitions(settings: AmhsSettings, tracking: MlflowTracking) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor, bound to one deployment's resources."""
    assets = dg.load_assets_from_modules(ASSET_MODULES)
    keys = {key for a in assets for key in a.keys}
    return dg.Definitions(
        assets=assets,
        asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
        jobs=[jobs.ingest_job, jobs.training_job, jobs.promotion_job, jobs.monitoring_job(keys)],
        schedules=[schedules.retraining_schedule(settings), schedules.promotion_schedule(settings),
                   schedules.monitoring_schedule(settings)],
        sensors=[sensors.raw_data_sensor(settings), sensors.ingested_data_sensor(settings),
                 sensors.retraining_trigger_sensor(settings),
                 sensors.monitoring_after_promotion_sensor(settings),
                 sensors.run_failure_sensor(settings)],
        executor=default_executor(),
        resources={"settings": settings, "mlflow": tracking, "io_manager": AmhsIOManager(
            base_dir=shared_values_dir(settings), warehouse_dir=str(settings.layout.warehouse),
            timezone=settings.fab_timezone)},
    )


def shared_values_dir(settings: AmhsSettings) -> str | None:
    """Where the pickled asset values live: DAGSTER_HOME/storage in the embedded profile, the
    shared data folder when steps run on workers of other machines."""
    return None if environment().executor == "in_process" else str(settings.layout.asset_values)


defs = build_definitions(settings_from_environment(environment()),
                         MlflowTracking.from_environment(environment()))
