"""Evaluation stage: every model on the test window, against persistence and the V8 bars."""

import dagster as dg
import pandas as pd

from amhs_assets.contract import REGISTERED_MODEL_NAME
from amhs_assets.ensemble import EnsembleModel
from amhs_assets.evaluation import (
    V8_BARS,
    best_on_validation,
    evaluation_document,
    evaluation_records,
    feature_importances,
    predictions_frame,
    summary_table,
)
from amhs_assets.modeling import HorizonModels, ModelDataset, PersistenceModel, XgbModel
from amhs_assets.report import render_evaluation_html
from amhs_assets.reporting import markdown_table, write_json
from amhs_assets.resources import AmhsSettings
from amhs_assets.unified import UnifiedModel

GROUP = "evaluation"
CANDIDATES = ("xgb", "unified", "ensemble")


@dg.asset(
    group_name=GROUP,
    kinds={"json", "html"},
    ins={"horizon_models": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    check_specs=[dg.AssetCheckSpec(f"{m}_beats_persistence", asset="evaluation_report",
                                   description=f"{m} has a lower avg MAE than persistence at "
                                               "every horizon on the test window")
                 for m in CANDIDATES],
)
def evaluation_report(context: dg.AssetExecutionContext, settings: AmhsSettings,
                      model_dataset: ModelDataset, horizon_models: dict[str, HorizonModels],
                      unified_model: UnifiedModel, ensemble_model: EnsembleModel):
    """Every model x horizon x target on the test window: evaluation.json and an HTML report with plots."""
    ds = model_dataset
    xgb = XgbModel({int(k): v for k, v in horizon_models.items()})
    candidates = {"xgb": xgb, "unified": unified_model, "ensemble": ensemble_model}
    champion, val_scores = best_on_validation(candidates, ds)
    models = {"persistence": PersistenceModel.from_dataset(ds), **candidates}
    predictions = predictions_frame(models, ds)
    champ_rows = predictions[predictions["model"] == champion].assign(model="champion")
    predictions = pd.concat([predictions, champ_rows], ignore_index=True)
    records = evaluation_records(predictions)
    document = evaluation_document(ds, records, {
        "name": REGISTERED_MODEL_NAME, "version": None, "source": champion,
        "selected_by": "lowest validation avg MAE (no registry champion yet)",
        "validation_avg_mae": val_scores})
    reports = settings.reports_dir
    json_path = write_json(reports / "evaluation.json", document)
    html = render_evaluation_html(document, predictions, feature_importances(xgb), V8_BARS,
                                  timezone=settings.fab_timezone)
    html_path = reports / "evaluation.html"
    html_path.write_text(html, encoding="utf-8")
    summary = summary_table(records)
    context.log.info("\n" + summary.round(3).to_string(index=False))
    yield dg.Output(document, metadata={
        "evaluation_json": dg.MetadataValue.path(str(json_path)),
        "evaluation_html": dg.MetadataValue.path(str(html_path)),
        "test_rows": document["test_window"]["rows"],
        "champion_source": champion,
        "summary": dg.MetadataValue.md(markdown_table(summary.round(4))),
        **{f"avg_mae_{r.model}_{r.horizon}": float(r.mae) for r in summary.itertuples()},
        **{f"accuracy_{r.model}_{r.horizon}": float(r.accuracy) for r in summary.itertuples()},
    })
    for check in persistence_checks(summary):
        yield check


def persistence_checks(summary: pd.DataFrame) -> list[dg.AssetCheckResult]:
    """One check per candidate: lower avg MAE than persistence at every horizon."""
    pers = summary[summary["model"] == "persistence"].set_index("horizon")["mae"]
    results = []
    for model in CANDIDATES:
        mine = summary[summary["model"] == model].set_index("horizon")["mae"]
        beaten = {int(h): bool(mine[h] < pers[h]) for h in mine.index}
        results.append(dg.AssetCheckResult(
            check_name=f"{model}_beats_persistence",
            passed=bool(beaten) and all(beaten.values()),
            metadata={**{f"mae_{h}": float(mine[h]) for h in mine.index},
                      **{f"persistence_mae_{h}": float(pers[h]) for h in pers.index}},
        ))
    return results
