"""The Definitions: assets, checks, jobs, schedules, sensors and resources in one place.

Deployment-specific choices (where the data lives, which MLflow server) are read here, once,
from the environment; assets only ever see resources.
"""

from __future__ import annotations

import os

import dagster as dg

from amhs_assets.assets import ingest
from amhs_assets.resources import AmhsSettings

all_assets = dg.load_assets_from_modules([ingest])
all_checks = dg.load_asset_checks_from_modules([ingest])

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    resources={"settings": AmhsSettings(data_dir=os.environ.get("AMHS_DATA_DIR", "data"))},
)
