"""Training stage: the modelling dataset, per-horizon XGBoost, the unified model, the ensemble."""

import time

import dagster as dg
import pandas as pd

from amhs_assets.contract import HORIZONS
from amhs_assets.ensemble import EnsembleConfig, EnsembleModel, fit_ensemble_model
from amhs_assets.features import feature_rows_usable
from amhs_assets.modeling import (
    HorizonModels,
    ModelDataset,
    XgbConfig,
    build_dataset,
    detect_device,
    fit_horizon_models,
    split_summary,
)
from amhs_assets.reporting import markdown_table
from amhs_assets.resources import AmhsSettings
from amhs_assets.splits import SplitConfig
from amhs_assets.unified import UnifiedModel, fit_unified_model

GROUP = "training"
horizon_partitions = dg.StaticPartitionsDefinition([str(h) for h in HORIZONS])


def xgb_config(settings: AmhsSettings) -> XgbConfig:
    """XGBoost settings from the deployment's settings."""
    return XgbConfig(device=settings.xgb_device, seed=settings.seed)


@dg.asset(group_name=GROUP, kinds={"numpy"})
def model_dataset(settings: AmhsSettings, cleaned_amhs_logs: pd.DataFrame,
                  amhs_features: pd.DataFrame, amhs_targets: pd.DataFrame
                  ) -> dg.Output[ModelDataset]:
    """Usable rows split chronologically per line into train, validation and test, with purge gaps."""
    config = SplitConfig(settings.val_fraction, settings.test_fraction, max(settings.horizons))
    ds = build_dataset(amhs_features, amhs_targets, feature_rows_usable(cleaned_amhs_logs),
                       tuple(settings.horizons), config, settings.thresholds)
    splits = pd.DataFrame(split_summary(ds)).T.rename_axis("split").reset_index()
    bounds = ds.boundaries.astype(str)
    return dg.Output(ds, metadata={
        **{f"rows_{k}": int(v["rows"]) for k, v in split_summary(ds).items()},
        "purge_gap_min": config.gap_min,
        "splits": dg.MetadataValue.md(markdown_table(splits)),
        "boundaries": dg.MetadataValue.md(markdown_table(bounds)),
    })


@dg.asset(group_name=GROUP, kinds={"xgboost"}, partitions_def=horizon_partitions)
def horizon_models(context: dg.AssetExecutionContext, settings: AmhsSettings,
                   model_dataset: ModelDataset) -> dg.Output[HorizonModels]:
    """The original V8 design for one horizon: XGBoost regressors for MIN/MAX/AVG and a state classifier."""
    h = int(context.partition_key)
    started = time.perf_counter()
    model = fit_horizon_models(model_dataset, h, xgb_config(settings))
    return dg.Output(model, metadata={
        "horizon_min": h,
        "device": detect_device() if settings.xgb_device == "auto" else settings.xgb_device,
        "train_seconds": round(time.perf_counter() - started, 2),
        **{f"trees_{k}": v + 1 for k, v in model.best_iterations.items()},
    })


@dg.asset(group_name=GROUP, kinds={"xgboost"})
def unified_model(settings: AmhsSettings, model_dataset: ModelDataset
                  ) -> dg.Output[UnifiedModel]:
    """One XGBoost model for every horizon: rows stacked per horizon, the horizon an input."""
    started = time.perf_counter()
    model = fit_unified_model(model_dataset, xgb_config(settings))
    return dg.Output(model, metadata={
        "horizons_seen": str(list(model.horizons_seen)),
        "train_seconds": round(time.perf_counter() - started, 2),
    })


@dg.asset(group_name=GROUP, kinds={"xgboost", "sklearn"},
          ins={"horizon_models": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
def ensemble_model(settings: AmhsSettings, model_dataset: ModelDataset,
                   horizon_models: dict[str, HorizonModels]) -> dg.Output[EnsembleModel]:
    """A blend of XGBoost, HistGradientBoosting and an MLP, weights chosen on validation only."""
    started = time.perf_counter()
    xgb_models = {int(k): v for k, v in horizon_models.items()}
    model = fit_ensemble_model(model_dataset, xgb_models, EnsembleConfig(seed=settings.seed))
    weights = pd.DataFrame([{"horizon": h, "target": t, **dict(zip(("xgb", "hgb", "mlp"), w))}
                            for (h, t), w in sorted(model.weights.items())])
    return dg.Output(model, metadata={
        "train_seconds": round(time.perf_counter() - started, 2),
        "member_features": len(model.columns),
        "blend_weights": dg.MetadataValue.md(markdown_table(weights)),
    })
