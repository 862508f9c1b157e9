"""Settings shared by every asset: where the data lives and the thresholds of the contract."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from amhs_assets.contract import (
    CRITICAL_THRESHOLD_S,
    FAB_TIMEZONE,
    HORIZONS,
    MAX_FILL_GAP_MIN,
    TARGET_COLUMN,
    WARNING_THRESHOLD_S,
)


class AmhsSettings(dg.ConfigurableResource):
    """Data folder, target definition and data-quality limits; one instance per deployment."""

    data_dir: str = Field(default="data", description="AMHS_DATA_DIR: raw/, reports/, ...")
    target_column: str = Field(default=TARGET_COLUMN, description="column the targets summarise")
    horizons: list[int] = Field(default=list(HORIZONS), description="forecast horizons, minutes")
    warning_s: float = Field(default=WARNING_THRESHOLD_S, description="WARNING when max >= this")
    critical_s: float = Field(default=CRITICAL_THRESHOLD_S, description="CRITICAL when max >= this")
    max_fill_gap_min: int = Field(default=MAX_FILL_GAP_MIN, description="longest gap filled")
    quarantine_warn_share: float = Field(
        default=0.05, description="warn when more than this share of rows is quarantined"
    )
    fab_timezone: str = Field(default=FAB_TIMEZONE, description="timezone of schedules and pages")
    seed: int = Field(default=42, description="seed of every model fit")
    xgb_device: str = Field(default="auto", description="XGBoost device: auto, cpu or cuda")
    val_fraction: float = Field(default=0.2, description="share of each line's span for validation")
    test_fraction: float = Field(default=0.2, description="share of each line's span for test")

    @property
    def thresholds(self) -> dict:
        return {"warning_s": self.warning_s, "critical_s": self.critical_s,
                "target_column": self.target_column}

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @property
    def reports_dir(self) -> Path:
        path = self.root / "reports"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"
