"""The Definitions: assets, checks, jobs, schedules, sensors and resources in one place.

Deployment-specific choices (where the data lives, which MLflow server, settings overrides) are
read here, once, from the environment; assets only ever see resources.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import yaml

from amhs_assets.defs import automation
from amhs_assets.defs.assets import evaluation
from amhs_assets.defs.assets import features
from amhs_assets.defs.assets import ingest
from amhs_assets.defs.assets import drift as monitoring
from amhs_assets.defs.assets import registry
from amhs_assets.defs.assets import training
from amhs_assets.defs.assets import dashboard
from amhs_assets.defs.assets import performance
from amhs_assets.defs.io_manager import AmhsIOManager
from amhs_assets.defs.resources import AmhsSettings, MlflowTracking

ASSET_MODULES = [ingest, features, training, evaluation, registry, monitoring, performance, dashboard]


def build_definitions(settings: AmhsSettings, tracking: MlflowTracking) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor, bound to one deployment's resources."""
    assets = dg.load_assets_from_modules(ASSET_MODULES)
    keys = {key for a in assets for key in a.keys}
    return dg.Definitions(
        assets=assets,
        asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
        jobs=[automation.ingest_job, automation.training_job, automation.promotion_job,
              automation.monitoring_job(keys)],
        schedules=[automation.retraining_schedule(settings),
                   automation.promotion_schedule(settings)],
        sensors=[automation.raw_data_sensor(settings),
                 automation.retraining_trigger_sensor(settings)],
        resources={"settings": settings, "mlflow": tracking, "io_manager": AmhsIOManager()},
    )


def settings_overrides(path: str | Path | None) -> dict:
    """AmhsSettings fields from a YAML or JSON file (AMHS_SETTINGS); {} without one."""
    if not path:
        return {}
    values = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: AMHS_SETTINGS must hold a mapping of AmhsSettings fields")
    unknown = sorted(set(values) - set(AmhsSettings.model_fields))
    if unknown:
        raise ValueError(f"{path}: unknown AmhsSettings field(s) {unknown}; known: "
                         f"{sorted(AmhsSettings.model_fields)}")
    return values


def settings_from_env() -> AmhsSettings:
    """This deployment's settings: the fields of the AMHS_SETTINGS file (if set), the data
    folder from AMHS_DATA_DIR (default data/, and it wins over the file's data_dir)."""
    values = settings_overrides(os.environ.get("AMHS_SETTINGS"))
    if os.environ.get("AMHS_DATA_DIR") or "data_dir" not in values:
        values["data_dir"] = os.environ.get("AMHS_DATA_DIR", "data")
    return AmhsSettings(**values)


def tracking_from_env() -> MlflowTracking:
    """The embedded SQLite store under $AMHS_DATA_DIR/mlflow/, or MLFLOW_TRACKING_URI's server."""
    return MlflowTracking.for_data_dir(os.environ.get("AMHS_DATA_DIR", "data"),
                                       os.environ.get("MLFLOW_TRACKING_URI") or None)


defs = build_definitions(settings_from_env(), tracking_from_env())
