"""Monitoring stage: live performance of the served model against its evaluated level."""

import math
import time

import dagster as dg
import pandas as pd

from amhs_assets.contract import CHAMPION_ALIAS, LOOKBACK_MIN, RAW_COLUMNS, REGISTERED_MODEL_NAME
from amhs_assets.defs.assets.training import CANDIDATE_INS
from amhs_assets.defs.metadata import markdown_table
from amhs_assets.defs.partitions import deployment_horizons
from amhs_assets.defs.resources import AmhsSettings, MlflowTracking
from amhs_assets.documents import PerformanceDocument, write_json
from amhs_assets.features.spec import FEATURE_NAMES, FEATURE_VERSION
from amhs_assets.models.kinds import candidate_models
from amhs_assets.monitoring.live import (
    Forecaster,
    actual_outcomes,
    backtest_predictions,
    combine,
    known,
    read_prediction_log,
    score,
    window_start,
)
from amhs_assets.monitoring.performance import (
    PerformanceResult,
    append_history,
    degradation,
    levels_frame,
    levels_from_records,
    performance_document,
    period_metrics,
    with_levels,
)
from amhs_assets.monitoring.versions import version_levels
from amhs_assets.registry.predictor import AmhsPredictor, InputError, lines_from_frame
from amhs_assets.registry.store import champion_for_evaluation
from amhs_assets.registry.tags import TAG_FEATURES, TAG_KIND
from amhs_assets.warehouse import read_days, window_days

GROUP = "monitoring"
CHECK = "performance_within_evaluated_level"


def watched_model(mlflow: MlflowTracking, evaluation: dict, candidates: dict[str, Forecaster]
                  ) -> tuple[Forecaster, tuple[str, ...], dict]:
    """The registry's champion (loaded from MLflow), else the evaluation's candidate, with a
    description of which and why."""
    ref, predictor = champion_for_evaluation(mlflow.client(), REGISTERED_MODEL_NAME, FEATURE_VERSION)
    if predictor is not None:
        return predictor.model, predictor.model_feature_names, {
            "name": REGISTERED_MODEL_NAME, "version": ref.version, "version_label": ref.version,
            "alias": CHAMPION_ALIAS, "kind": ref.tags.get(TAG_KIND),
            "selected_by": f"registry alias '{CHAMPION_ALIAS}'"}
    kind = evaluation["candidate"]["source"]
    why = ("no champion in the registry yet" if ref is None else
           f"champion v{ref.version} has feature version {ref.tags.get(TAG_FEATURES)}, not "
           f"{FEATURE_VERSION}: it cannot run on today's features")
    return candidates[kind], FEATURE_NAMES, {
        "name": REGISTERED_MODEL_NAME, "version": None, "version_label": f"candidate-{kind}",
        "alias": None, "kind": kind, "selected_by": f"evaluation candidate ({why})"}


def evaluated_levels(mlflow: MlflowTracking, versions: list[str], model: dict, evaluation: dict
                     ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Each version's evaluated metrics per horizon (MLflow for registered versions, the
    evaluation document for the candidate), and where each came from."""
    levels, sources = {}, {}
    for version in versions:  # the versions in the window: a handful
        if version == model["version_label"] and model["version"] is None:
            levels[version] = levels_from_records(evaluation["results"], model["kind"])
            sources[version] = f"evaluation.json ({model['kind']})"
        elif version.isdigit():
            levels[version], sources[version] = version_levels(
                mlflow.client(), REGISTERED_MODEL_NAME, version)
    return levels_frame(levels), sources


def latest_explanations(cleaned: pd.DataFrame, model, feature_names: tuple[str, ...], log
                        ) -> list[dict]:
    """The watched model's forecast of each line's newest minute with its explanation (the
    API's answer with explain), for the dashboard's "why" beside each light. A line whose
    newest rows cannot be forecast or explained (a gap in the lookback, a model that cannot be
    explained) is skipped with a warning; the monitoring goes on."""
    predictor = AmhsPredictor(model, {"feature_names": list(feature_names)})
    newest = cleaned.sort_values(["line_id", "timestamp"]).groupby("line_id").tail(LOOKBACK_MIN)
    out = []
    for line_id, rows in newest.groupby("line_id", sort=True):  # a handful of lines
        try:
            lines = lines_from_frame(rows[list(RAW_COLUMNS)])
            out += predictor.predict_lines(lines, explain=True)
        except (InputError, TypeError, ValueError) as exc:  # the "why" is an aid: say, go on
            log.warning(f"no explanation for line {line_id!r}: {exc}")
    return out


def metadata_figures(document: dict, scored: pd.DataFrame) -> dict:
    """Numeric key figures of a run for the asset's plots (NaN left out)."""
    figures: dict[str, float | int] = {
        "rows_scored": int(known(scored).sum()), "rows_pending": int((~known(scored)).sum()),
        "log_predictions": int(document["sources"]["prediction_log"].get("predictions", 0)),
        "backtest_predictions": int(document["sources"]["backtest"]["rows"]),
        "window_rows": int(document["window"]["rows"])}
    for h, live in document["live"].items():
        figures |= {f"live_mae_avg_h{h}": live["live_mae_avg"],
                    f"evaluated_mae_avg_h{h}": live["evaluated_mae_avg"],
                    f"mae_ratio_h{h}": live["ratio"], f"rows_h{h}": live["rows"]}
    for h, level in document.get("window_metrics", {}).items():
        figures |= {f"critical_recall_h{h}": level.get("critical_recall"),
                    f"accuracy_h{h}": level.get("accuracy")}
    return {k: v for k, v in figures.items()
            if v is not None and not (isinstance(v, float) and math.isnan(v))}


@dg.asset(
    group_name=GROUP,
    kinds={"json", "parquet", "mlflow"},
    deps=[dg.AssetKey("champion_model"), dg.AssetKey("cleaned_amhs_logs")],
    ins=CANDIDATE_INS,
    check_specs=[dg.AssetCheckSpec(
        CHECK, asset="performance_monitor",
        description="over the last performance.window_hours of known outcomes, at every "
                    "horizon: live avg MAE at most evaluated x (1 + mae_margin), live state "
                    "accuracy and CRITICAL recall at least evaluated x (1 - their margin)")],
)
def performance_monitor(context: dg.AssetExecutionContext, settings: AmhsSettings,
                        mlflow: MlflowTracking, evaluation_report: dict, **models):
    """Live error of the served model (API prediction log, else a backtest of the champion on the newest data) against actual outcomes, per line, horizon, version, hour and day, next to its evaluated level."""
    started = time.perf_counter()
    tz = settings.fab_timezone
    # only the days the backtest window and its lookback cover, not the whole history
    root = settings.layout.warehouse / "cleaned_amhs_logs"
    days = window_days(root, settings.performance.backtest_hours / 24 + 1)
    cleaned = read_days(root, days)
    context.log.info(f"read {len(days)} day(s) of cleaned logs ({len(cleaned):,} rows)")
    candidates = candidate_models(models)
    model, feature_names, info = watched_model(mlflow, evaluation_report, candidates)
    context.log.info(f"watching {info['version_label']}: {info['selected_by']}")
    since = window_start(cleaned["timestamp"].max(), settings.performance.backtest_hours, tz)
    logged, log_stats = read_prediction_log(settings.root / "predictions", since)
    horizons = tuple(h for h in deployment_horizons() if h in model.horizons)
    backtest = backtest_predictions(cleaned, model, info["version_label"], since, horizons,
                                    feature_names)
    predictions = combine(logged, backtest)
    all_horizons = tuple(sorted({*deployment_horizons(), *map(int, predictions["horizon"].unique())}))
    scored = score(predictions, actual_outcomes(cleaned, since, all_horizons, settings.thresholds))
    versions = sorted(set(scored["model_version"]))
    levels, level_sources = evaluated_levels(mlflow, versions, info, evaluation_report)
    periods = with_levels(period_metrics(scored, tz), levels)
    verdict = degradation(scored, levels, settings.performance.pure())
    sources = {"prediction_log": {"directory": str(settings.root / "predictions"), **log_stats},
               "backtest": {"since": since.isoformat(), "hours": settings.performance.backtest_hours,
                            "rows": int(len(backtest)),
                            "used": int((predictions["source"] == "backtest").sum())},
               "evaluated_levels": level_sources}
    document = performance_document(model=info, verdict=verdict, levels=levels, periods=periods,
                                    scored=scored, sources=sources, tz=tz)
    PerformanceDocument.model_validate(document)
    reports = settings.reports_dir
    json_path = write_json(reports / "performance.json", document)
    history = append_history(reports / "performance_history.parquet", periods)
    elapsed = time.perf_counter() - started
    context.log.info(f"performance: {verdict.reason} ({elapsed:.1f} s)")
    live = pd.DataFrame([{"horizon": h, **v} for h, v in document["live"].items()])
    flag = {"degraded": verdict.degraded} if verdict.judged else {}  # absent: could not tell
    explanations = latest_explanations(cleaned, model, feature_names, context.log)
    yield dg.Output(PerformanceResult(document, scored, history, explanations), metadata={
        **metadata_figures(document, scored), **flag,
        "degradation_reason": verdict.reason,
        "failed_checks": ", ".join(verdict.failed) or "none",
        "model_version": str(info["version_label"]), "selected_by": info["selected_by"],
        "history_rows": len(history), "seconds": round(elapsed, 2),
        "performance_json": dg.MetadataValue.path(str(json_path)),
        "performance_history": dg.MetadataValue.path(str(reports / "performance_history.parquet")),
        "live_vs_evaluated": dg.MetadataValue.md(markdown_table(live) if len(live) else "no rows"),
    })
    yield dg.AssetCheckResult(
        check_name=CHECK, passed=not verdict.degraded,
        severity=dg.AssetCheckSeverity.ERROR,
        description=verdict.reason,
        metadata={"degraded": verdict.degraded, "degradation_reason": verdict.reason,
                  "failed_checks": ", ".join(verdict.failed) or "none",
                  "mae_margin": settings.performance.mae_margin,
                  "accuracy_margin": settings.performance.accuracy_margin,
                  "critical_recall_margin": settings.performance.critical_recall_margin,
                  "window_hours": settings.performance.window_hours,
                  **{k: v for k, v in metadata_figures(document, scored).items()
                     if k.startswith(("live_mae", "evaluated_mae", "mae_ratio", "rows_h"))}})
