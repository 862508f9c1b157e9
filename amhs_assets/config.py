"""The deployment's environment, read in this one module, and the layout of the data folder.

- ``AMHS_DATA_DIR``: the data folder (default ``data``); its layout is `DataLayout`.
- ``AMHS_SETTINGS``: a YAML or JSON file of settings (the fields of ``AmhsSettings``, nested by
  section: ``xgb: {num_boost_round: 200}``); the flat names of earlier versions still work.
- ``MLFLOW_TRACKING_URI``: the MLflow server; unset, the embedded SQLite store of the layout.
- ``AMHS_EXECUTOR``: where the steps of a run execute: ``in_process`` (default: one process per
  run, the embedded profile) or ``celery`` (the production profile: steps go to dagster-celery
  workers through a broker; ``AMHS_CELERY_CONFIG`` names the executor's YAML, default
  ``deploy/celery.yaml``, whose broker and backend come from the environment).

The forecast horizons are a property of the deployment, not of a run: they come from the
settings file's ``horizons`` (default `contract.HORIZONS`) and nowhere else, so the horizon
partitions, the targets and the models cannot disagree.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from amhs_assets.contract import FAB_TIMEZONE, HORIZONS

ENV_DATA_DIR = "AMHS_DATA_DIR"
ENV_SETTINGS = "AMHS_SETTINGS"
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_EXECUTOR = "AMHS_EXECUTOR"
ENV_CELERY_CONFIG = "AMHS_CELERY_CONFIG"
EXECUTORS = ("in_process", "celery")
DEPLOY_DIR = Path(__file__).resolve().parents[1] / "deploy"  # the production profile's files
DEFAULT_DATA_DIR = "data"
HISTORY_START = "2020-01-01"  # first day partition; older raw rows are reported, not stored

# names of earlier (flat) settings -> their place in the nested settings
LEGACY_SETTINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "seed": (("xgb", "seed"), ("ensemble", "seed")),
    "train_stride": (("xgb", "train_stride"), ("ensemble", "train_stride")),
    "xgb_device": (("xgb", "device"),),
    "xgb_rounds": (("xgb", "num_boost_round"),),
    "hgb_max_iter": (("ensemble", "hgb_max_iter"),),
    "mlp_epochs": (("ensemble", "mlp_epochs"),),
    "val_fraction": (("splits", "val_fraction"),),
    "train_window_days": (("splits", "train_window_days"),),
    "test_fraction": (("splits", "test_fraction"),),
    "promotion_metrics": (("gate", "metrics"),),
    "promotion_margin": (("gate", "margin"),),
    "drift_current_hours": (("drift", "current_hours"),),
    "performance_window_hours": (("performance", "window_hours"),),
    "performance_margin": (("performance", "mae_margin"),),
    "performance_min_rows": (("performance", "min_rows"),),
    "performance_backtest_hours": (("performance", "backtest_hours"),),
}


def setting(default: Any, doc: str) -> Any:
    """A field of a pure config dataclass with the description the settings show for it."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata={"doc": doc})
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class DataLayout:
    """Where everything lives under the data folder (assets, the API and the CLI use this)."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def warehouse(self) -> Path:
        """The Parquet datasets of the data assets (see amhs_assets.warehouse)."""
        return self.root / "warehouse"

    @property
    def asset_values(self) -> Path:
        """Values of the non-warehouse assets (models, datasets, reports' inputs) when steps
        run on workers (AMHS_EXECUTOR=celery): under the data folder every worker shares,
        not under one machine's DAGSTER_HOME."""
        return self.root / "asset_values"

    @property
    def mlflow(self) -> Path:
        return self.root.resolve() / "mlflow"

    @property
    def embedded_tracking_uri(self) -> str:
        """The embedded default MLflow store: SQLite under mlflow/."""
        return f"sqlite:///{self.mlflow / 'mlflow.db'}"

    @property
    def embedded_artifacts(self) -> str:
        """The artifact folder of the embedded store."""
        return str(self.mlflow / "artifacts")

    @property
    def registry_lock(self) -> Path:
        """The lock file that serialises champion moves on this host."""
        return self.mlflow / "registry.lock"

    @property
    def dashboard(self) -> Path:
        return self.reports / "dashboard.html"


@dataclass(frozen=True)
class Environment:
    """What the environment says about this deployment."""

    data_dir: Path
    tracking_uri: str | None  # None: the embedded store of the layout
    settings_file: Path | None
    settings: dict  # the settings file's fields, nested, without horizons
    horizons: tuple[int, ...]
    executor: str = "in_process"  # one of EXECUTORS
    celery_config: Path = DEPLOY_DIR / "celery.yaml"

    @property
    def layout(self) -> DataLayout:
        return DataLayout(self.data_dir)

    @property
    def fab_timezone(self) -> str:
        """The timezone of the fab-local days that partition the data (and of the schedules)."""
        return str(self.settings.get("fab_timezone", FAB_TIMEZONE))

    @property
    def history_start(self) -> str:
        """The first fab-local day the day partitions offer (YYYY-MM-DD)."""
        return str(self.settings.get("history_start", HISTORY_START))

    @property
    def days_per_run(self) -> int:
        """Days per run when a backfill of the day partitions is split into runs (0: the whole
        range in one run, a day at a time; 1 or more: runs that the workers share)."""
        return int(self.settings.get("days_per_run", 0))

    @property
    def resolved_tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI, or the embedded store under the data folder."""
        return self.tracking_uri or self.layout.embedded_tracking_uri


def read_settings_file(path: str | Path | None) -> dict:
    """The fields of an AMHS_SETTINGS file, nested by section, earlier flat names translated;
    {} without a file."""
    if not path:
        return {}
    values = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: AMHS_SETTINGS must hold a mapping of AmhsSettings fields")
    out: dict = {}
    for key, value in values.items():
        for section, name in LEGACY_SETTINGS.get(key, ()):
            out.setdefault(section, {}).setdefault(name, value)
        if key not in LEGACY_SETTINGS:
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}  # the nested form wins over a flat name
            else:
                out[key] = value
    return out


def checked_horizons(values: Any, source: str) -> tuple[int, ...]:
    """Forecast horizons: distinct positive whole minutes, sorted."""
    try:
        horizons = tuple(sorted({int(v) for v in values}))
    except (TypeError, ValueError):
        raise ValueError(f"{source}: horizons must be a list of whole minutes, got {values!r}")
    if not horizons or horizons[0] <= 0 or any(float(v) != int(v) for v in values):
        raise ValueError(f"{source}: horizons must be positive whole minutes, got {values!r}")
    return horizons


def read_environment(env: Mapping[str, str] | None = None) -> Environment:
    """The deployment as the environment (os.environ by default) describes it."""
    env = os.environ if env is None else env
    settings_file = Path(env[ENV_SETTINGS]) if env.get(ENV_SETTINGS) else None
    settings = read_settings_file(settings_file)
    horizons = checked_horizons(settings.pop("horizons"), str(settings_file)) \
        if "horizons" in settings else HORIZONS
    data_dir = env.get(ENV_DATA_DIR) or settings.get("data_dir") or DEFAULT_DATA_DIR
    settings["data_dir"] = str(data_dir)  # AMHS_DATA_DIR wins over the file's data_dir
    executor = env.get(ENV_EXECUTOR) or "in_process"
    if executor not in EXECUTORS:
        raise ValueError(f"{ENV_EXECUTOR}={executor!r}: expected one of {', '.join(EXECUTORS)}")
    celery_config = Path(env.get(ENV_CELERY_CONFIG) or DEPLOY_DIR / "celery.yaml")
    return Environment(data_dir=Path(data_dir), tracking_uri=env.get(ENV_TRACKING_URI) or None,
                       settings_file=settings_file, settings=settings, horizons=horizons,
                       executor=executor, celery_config=celery_config)


@functools.cache
def environment() -> Environment:
    """This process's deployment, read once."""
    return read_environment()
