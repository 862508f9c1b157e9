"""The Definitions: assets, checks, jobs, schedules, sensors and resources in one place.

Deployment-specific choices (where the data lives, which MLflow server) are read here, once,
from the environment; assets only ever see resources.
"""

from __future__ import annotations

import os

import dagster as dg

from amhs_assets import automation
from amhs_assets.assets import evaluation, features, ingest, monitoring, registry, training
from amhs_assets.resources import AmhsSettings, MlflowTracking

ASSET_MODULES = [ingest, features, training, evaluation, registry, monitoring]


def build_definitions(settings: AmhsSettings, tracking: MlflowTracking) -> dg.Definitions:
    """Every asset, check, job and schedule, bound to one deployment's resources."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules(ASSET_MODULES),
        asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
        jobs=[automation.promotion_job],
        schedules=[automation.promotion_schedule(settings)],
        resources={"settings": settings, "mlflow": tracking},
    )


def settings_from_env() -> AmhsSettings:
    """This deployment's settings: the data folder from AMHS_DATA_DIR (default data/)."""
    return AmhsSettings(data_dir=os.environ.get("AMHS_DATA_DIR", "data"))


def tracking_from_env() -> MlflowTracking:
    """The embedded SQLite store under $AMHS_DATA_DIR/mlflow/, or MLFLOW_TRACKING_URI's server."""
    return MlflowTracking.for_data_dir(os.environ.get("AMHS_DATA_DIR", "data"),
                                       os.environ.get("MLFLOW_TRACKING_URI") or None)


defs = build_definitions(settings_from_env(), tracking_from_env())
