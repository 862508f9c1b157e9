"""Training stage: the modelling dataset, per-horizon XGBoost, the unified model, the ensemble."""

import dataclasses
import time
import warnings
from typing import Iterator

import dagster as dg
import pandas as pd

from amhs_assets.contract import FLAG_MISSING, KEY_COLUMNS
from amhs_assets.defs.metadata import markdown_table
from amhs_assets.defs.partitions import TRAINING_POOL, deployment_horizons, horizon_partitions
from amhs_assets.defs.resources import AmhsSettings, MlflowTracking
from amhs_assets.features.compute import feature_rows_usable
from amhs_assets.models.dataset import ModelDataset, build_dataset, split_summary
from amhs_assets.models.ensemble import EnsembleModel, ensemble_steps, fit_ensemble_model
from amhs_assets.models.kinds import KINDS
from amhs_assets.models.operating import HorizonPolicy
from amhs_assets.models.unified import UnifiedModel, fit_unified_model, unified_steps
from amhs_assets.models.xgb import (
    HorizonModels,
    detect_device,
    fit_horizon_models,
    model_steps,
    shared_matrices,
)
from amhs_assets.progress import Progress
from amhs_assets.warehouse import read_days, window_days

GROUP = "training"
# what an asset that reads every candidate model takes (as **models): one input per model kind
CANDIDATE_INS = {kind.asset: dg.AssetIn(partition_mapping=dg.AllPartitionMapping())
                 if kind.partitioned else dg.AssetIn() for kind in KINDS}


def log_training(mlflow: MlflowTracking, context: dg.AssetExecutionContext,
                 settings: AmhsSettings, params: dict, metrics: dict) -> None:
    """Parameters and figures of a fit in this Dagster run's MLflow run (after the model is
    stored: an unreachable tracking server fails the step but loses no model)."""
    split = {"split.val_fraction": settings.splits.val_fraction,
             "split.test_fraction": settings.splits.test_fraction, "seed": settings.xgb.seed}
    with mlflow.run(context) as run:
        run.log_params(split | params)
        run.log_metrics(metrics)


def operating_point_figures(policy: HorizonPolicy | None) -> dict:
    """Thresholds, calibration and validation Brier scores of one horizon's operating point."""
    return policy.summary() if policy else {}


def policy_table(model) -> pd.DataFrame:
    """One row per horizon: the model's operating point."""
    return pd.DataFrame([{"horizon": h, **operating_point_figures(model.policy(h))}
                         for h in model.horizons])


def policy_metrics(points: pd.DataFrame, prefix: str) -> dict[str, float]:
    """The numeric operating-point figures as MLflow metrics, e.g. unified.h10.critical_threshold."""
    return {f"{prefix}.h{int(r['horizon'])}.{k}": float(v) for r in points.to_dict("records")
            for k, v in r.items() if k != "horizon" and isinstance(v, (int, float))
            and not isinstance(v, bool) and v is not None}


def config_params(config, prefix: str) -> dict:
    """A config dataclass as prefixed MLflow parameters."""
    return {f"{prefix}.{k}": v for k, v in dataclasses.asdict(config).items()}


@dg.asset(group_name=GROUP, kinds={"numpy"},
          deps=["cleaned_amhs_logs", "amhs_features", "amhs_targets"])
def model_dataset(context: dg.AssetExecutionContext, settings: AmhsSettings
                  ) -> dg.Output[ModelDataset]:
    """Usable rows of the newest splits.train_window_days (0: all history), split chronologically per line into train, validation and test, with purge gaps."""
    horizons = deployment_horizons()
    config = settings.splits.pure(gap_min=max(horizons))
    warehouse = settings.layout.warehouse
    days = window_days(warehouse / "amhs_features", config.train_window_days)
    context.log.info(f"reading {len(days)} day(s) of the warehouse"
                     + (f" for a {config.train_window_days:g}-day window"
                        if config.train_window_days > 0 else " (all history)"))
    flags = read_days(warehouse / "cleaned_amhs_logs", days, columns=[*KEY_COLUMNS, FLAG_MISSING])
    ds = build_dataset(read_days(warehouse / "amhs_features", days),
                       read_days(warehouse / "amhs_targets", days), feature_rows_usable(flags),
                       horizons, config, settings.thresholds)
    splits = pd.DataFrame(split_summary(ds)).T.rename_axis("split").reset_index()
    bounds = ds.boundaries.astype(str)
    return dg.Output(ds, metadata={
        **{f"rows_{k}": int(v["rows"]) for k, v in split_summary(ds).items()},
        "purge_gap_min": config.gap_min,
        "train_window_days": config.train_window_days, "warehouse_days_read": len(days),
        "splits": dg.MetadataValue.md(markdown_table(splits)),
        "boundaries": dg.MetadataValue.md(markdown_table(bounds)),
    })


# backfill_policy is marked beta; dagster's version is pinned
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


@dg.asset(group_name=GROUP, kinds={"xgboost", "mlflow"}, partitions_def=horizon_partitions,
          backfill_policy=dg.BackfillPolicy.single_run(), pool=TRAINING_POOL)
def horizon_models(context: dg.AssetExecutionContext, settings: AmhsSettings,
                   mlflow: MlflowTracking, model_dataset: ModelDataset
                   ) -> Iterator[dg.Output[HorizonModels | dict[str, HorizonModels]]]:
    """The original V8 design per horizon: XGBoost regressors for MIN/MAX/AVG and a state classifier."""
    # one partition, or (a range in one run: training_job, a single-run backfill) every
    # partition of the run in this step, returned as {partition key: models}
    config, alarms = settings.xgb.pure(), settings.alarms.pure()
    keys = list(context.partition_keys)
    models, rows = {}, []
    matrices = shared_matrices(model_dataset, config)  # quantised once for every horizon
    refit = shared_matrices(model_dataset, config, refit=True) if alarms.refit else None
    progress = Progress("horizon_models", model_steps(len(keys), alarms), "models",
                        context.log.info)
    for key in keys:
        started = time.perf_counter()
        models[key] = fit_horizon_models(model_dataset, int(key), config, matrices, progress,
                                         alarms, refit)
        trees = {f"trees_{k}": v + 1 for k, v in models[key].best_iterations.items()}
        rows.append({"horizon": int(key), "train_seconds": round(time.perf_counter() - started, 2),
                     **trees, "refit": alarms.refit,
                     **operating_point_figures(models[key].policy)})
    progress.close()
    table = pd.DataFrame(rows)
    one = len(keys) == 1
    yield dg.Output(models[keys[0]] if one else models, metadata={
        "horizons": ", ".join(models),
        "device": detect_device() if settings.xgb.device == "auto" else settings.xgb.device,
        "train_seconds": float(table["train_seconds"].sum()),
        **({k: v for k, v in rows[0].items() if k.startswith("trees_")} if one else {}),
        "per_horizon": dg.MetadataValue.md(markdown_table(table)),
    })
    log_training(mlflow, context, settings,
                 config_params(config, "xgb") | config_params(alarms, "alarms"),
                 {f"h{r['horizon']}.{k}": float(v) for r in rows for k, v in r.items()
                  if k != "horizon" and isinstance(v, (int, float)) and v is not None})


@dg.asset(group_name=GROUP, kinds={"xgboost", "mlflow"}, pool=TRAINING_POOL)
def unified_model(context: dg.AssetExecutionContext, settings: AmhsSettings,
                  mlflow: MlflowTracking, model_dataset: ModelDataset
                  ) -> Iterator[dg.Output[UnifiedModel]]:
    """One XGBoost model for every horizon: rows stacked per horizon, the horizon an input."""
    started = time.perf_counter()
    config, alarms = settings.xgb.pure(), settings.alarms.pure()
    with Progress("unified_model", unified_steps(alarms), "models", context.log.info) as progress:
        model = fit_unified_model(model_dataset, config, progress=progress, alarms=alarms)
    seconds = round(time.perf_counter() - started, 2)
    points = policy_table(model)
    yield dg.Output(model, metadata={
        "horizons_seen": str(list(model.horizons_seen)), "train_seconds": seconds,
        "refit": alarms.refit,
        **{f"trees_{k}": int(b.best_iteration) + 1 for k, b in model.regressors.items()},
        "operating_points": dg.MetadataValue.md(markdown_table(points))})
    log_training(mlflow, context, settings,
                 config_params(config, "xgb") | config_params(alarms, "alarms"),
                 {"unified.train_seconds": seconds, **policy_metrics(points, "unified")})


@dg.asset(group_name=GROUP, kinds={"xgboost", "sklearn", "mlflow"},
          ins={"horizon_models": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
          pool=TRAINING_POOL)
def ensemble_model(context: dg.AssetExecutionContext, settings: AmhsSettings,
                   mlflow: MlflowTracking, model_dataset: ModelDataset,
                   horizon_models: dict[str, HorizonModels]
                   ) -> Iterator[dg.Output[EnsembleModel]]:
    """A blend of XGBoost, HistGradientBoosting and an MLP, weights chosen on validation only."""
    started = time.perf_counter()
    xgb_models = {int(k): v for k, v in horizon_models.items()}
    config, alarms = settings.ensemble.pure(), settings.alarms.pure()
    with Progress("ensemble_model", ensemble_steps(model_dataset), "steps",
                  context.log.info) as progress:
        model = fit_ensemble_model(model_dataset, xgb_models, config, progress, alarms)
    seconds = round(time.perf_counter() - started, 2)
    weights = pd.DataFrame([{"horizon": h, "target": t, **dict(zip(("xgb", "hgb", "mlp"), w))}
                            for (h, t), w in sorted(model.weights.items())])
    points = policy_table(model)
    yield dg.Output(model, metadata={
        "train_seconds": seconds,
        "member_features": len(model.columns),
        "blend_weights": dg.MetadataValue.md(markdown_table(weights)),
        "operating_points": dg.MetadataValue.md(markdown_table(points)),
    })
    log_training(mlflow, context, settings,
                 config_params(config, "ensemble") | config_params(alarms, "alarms"),
                 {"ensemble.train_seconds": seconds, **policy_metrics(points, "ensemble")})
