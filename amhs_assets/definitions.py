"""The Definitions: assets, checks, jobs, schedules, sensors and resources in one place.

Deployment-specific choices (where the data lives, which MLflow server) are read here, once,
from the environment; assets only ever see resources.
"""

from __future__ import annotations

import os

import dagster as dg

from amhs_assets.assets import evaluation, features, ingest, training
from amhs_assets.resources import AmhsSettings

ASSET_MODULES = [ingest, features, training, evaluation]

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(ASSET_MODULES),
    asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
    resources={"settings": AmhsSettings(data_dir=os.environ.get("AMHS_DATA_DIR", "data"))},
)
