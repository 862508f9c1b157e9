"""Registry stage: the winning candidate as a version of amhs-predictor, and the promotion gate."""

import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from amhs_assets.contract import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    LOOKBACK_MIN,
    REGISTERED_MODEL_NAME,
    TRIGGER_REASON_TAG,
    TRIGGER_TAG,
)
from amhs_assets.defs.assets.training import CANDIDATE_INS
from amhs_assets.defs.metadata import markdown_table
from amhs_assets.defs.resources import AmhsSettings, MlflowTracking
from amhs_assets.evaluation.acceptance import failures
from amhs_assets.evaluation.acceptance import verdict as acceptance_verdict
from amhs_assets.evaluation.evaluate import operating_point, summary_table
from amhs_assets.features.spec import FEATURE_VERSION
from amhs_assets.models.kinds import candidate_models
from amhs_assets.redact import redact
from amhs_assets.registry.gate import candidate_metrics, persistence_verdicts
from amhs_assets.registry.predictor import LINE_IDS, AmhsPredictor
from amhs_assets.registry.store import (
    apply_gate,
    input_example,
    publish,
    version_ref,
)
from amhs_assets.registry.tags import (
    CHECK_ACCEPTANCE,
    TAG_ACCEPTED,
    TAG_CHECKS,
    TAG_DECISION,
    TAG_REASON,
    acceptance_tags,
    code_version,
    data_fingerprint,
    operating_point_tags,
    train_window_tags,
    trigger_tags,
    version_description,
    version_tags,
)
from amhs_assets.warehouse import read_days, window_days

GROUP = "registry"


def candidate_tags(document: dict, kind: str, fingerprint: str, run_id: str,
                   run_tags: dict[str, str] | None = None) -> dict[str, str]:
    """The tags of the candidate's new version, from the evaluation document and the tags of
    the Dagster run (what triggered it)."""
    records = document["results"]
    verdict = persistence_verdicts(summary_table(records), (kind,))[kind]
    checks, why, extra = {f"{kind}_beats_persistence": verdict["passed"]}, {}, {}
    if "acceptance" in document:  # the acceptance bars (evaluation/acceptance.py)
        rows = document["acceptance"]
        checks[CHECK_ACCEPTANCE] = bool(document["accepted"])
        why[CHECK_ACCEPTANCE] = "; ".join(failures(rows)) or acceptance_verdict(rows)
        extra = acceptance_tags(rows, document["accepted"])
    version = document["champion"].get("version")
    baseline = (version, candidate_metrics(records, "champion")) if version else None
    tags = version_tags(kind=kind, metrics=candidate_metrics(records, kind),
                        window=document["test_window"], fingerprint=fingerprint,
                        feature_version=FEATURE_VERSION, code_version=code_version(),
                        dagster_run_id=run_id, checks=checks, baseline=baseline, why=why)
    return (tags | extra | train_window_tags(document.get("boundaries", []))
            | trigger_tags(run_tags or {}, TRIGGER_TAG, TRIGGER_REASON_TAG))


def training_window_logs(settings: AmhsSettings) -> pd.DataFrame:
    """The cleaned rows of the training window (the days model_dataset reads)."""
    root = settings.layout.warehouse / "cleaned_amhs_logs"
    return read_days(root, window_days(root, settings.splits.train_window_days))


@dg.asset(group_name=GROUP, kinds={"mlflow"}, ins=CANDIDATE_INS, deps=["cleaned_amhs_logs"])
def registered_model(context: dg.AssetExecutionContext, settings: AmhsSettings,
                     mlflow: MlflowTracking, evaluation_report: dict, **models
                     ) -> dg.Output[dict]:
    """The best candidate on validation as a new amhs-predictor version (online features and the models of every horizon in one MLflow pyfunc), challenger if it passed the checks (beats persistence, meets the acceptance bars)."""
    kind = evaluation_report["candidate"]["source"]
    candidates = candidate_models(models)
    model, xgb = candidates[kind], candidates["xgb"]
    cleaned_amhs_logs = training_window_logs(settings)
    fingerprint = data_fingerprint(cleaned_amhs_logs)
    tags = candidate_tags(evaluation_report, kind, fingerprint, context.run_id,
                          dict(context.run.tags))
    tags |= operating_point_tags({h: p.summary() for h in model.horizons
                                  if (p := operating_point(model, h)) is not None})
    predictor = AmhsPredictor(model, {
        "feature_names": list(next(iter(xgb.horizon_models.values())).feature_names),
        "kind": kind, "data_fingerprint": fingerprint,
        "test_window": evaluation_report["test_window"],
        LINE_IDS: sorted(map(str, pd.unique(cleaned_amhs_logs["line_id"])))})
    passed = tags[TAG_CHECKS] == "true"
    with mlflow.run(context) as run, tempfile.TemporaryDirectory() as workdir:
        version = publish(mlflow.client(), REGISTERED_MODEL_NAME, predictor,
                          input_example(cleaned_amhs_logs), Path(workdir), tags,
                          version_description(tags, LOOKBACK_MIN, predictor.horizons),
                          aliases=(CHALLENGER_ALIAS,) if passed else ())
        run_id = run.active_run().info.run_id
    value = {"name": REGISTERED_MODEL_NAME, "version": str(version.version), "run_id": run_id,
             "aliases": list(version.aliases), "tags": dict(version.tags)}
    metrics = pd.DataFrame([{"tag": k, "value": v} for k, v in sorted(version.tags.items())])
    return dg.Output(value, metadata={
        "version": value["version"], "candidate": kind, "passed_checks": passed,
        "accepted": version.tags.get(TAG_ACCEPTED, "not judged"),
        "acceptance": acceptance_verdict(evaluation_report.get("acceptance") or []),
        "aliases": ", ".join(value["aliases"]) or "none (failed the checks)",
        "model_uri": f"models:/{REGISTERED_MODEL_NAME}/{value['version']}",
        "mlflow_run_id": run_id, "tracking_uri": redact(mlflow.tracking_uri),
        "decision": version.tags.get(TAG_DECISION, "awaits promotion_job"),
        "tags": dg.MetadataValue.md(markdown_table(metrics, max_rows=80)),
    })


@dg.asset(group_name=GROUP, kinds={"mlflow"}, deps=[registered_model])
def champion_model(context: dg.AssetExecutionContext, settings: AmhsSettings,
                   mlflow: MlflowTracking) -> dg.Output[dict]:
    """The version the registry serves: the challenger replaces it only if it beats it on the same test window by the configured margin (the promotion gate)."""
    client = mlflow.client()
    decision = apply_gate(client, REGISTERED_MODEL_NAME, settings.gate.pure(), FEATURE_VERSION,
                          who=f"promotion_job {context.run_id[:8]}")
    champion = version_ref(client, REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    value = {"champion": champion.version if champion else None, "decision": decision.outcome,
             "reason": decision.reason, "challenger": decision.challenger,
             "previous_champion": decision.champion}
    context.log.info(f"promotion gate: {decision.outcome}: {decision.reason}")
    comparison = pd.DataFrame(decision.comparison)
    return dg.Output(value, metadata={
        "champion_version": str(value["champion"]), "challenger_version": str(decision.challenger),
        "decision": decision.outcome, TAG_REASON: decision.reason,
        "metrics": ", ".join(settings.gate.metrics),
        "margin": settings.gate.margin,
        "comparison": dg.MetadataValue.md(markdown_table(comparison) if len(comparison)
                                          else "_no metrics compared_"),
    })
