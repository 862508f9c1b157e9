"""Settings shared by every asset (where the data lives, the contract's thresholds) and the
MLflow resource (tracking server and model registry)."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Optional

import dagster as dg
import mlflow
from mlflow import MlflowClient
from pydantic import Field

from amhs_assets.contract import (
    CRITICAL_THRESHOLD_S,
    FAB_TIMEZONE,
    HORIZONS,
    MAX_FILL_GAP_MIN,
    TARGET_COLUMN,
    WARNING_THRESHOLD_S,
)
from amhs_assets.registry.gate import GateConfig
from amhs_assets.registry.store import connect, embedded_store, ensure_experiment, exclusive_lock

with warnings.catch_warnings():  # dagster-mlflow is marked beta; we pin its version
    warnings.simplefilter("ignore", dg.BetaWarning)
    from dagster_mlflow.resources import MlFlow


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
    xgb_rounds: int = Field(default=400, description="most boosting rounds per XGBoost model")
    train_stride: int = Field(
        default=2, description="models learn from every n-th training minute (neighbouring "
                               "minutes are near duplicates; 1 = every minute, ~1.6x the time)")
    hgb_max_iter: int = Field(default=150, description="most iterations of the ensemble's HistGB")
    mlp_epochs: int = Field(default=30, description="most epochs of the ensemble's MLP")
    promotion_metrics: list[str] = Field(
        default=["mean_avg_mae"],
        description="test metrics a challenger must beat the champion on (mean_avg_mae, "
                    "avg_mae_h10, mean_state_accuracy, mean_critical_recall, ...)")
    promotion_margin: float = Field(
        default=0.01, description="relative margin: 0.01 = at least 1% better on every metric")
    promotion_cron: str = Field(default="0 6 * * *",
                                description="when promotion_job runs, in fab_timezone")
    retraining_cron: str = Field(default="0 2 * * *",
                                 description="when the nightly training_job runs, in fab_timezone")
    sensor_interval_s: int = Field(
        default=30, description="seconds between two ticks of raw_data_sensor and "
                                "retraining_trigger_sensor")
    serve_latency_budget_ms: float = Field(
        default=20.0, description="a candidate slower than this per 2-line request (every "
                                  "horizon) is not registered: the API must answer in real time")
    drift_current_hours: float = Field(
        default=24.0, description="the current window of the drift report, hours up to the last minute")
    performance_window_hours: float = Field(
        default=24.0, description="performance check: hours of known outcomes, up to the newest, "
                                  "whose live avg MAE is compared with the evaluated one")
    performance_margin: float = Field(
        default=0.25, description="performance check fails when live avg MAE is worse than "
                                  "evaluated by more than this share (0.25 = 25 %) at a horizon")
    performance_min_rows: int = Field(
        default=60, description="performance check: a horizon with fewer scored rows in the "
                                "window is not judged")
    performance_backtest_hours: float = Field(
        default=72.0, description="performance_monitor scores the newest this many hours (from "
                                  "local midnight), backtesting the champion where the API "
                                  "logged no prediction")

    @property
    def thresholds(self) -> dict:
        return {"warning_s": self.warning_s, "critical_s": self.critical_s,
                "target_column": self.target_column}

    @property
    def gate(self) -> GateConfig:
        return GateConfig(tuple(self.promotion_metrics), self.promotion_margin)

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
    artifact_location: Optional[str] = Field(
        default=None, description="artifact folder of the experiment (embedded store; a server "
                                  "chooses its own)")
    experiment_name: str = Field(default="amhs", description="MLflow experiment of every run")
    lock_path: str = Field(description="lock file that serialises champion moves on this host")
    attempts: int = Field(default=3, description="tries before an unreachable server fails")
    timeout_s: float = Field(default=5.0, description="seconds per reachability try")

    @classmethod
    def for_data_dir(cls, data_dir: str | Path, tracking_uri: str | None = None
                     ) -> "MlflowTracking":
        """The embedded store under <data>/mlflow/, or the server at tracking_uri."""
        uri, artifacts = embedded_store(Path(data_dir))
        lock = str(Path(data_dir).resolve() / "mlflow" / "registry.lock")
        if tracking_uri:
            return cls(tracking_uri=tracking_uri, lock_path=lock)
        return cls(tracking_uri=uri, artifact_location=artifacts, lock_path=lock)

    def client(self) -> MlflowClient:
        """A registry client, once the store answers (TrackingUnreachable after the retries)."""
        return connect(self.tracking_uri, self.attempts, self.timeout_s)

    @contextlib.contextmanager
    def run(self, context: dg.AssetExecutionContext) -> Iterator[MlFlow]:
        """This Dagster run's MLflow run, through dagster-mlflow: found by its dagster_run_id tag
        (so every step of a Dagster run logs to one MLflow run) or started; ended with the block."""
        ensure_experiment(self.client(), self.experiment_name, self.artifact_location)
        mlflow.end_run()  # a run left active in this process belongs to another Dagster run
        job = context.dagster_run.job_name.strip("_").lower()
        run = SimpleNamespace(job_name=f"{job}-{context.run_id[:8]}")  # the MLflow run's name
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
