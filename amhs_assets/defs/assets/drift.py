"""Monitoring stage: drift of the inputs, the target and the predictions (Evidently)."""

import dagster as dg
import numpy as np
import pandas as pd

from amhs_assets.contract import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from amhs_assets.defs.metadata import markdown_table
from amhs_assets.defs.resources import AmhsSettings, MlflowTracking
from amhs_assets.documents import write_json
from amhs_assets.features.compute import feature_rows_usable
from amhs_assets.features.spec import FEATURE_NAMES
from amhs_assets.models.dataset import ModelDataset
from amhs_assets.models.xgb import HorizonModels
from amhs_assets.monitoring.drift import detect_drift, latest_window, reference_window
from amhs_assets.monitoring.drift_page import write_drift_html
from amhs_assets.registry.store import TrackingUnreachable, version_ref
from amhs_assets.registry.tags import train_window_from_tags
from amhs_assets.warehouse import days_since, read_days, stored_days

GROUP = "monitoring"


def prediction_frame(features: pd.DataFrame, rows: np.ndarray,
                     models: dict[str, HorizonModels]) -> pd.DataFrame:
    """Per line and minute: the predicted avg and CRITICAL probability of every horizon."""
    X = features.loc[rows, list(FEATURE_NAMES)].to_numpy(np.float32)
    out = features.loc[rows, ["line_id", "timestamp"]].reset_index(drop=True)
    for key, model in sorted(models.items(), key=lambda kv: int(kv[0])):
        pred = model.predict(X)
        out[f"avg_{key}"] = pred["avg"]
        out[f"p_critical_{key}"] = pred["proba"][:, 2]
    return out


def champion_training_window(context: dg.AssetExecutionContext, mlflow: MlflowTracking
                             ) -> tuple[pd.DataFrame | None, str | None]:
    """The registry champion's training window (from its tags) and version; (None, None) when
    there is no champion or the tracking server does not answer."""
    try:
        champion = version_ref(mlflow.client(), REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    except TrackingUnreachable as exc:
        context.log.warning(f"champion unknown, drift against the current training window: {exc}")
        return None, None
    if champion is None:
        return None, None
    return train_window_from_tags(champion.tags), champion.version


def read_reference_to_now(context: dg.AssetExecutionContext, settings: AmhsSettings,
                          *bounds: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cleaned logs and features from the earliest reference start (and a day of lookback) to
    the newest minute, from the warehouse: not the history before the reference."""
    warehouse = settings.layout.warehouse
    starts = [pd.to_datetime(b["start"], utc=True).min()
              for b in bounds if b is not None and len(b)]
    days = days_since(warehouse / "cleaned_amhs_logs", min(starts), settings.fab_timezone) \
        if starts else stored_days(warehouse / "cleaned_amhs_logs")
    context.log.info(f"read {len(days)} day(s) of the warehouse (reference start to now)")
    return (read_days(warehouse / "cleaned_amhs_logs", days),
            read_days(warehouse / "amhs_features", days))


@dg.asset(
    group_name=GROUP,
    kinds={"evidently", "html", "json"},
    ins={"horizon_models": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    deps=["cleaned_amhs_logs", "amhs_features"],
)
def drift_report(context: dg.AssetExecutionContext, settings: AmhsSettings,
                 mlflow: MlflowTracking, model_dataset: ModelDataset,
                 horizon_models: dict[str, HorizonModels]):
    """Drift of the latest day against the champion's training window, per line: inputs, target, predictions."""
    config = settings.drift.pure()
    champion_bounds, champion = champion_training_window(context, mlflow)
    cleaned, amhs_features = read_reference_to_now(context, settings, model_dataset.boundaries,
                                                   champion_bounds)
    reference, source = reference_window(cleaned, model_dataset.boundaries, champion_bounds,
                                         champion)
    context.log.info(f"drift reference: {source}")
    current = latest_window(cleaned, config.current_hours)
    usable = feature_rows_usable(cleaned)
    ref_rows = usable & cleaned.index.isin(reference.index)
    cur_rows = usable & cleaned.index.isin(current.index)
    reports = settings.reports_dir
    try:
        result = detect_drift(reference, current, config,
                              prediction_frame(amhs_features, ref_rows, horizon_models),
                              prediction_frame(amhs_features, cur_rows, horizon_models))
    except ValueError as exc:  # too little data to compare: say so, do not fail the graph
        document = {"drift_detected": False, "share_drifted": 0.0, "columns": {},
                    "status": "not enough data", "reason": str(exc), "reference": source}
        write_json(reports / "drift.json", document)
        context.log.warning(f"drift not computed: {exc}")
        return dg.Output(document, metadata={"status": "not enough data", "reason": str(exc),
                                             "reference_source": source["source"]})
    document = result.document
    document["reference"] |= source
    json_path = write_json(reports / "drift.json", document)
    html_path = write_drift_html(result, reports / "drift.html", settings.fab_timezone)
    top = sorted(document["columns"].items(), key=lambda kv: -kv[1]["score"])[:10]
    table = pd.DataFrame([{"column": k, **{f: v[f] for f in ("score", "threshold", "drifted")}}
                          for k, v in top])
    return dg.Output(document, metadata={
        "drift_detected": bool(document["drift_detected"]),
        "share_drifted": float(document["share_drifted"]),
        "drift_share": float(document["drift_share"]),
        "drifted_columns": ", ".join(k for k, v in top if v["drifted"]),
        "reference_source": source["source"],
        "reference_champion": str(source["champion_version"]),
        "target_drifted": bool(document.get("target", {}).get("drifted", False)),
        "predictions_share_drifted": float(document["predictions"].get("share_drifted", 0.0)),
        "reference_rows": int(document["reference"]["rows"]),
        "current_rows": int(document["current"]["rows"]),
        "drift_json": dg.MetadataValue.path(str(json_path)),
        "drift_html": dg.MetadataValue.path(str(html_path)),
        "url": settings.page_url("drift"),
        "most_drifted": dg.MetadataValue.md(markdown_table(table) if len(table) else "none"),
    })
