"""Settings shared by every asset (where the data lives, the contract's thresholds) and the
MLflow resource (tracking server and model registry)."""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import typing
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import mlflow
import pydantic
from mlflow import MlflowClient
from pydantic import Field

from amhs_assets.config import DEFAULT_DATA_DIR, HISTORY_START, DataLayout, Environment
from amhs_assets.contract import (
    CRITICAL_THRESHOLD_S,
    FAB_TIMEZONE,
    MAX_FILL_GAP_MIN,
    TARGET_COLUMN,
    TRIGGER_TAG,
    WARNING_THRESHOLD_S,
)
from amhs_assets.evaluation.acceptance import AcceptanceConfig
from amhs_assets.ingest.limits import IngestConfig
from amhs_assets.models.operating import AlarmConfig
from amhs_assets.models.ensemble import EnsembleConfig
from amhs_assets.models.splits import SplitConfig
from amhs_assets.models.xgb import XgbConfig
from amhs_assets.monitoring.drift_calibration import DriftConfig
from amhs_assets.monitoring.performance import PerformanceConfig
from amhs_assets.notify.config import NotifyConfig
from amhs_assets.registry.gate import GateConfig
from amhs_assets.registry.store import connect, ensure_experiment, exclusive_lock

with warnings.catch_warnings():  # dagster-mlflow is marked beta; we pin its version
    warnings.simplefilter("ignore", dg.BetaWarning)
    from dagster_mlflow.resources import MlFlow


class ConfigSection(dg.Config):
    """A settings section generated from a pure config dataclass (see config_section)."""

    def pure(self, **changes: Any) -> Any:
        """The pure config dataclass of these values (lists back to tuples), with changes."""
        config = type(self).pure_config
        values = {name: tuple(v) if isinstance(v, list) else v
                  for name, v in self.model_dump().items()}
        return config(**values, **changes)


def config_section(config: type, exclude: tuple[str, ...] = ()) -> type[ConfigSection]:
    """A Dagster config section generated from a pure config dataclass: the same fields, types,
    defaults and descriptions (one home for each), and ``pure()`` to get the dataclass back."""
    hints = typing.get_type_hints(config)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if f.name in exclude:
            continue
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if typing.get_origin(kind) is tuple:  # Dagster config knows lists, not tuples
            kind, default = list[typing.get_args(kind)[0]], list(default)
        elif typing.get_origin(kind) in (dict, collections.abc.Mapping):
            kind, default = dict[str, str], dict(default)
        fields[f.name] = (kind, Field(default=default, description=f.metadata.get("doc")))
    name = config.__name__.removesuffix("Config") + "Settings"
    section = pydantic.create_model(name, __base__=ConfigSection, __doc__=config.__doc__,
                                    __module__=__name__, **fields)
    type.__setattr__(section, "pure_config", config)
    return section


SplitSettings = config_section(SplitConfig, exclude=("gap_min",))  # gap: the largest horizon
XgbSettings = config_section(XgbConfig)
EnsembleSettings = config_section(EnsembleConfig)
DriftSettings = config_section(DriftConfig)
GateSettings = config_section(GateConfig)
AcceptanceSettings = config_section(AcceptanceConfig)
PerformanceSettings = config_section(PerformanceConfig)
AlarmSettings = config_section(AlarmConfig)
NotifySettings = config_section(NotifyConfig)
IngestSettings = config_section(IngestConfig)
SECTIONS = {"splits": SplitSettings, "xgb": XgbSettings, "ensemble": EnsembleSettings,
            "drift": DriftSettings, "gate": GateSettings,
            "acceptance": AcceptanceSettings, "performance": PerformanceSettings,
            "alarms": AlarmSettings, "notify": NotifySettings, "ingest": IngestSettings}


class AmhsSettings(dg.ConfigurableResource):
    """Data folder, target definition, data-quality limits, schedules and one section per stage's
    pure config; one instance per deployment. The horizons are not here: they are the
    deployment's (`amhs_assets.config`), shared with the horizon partitions."""

    data_dir: str = Field(default=DEFAULT_DATA_DIR, description="AMHS_DATA_DIR: raw/, reports/, ...")
    target_column: str = Field(default=TARGET_COLUMN, description="column the targets summarise")
    warning_s: float = Field(default=WARNING_THRESHOLD_S, description="WARNING when max >= this")
    critical_s: float = Field(default=CRITICAL_THRESHOLD_S, description="CRITICAL when max >= this")
    max_fill_gap_min: int = Field(default=MAX_FILL_GAP_MIN, description="longest gap filled")
    quarantine_warn_share: float = Field(
        default=0.05, description="warn when more than this share of rows is quarantined"
    )
    fab_timezone: str = Field(default=FAB_TIMEZONE, description="timezone of the day partitions, "
                                                               "schedules and pages")
    history_start: str = Field(default=HISTORY_START,
                               description="first fab-local day (YYYY-MM-DD) of the day "
                                           "partitions; raw rows before it are reported")
    days_per_run: int = Field(default=0, ge=0,
                              description="a backfill of the day partitions runs this many days "
                                          "per run (0: the whole range in one run, a day at a "
                                          "time; 1 or more: runs that the Celery workers share)")
    promotion_cron: str = Field(default="0 6 * * *",
                                description="when promotion_job runs, in fab_timezone")
    retraining_cron: str = Field(default="0 2 * * *",
                                 description="when the nightly training_job runs, in fab_timezone")
    monitoring_cron: str = Field(
        default="0 * * * *", description="when monitoring_job runs (drift, live performance, "
                                         "dashboard), in fab_timezone; it also runs after "
                                         "every promotion_job")
    sensor_interval_s: int = Field(
        default=30, description="seconds between two ticks of raw_data_sensor and "
                                "retraining_trigger_sensor")
    pages_url: str = Field(
        default="http://127.0.0.1:8000", description="where people reach `amhs serve`: the "
                                                    "dashboard, evaluation and drift assets link "
                                                    "their pages there in the Dagster UI")
    serve_latency_budget_ms: float = Field(
        default=20.0, description="a candidate slower than this per 2-line request (every "
                                  "horizon) is not registered: the API must answer in real time")
    ingest: IngestSettings = Field(default_factory=IngestSettings,
                                   description="limits on one raw file (bytes, rows, unusable "
                                               "rows): a file over them is quarantined whole")
    splits: SplitSettings = Field(default_factory=SplitSettings,
                                  description="chronological train/validation/test split")
    xgb: XgbSettings = Field(default_factory=XgbSettings,
                             description="every XGBoost model (per horizon, unified, members)")
    ensemble: EnsembleSettings = Field(default_factory=EnsembleSettings,
                                       description="the ensemble's scikit-learn members")
    drift: DriftSettings = Field(default_factory=DriftSettings,
                                 description="drift_report: windows, methods, thresholds")
    gate: GateSettings = Field(default_factory=GateSettings,
                               description="the promotion gate")
    acceptance: AcceptanceSettings = Field(
        default_factory=AcceptanceSettings,
        description="the bars a candidate's test metrics must meet to become challenger")
    performance: PerformanceSettings = Field(default_factory=PerformanceSettings,
                                             description="performance_monitor and its check")
    alarms: AlarmSettings = Field(default_factory=AlarmSettings,
                                  description="operating points, calibration and the refit")
    notify: NotifySettings = Field(default_factory=NotifySettings,
                                   description="webhooks told of CRITICAL episodes (the API), "
                                               "drift and degradation episodes and failed runs")

    @classmethod
    def from_values(cls, values: dict) -> AmhsSettings:
        """Settings from a mapping of fields (nested sections as mappings); an unknown field,
        at the top or in a section, is an error that names the known ones."""
        unknown = sorted(set(values) - set(cls.model_fields))
        for section, model in SECTIONS.items():
            if isinstance(values.get(section), dict):
                unknown += [f"{section}.{k}" for k in sorted(set(values[section]) - set(model.model_fields))]
        if unknown:
            known = sorted(cls.model_fields) + [f"{s}.{k}" for s, m in SECTIONS.items()
                                                 for k in m.model_fields]
            raise ValueError(f"unknown AmhsSettings field(s) {unknown}; known: {known}")
        return cls(**{k: SECTIONS[k](**v) if k in SECTIONS and isinstance(v, dict) else v
                      for k, v in values.items()})

    @property
    def thresholds(self) -> dict:
        return {"warning_s": self.warning_s, "critical_s": self.critical_s,
                "target_column": self.target_column}

    @property
    def layout(self) -> DataLayout:
        return DataLayout(Path(self.data_dir))

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def raw_dir(self) -> Path:
        return self.layout.raw

    def page_url(self, route: str) -> dg.MetadataValue:
        """A link to one of the API's report pages (dashboard, evaluation, drift)."""
        return dg.MetadataValue.url(f"{self.pages_url.rstrip('/')}/{route}")

    @property
    def reports_dir(self) -> Path:
        path = self.layout.reports
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def quarantine_dir(self) -> Path:
        return self.layout.quarantine


def settings_from_environment(environment: Environment) -> AmhsSettings:
    """This deployment's settings: the AMHS_SETTINGS file's fields, the data folder of
    AMHS_DATA_DIR (which wins over the file's data_dir)."""
    source = environment.settings_file or "AMHS_SETTINGS"
    try:
        return AmhsSettings.from_values(environment.settings)
    except (ValueError, pydantic.ValidationError) as error:
        raise ValueError(f"{source}: {error}") from None


def mlflow_run_name(job_name: str, tags: Mapping[str, str], run_id: str) -> str:
    """A readable MLflow run name: job, horizons, trigger and the Dagster run, e.g.
    "training_job h10-25 data 3f2a1b9c"."""
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    single = tags.get("dagster/partition")
    horizons = f"h{start}-{end}" if start and end and start != end else (
        f"h{start or single}" if start or single else "")
    trigger = tags.get(TRIGGER_TAG) or "manual"
    return " ".join(p for p in (job_name.strip("_").lower(), horizons, trigger, run_id[:8]) if p)


@dataclass
class _InitContext:
    """What dagster-mlflow's MlFlow reads from a resource init context."""

    log: Any
    dagster_run: Any
    run_id: str
    resource_config: dict


class MlflowTracking(dg.ConfigurableResource):
    """The MLflow tracking store and model registry: an embedded SQLite store under
    $AMHS_DATA_DIR/mlflow/ by default, a server when MLFLOW_TRACKING_URI names one."""

    tracking_uri: str = Field(description="sqlite:///<data>/mlflow/mlflow.db or http(s)://host")
    artifact_location: str | None = Field(
        default=None, description="artifact folder of the experiment (embedded store; a server "
                                  "chooses its own)")
    experiment_name: str = Field(default="amhs", description="MLflow experiment of every run")
    lock_path: str = Field(description="lock file that serialises champion moves on this host")
    attempts: int = Field(default=3, description="tries before an unreachable server fails")
    timeout_s: float = Field(default=5.0, description="seconds per reachability try")

    @classmethod
    def for_data_dir(cls, data_dir: str | Path, tracking_uri: str | None = None
                     ) -> MlflowTracking:
        """The embedded store under <data>/mlflow/, or the server at tracking_uri."""
        layout = DataLayout(Path(data_dir))
        lock = str(layout.registry_lock)
        if tracking_uri:
            return cls(tracking_uri=tracking_uri, lock_path=lock)
        return cls(tracking_uri=layout.embedded_tracking_uri,
                   artifact_location=layout.embedded_artifacts, lock_path=lock)

    @classmethod
    def from_environment(cls, environment: Environment) -> MlflowTracking:
        """The embedded store under $AMHS_DATA_DIR/mlflow/, or MLFLOW_TRACKING_URI's server."""
        return cls.for_data_dir(environment.data_dir, environment.tracking_uri)

    def client(self) -> MlflowClient:
        """A registry client, once the store answers (TrackingUnreachable after the retries)."""
        return connect(self.tracking_uri, self.attempts, self.timeout_s)

    @contextlib.contextmanager
    def run(self, context: dg.AssetExecutionContext) -> Iterator[MlFlow]:
        """This Dagster run's MLflow run, through dagster-mlflow: found by its dagster_run_id tag
        (so every step of a Dagster run logs to one MLflow run) or started; ended with the block."""
        ensure_experiment(self.client(), self.experiment_name, self.artifact_location)
        mlflow.end_run()  # a run left active in this process belongs to another Dagster run
        name = mlflow_run_name(context.dagster_run.job_name, context.dagster_run.tags,
                               context.run_id)
        run = SimpleNamespace(job_name=name)  # dagster-mlflow names the MLflow run after it
        # steps of one Dagster run in parallel processes must find, not each start, its run
        with warnings.catch_warnings(), exclusive_lock(Path(self.lock_path).with_name("run.lock")):
            warnings.simplefilter("ignore", dg.BetaWarning)
            tracking = MlFlow(_InitContext(context.log, run, context.run_id, {
                "experiment_name": self.experiment_name, "mlflow_tracking_uri": self.tracking_uri,
                "extra_tags": {"dagster_job": context.dagster_run.job_name}}))
        try:
            yield tracking
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        mlflow.end_run()
