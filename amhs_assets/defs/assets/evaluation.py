"""Evaluation stage: every model on the test window, against persistence and the V8 bars."""

from pathlib import Path

import dagster as dg
import pandas as pd

from amhs_assets.contract import REGISTERED_MODEL_NAME
from amhs_assets.defs.assets.training import CANDIDATE_INS
from amhs_assets.defs.metadata import markdown_table
from amhs_assets.defs.resources import AmhsSettings, MlflowTracking
from amhs_assets.documents import EvaluationDocument, write_json
from amhs_assets.evaluation.acceptance import accepted, judge, policy, verdict
from amhs_assets.evaluation.evaluate import (
    V8_BARS,
    best_on_validation,
    evaluation_document,
    evaluation_records,
    feature_importances,
    model_thresholds,
    operating_points,
    predictions_frame,
    refit_comparison,
    metrics_by_horizon,
    serving_latency_ms,
    summary_table,
)
from amhs_assets.evaluation.report import render_evaluation_html
from amhs_assets.features.spec import FEATURE_VERSION
from amhs_assets.html import ASSETS_DIR, PLOTLY_JS, write_page
from amhs_assets.models.dataset import ModelDataset
from amhs_assets.models.kinds import KIND_NAMES, candidate_models
from amhs_assets.models.persistence import PersistenceModel
from amhs_assets.models.explain import global_importance
from amhs_assets.models.splits import TEST, VAL
from amhs_assets.models.xgb import XgbModel
from amhs_assets.progress import Progress
from amhs_assets.registry.gate import champion_entry, persistence_verdicts
from amhs_assets.registry.store import champion_for_evaluation, evaluation_metrics

GROUP = "evaluation"
ACCEPTANCE_CHECK = "candidate_meets_acceptance_bars"


@dg.asset(
    group_name=GROUP,
    kinds={"json", "html", "mlflow"},
    ins=CANDIDATE_INS,
    check_specs=[dg.AssetCheckSpec(f"{m}_beats_persistence", asset="evaluation_report",
                                   description=f"{m} has a lower avg MAE than persistence at "
                                               "every horizon on the test window")
                 for m in KIND_NAMES]
    + [dg.AssetCheckSpec(ACCEPTANCE_CHECK, asset="evaluation_report",
                         description="the candidate's test metrics meet every acceptance bar "
                                     "(settings acceptance:); a candidate that fails is "
                                     "registered without the challenger alias")],
)
def evaluation_report(context: dg.AssetExecutionContext, settings: AmhsSettings,
                      mlflow: MlflowTracking, model_dataset: ModelDataset,
                      **models):
    """Every model x horizon x target on the test window: evaluation.json and an HTML report with plots."""
    ds = model_dataset
    candidates = candidate_models(models)
    latency = {name: serving_latency_ms(m, ds) for name, m in candidates.items()}
    best, val_scores = best_on_validation(candidates, ds, latency,
                                          settings.serve_latency_budget_ms)
    context.log.info(f"serving latency per request (ms): {latency}; candidate: {best}")
    ref, registered = champion_for_evaluation(mlflow.client(), REGISTERED_MODEL_NAME,
                                              FEATURE_VERSION)
    models = {"persistence": PersistenceModel.from_dataset(ds), **candidates}
    if registered is not None:
        models["champion"] = registered.model
    with Progress("evaluating on the test window", len(models) * len(ds.horizons),
                  "model-horizons", context.log.info) as progress:
        predictions = predictions_frame(models, ds, progress=progress)
    if registered is None:  # today's behaviour: the best candidate on validation
        champ_rows = predictions[predictions["model"] == best].assign(model="champion")
        predictions = pd.concat([predictions, champ_rows], ignore_index=True)
    served = models | ({} if registered is not None else {"champion": candidates[best]})
    records = evaluation_records(predictions, model_thresholds(served, ds.horizons))
    champion = champion_entry(best, ref, registered is not None, FEATURE_VERSION)
    document = evaluation_document(ds, records, {"name": REGISTERED_MODEL_NAME, **champion})
    document["candidate"] = {"source": best, "validation_avg_mae": val_scores,
                             "serving_latency_ms": latency,
                             "latency_budget_ms": settings.serve_latency_budget_ms}
    document["operating_points"] = operating_points(served, ds.horizons)
    document["refit"] = refit_comparison(candidates, ds)
    document["acceptance_policy"] = policy(settings.acceptance.pure())
    document["acceptance"] = judge(records, best, settings.acceptance.pure())
    document["accepted"] = accepted(document["acceptance"])
    context.log.info(f"candidate {best}: {verdict(document['acceptance'])}")
    json_path, html_path = write_reports(settings, document, predictions, candidates["xgb"],
                                         validation_predictions(served, ds),
                                         champion_explanations(served["champion"], ds))
    summary = summary_table(records)
    # debug: the run's log in the UI has it; `amhs run` prints the one labelled table at its end
    context.log.debug("\n" + metrics_by_horizon(records).round(3).to_string())
    mlflow_run = log_evaluation(mlflow, context, document, (json_path, html_path))
    yield dg.Output(document, metadata={
        "evaluation_json": dg.MetadataValue.path(str(json_path)),
        "evaluation_html": dg.MetadataValue.path(str(html_path)),
        "url": settings.page_url("evaluation"),
        "test_rows": document["test_window"]["rows"],
        "candidate": best,
        "champion_source": str(champion["source"]),
        "champion_version": str(champion["version"]),
        "champion_selected_by": champion["selected_by"],
        "mlflow_run_id": mlflow_run,
        "summary": dg.MetadataValue.md(markdown_table(
            metrics_by_horizon(records).round(4).reset_index())),
        "accepted": document["accepted"],
        "acceptance": dg.MetadataValue.md(markdown_table(pd.DataFrame(document["acceptance"]))),
        **{f"avg_mae_{r.model}_{r.horizon}": float(r.mae) for r in summary.itertuples()},
        **{f"accuracy_{r.model}_{r.horizon}": float(r.accuracy) for r in summary.itertuples()},
    })
    for check in persistence_checks(summary):
        yield check
    yield acceptance_check(document)


def log_evaluation(mlflow: MlflowTracking, context: dg.AssetExecutionContext, document: dict,
                   paths: tuple[Path, ...]) -> str:
    """Metrics per model x horizon x target and the reports (under reports/) in this Dagster
    run's MLflow run; returns the MLflow run id."""
    candidate = document["candidate"]
    with mlflow.run(context) as run:
        run.log_params({"evaluation.candidate": candidate["source"],
                        "evaluation.test_rows": document["test_window"]["rows"],
                        "evaluation.champion_version": str(document["champion"]["version"])})
        run.log_metrics(evaluation_metrics(document["results"]))
        run.log_metrics({f"val.{k}.avg_mae_mean": v
                         for k, v in candidate["validation_avg_mae"].items()})
        for path in paths:
            run.log_artifact(str(path), artifact_path="reports")
        # the page's shared plotly.js beside it, so the downloaded folder opens as it is
        run.log_artifact(str(paths[-1].parent / ASSETS_DIR / PLOTLY_JS),
                         artifact_path=f"reports/{ASSETS_DIR}")
        return run.active_run().info.run_id


def validation_predictions(models: dict, ds: ModelDataset) -> pd.DataFrame:
    """The served models' predictions on the validation rows (where the operating points were
    chosen), for the PR curves and reliability diagrams of the report."""
    return predictions_frame({name: models[name] for name in ("champion", *KIND_NAMES)
                              if name in models}, ds, VAL)


def champion_explanations(model, ds: ModelDataset) -> pd.DataFrame | None:
    """The champion's mean |contribution| per raw column and horizon over the test rows (None
    for a model that cannot be explained)."""
    X = ds.X[ds.mask(TEST)]
    if not len(X):
        return None
    try:
        return pd.concat([global_importance(model, X, h) for h in ds.horizons],
                         ignore_index=True)
    except TypeError:  # not a model kind explain knows
        return None


def write_reports(settings: AmhsSettings, document: dict, predictions: pd.DataFrame,
                  xgb: XgbModel, validation: pd.DataFrame | None = None,
                  explanations: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """evaluation.json and evaluation.html in the reports folder."""
    reports = settings.reports_dir
    EvaluationDocument.model_validate(document)  # the shape other programs read
    json_path = write_json(reports / "evaluation.json", document)
    html = render_evaluation_html(document, predictions, feature_importances(xgb), V8_BARS,
                                  timezone=settings.fab_timezone, validation=validation,
                                  explanations=explanations)
    html_path = write_page(reports / "evaluation.html", html)
    return json_path, html_path


def persistence_checks(summary: pd.DataFrame) -> list[dg.AssetCheckResult]:
    """One check per candidate: lower avg MAE than persistence at every horizon."""
    return [dg.AssetCheckResult(
        check_name=f"{model}_beats_persistence", passed=verdict["passed"],
        metadata={**{f"mae_{h}": v for h, v in verdict["mae"].items()},
                  **{f"persistence_mae_{h}": v for h, v in verdict["persistence_mae"].items()}})
        for model, verdict in persistence_verdicts(summary, KIND_NAMES).items()]


def acceptance_check(document: dict) -> dg.AssetCheckResult:
    """Whether the candidate meets every acceptance bar, with each bar's value."""
    rows = document["acceptance"]
    return dg.AssetCheckResult(
        check_name=ACCEPTANCE_CHECK, passed=document["accepted"],
        description=verdict(rows),
        metadata={"candidate": document["candidate"]["source"],
                  **{r["name"]: f"{r['value']} ({r['rule']}: "
                     f"{ {True: 'pass', False: 'FAIL', None: 'not measured'}[r['passed']]})"
                     for r in rows}})
