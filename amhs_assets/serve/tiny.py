"""A tiny registered champion, trained in seconds on simulated logs: for tests and benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from amhs_assets.contract import (
    CHAMPION_ALIAS,
    HORIZONS,
    RAW_COLUMNS,
    REGISTERED_MODEL_NAME,
    TARGET_COLUMN,
)

START = pd.Timestamp("2026-02-02", tz="UTC")
EXPERIMENT = "amhs-tiny"
THRESHOLDS = {"warning_s": 300.0, "critical_s": 600.0, "target_column": TARGET_COLUMN}


def simulated_rows(line_ids: tuple[str, ...] = ("A", "B"), days: float = 2, seed: int = 21
                   ) -> pd.DataFrame:
    """Raw contract rows of simulated lines (timestamps as UTC datetimes)."""
    from amhs_assets.simulate.lines import simulate_lines

    frames = simulate_lines(list(line_ids), START, days, seed)
    return pd.concat(frames.values(), ignore_index=True)[list(RAW_COLUMNS)]


def train_tiny_predictor(raw: pd.DataFrame):
    """An AmhsPredictor of per-horizon XGBoost models with a handful of shallow trees."""
    from amhs_assets.features.compute import FEATURE_NAMES
    from amhs_assets.models.xgb import XgbConfig, dataset_from_raw, fit_xgb_model
    from amhs_assets.registry.predictor import AmhsPredictor

    dataset = dataset_from_raw(raw, HORIZONS, THRESHOLDS)[1]
    config = XgbConfig(num_boost_round=5, early_stopping_rounds=5, max_depth=3, max_bin=16,
                       device="cpu", seed=3)
    model = fit_xgb_model(dataset, config)
    return AmhsPredictor(model, {"feature_names": list(FEATURE_NAMES)})


def register_version(predictor, raw: pd.DataFrame, tracking_uri: str, workdir: Path,
                     alias: str | None = CHAMPION_ALIAS, metrics: dict | None = None) -> str:
    """Log and register the predictor as a new version of amhs-predictor; point alias at it."""
    import mlflow
    from mlflow import MlflowClient

    from amhs_assets.registry.predictor import log_predictor

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri, tracking_uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:  # artifacts beside the store
        client.create_experiment(EXPERIMENT, artifact_location=str(Path(workdir) / "artifacts"))
    mlflow.set_experiment(EXPERIMENT)
    example = raw[raw["line_id"] == raw["line_id"].iloc[0]].tail(130).copy()
    # MLflow's signature takes naive datetimes only: naive means UTC in the contract
    example["timestamp"] = pd.to_datetime(example["timestamp"], utc=True).dt.tz_convert(None)
    with mlflow.start_run():
        if metrics:
            mlflow.log_metrics(metrics)
        info = log_predictor(predictor, example, Path(workdir), REGISTERED_MODEL_NAME)
    version = str(info.registered_model_version)
    if alias:
        client.set_registered_model_alias(REGISTERED_MODEL_NAME, alias, version)
    return version


def build_tiny_champion(tracking_uri: str, workdir: Path) -> str:
    """Simulate, train and register a champion in the given store; returns its version."""
    raw = simulated_rows()
    return register_version(train_tiny_predictor(raw), raw, tracking_uri, workdir,
                            metrics={"test_mae_avg_h10": 12.3})


def json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as the API takes them: ISO 8601 timestamps, null for empty values."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def request_rows(minutes: int = 150, line_ids: tuple[str, ...] = ("A", "B")) -> list[dict]:
    """The latest `minutes` simulated rows of each line, ready for POST /v1/predict."""
    raw = simulated_rows(line_ids, days=1, seed=5)
    return json_records(raw.groupby("line_id").tail(minutes))
