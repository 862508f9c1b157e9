"""The training, evaluation and registry assets materialized into a temporary Dagster instance
and an embedded MLflow store, with small models trained once for the module."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Iterator

import dagster as dg
import mlflow
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from threadpoolctl import threadpool_limits

from amhs_assets.contract import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    FAB_TIMEZONE,
    HORIZONS,
    NUMERIC_COLUMNS,
    TARGET_COLUMN,
)
from amhs_assets.contract import (
    REGISTERED_MODEL_NAME as NAME,
)
from amhs_assets.definitions import ASSET_MODULES
from amhs_assets.defs import jobs
from amhs_assets.defs.assets.registry import candidate_tags
from amhs_assets.defs.resources import AmhsSettings, MlflowTracking
from amhs_assets.evaluation.evaluate import (
    evaluation_document,
    evaluation_records,
    predictions_frame,
)
from amhs_assets.features.spec import FEATURE_VERSION
from amhs_assets.models.dataset import dataset_from_raw
from amhs_assets.models.ensemble import EnsembleConfig, fit_ensemble_model
from amhs_assets.models.persistence import PersistenceModel
from amhs_assets.models.unified import fit_unified_model
from amhs_assets.models.xgb import XgbConfig, XgbModel, fit_horizon_models
from amhs_assets.registry import store as reg
from amhs_assets.registry.gate import GateConfig
from amhs_assets.registry.predictor import AmhsPredictor, load_registered
from amhs_assets.registry.tags import data_fingerprint
from amhs_assets.simulate.lines import simulate_lines
from amhs_assets.warehouse import write_days

THRESHOLDS = {"warning_s": 300.0, "critical_s": 600.0, "target_column": TARGET_COLUMN}


@dataclasses.dataclass(frozen=True)
class OneThread(XgbConfig):
    """XgbConfig on one thread: on a shared 2-core box two threads each spin-wait (6x slower)."""

    def params(self) -> dict:
        return super().params() | {"nthread": 1}


FAST = OneThread(num_boost_round=10, max_depth=4, early_stopping_rounds=5, seed=3)
TINY_ENSEMBLE = EnsembleConfig(top_features=16, hgb_max_iter=5, hgb_max_rows=3000,
                               mlp_hidden=(8,), mlp_epochs=1, mlp_max_rows=3000, seed=3)
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing answers


class Preloaded(dg.IOManager):
    """Upstream values built in the test; outputs kept (per partition) for inspection."""

    def __init__(self, values: dict):
        self.values = values
        self.stored: dict[tuple[str, str | None], object] = {}

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        key = context.asset_key.path[-1]
        partition = context.partition_key if context.has_partition_key else None
        self.stored[key, partition] = obj
        if partition is None:
            self.values[key] = obj

    def load_input(self, context: dg.InputContext):
        return self.values[context.upstream_output.asset_key.path[-1]]


def world_settings(data: Path, **changes) -> dict:
    """The world's settings values (plus changes)."""
    return {"data_dir": str(data), "xgb": {"num_boost_round": 5},
            "serve_latency_budget_ms": 1e9, **changes}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two simulated lines x 4 days, small models of each kind, a Dagster instance, a store."""
    data = tmp_path_factory.mktemp("data")
    raw = pd.concat(simulate_lines(["A", "B"], pd.Timestamp("2026-02-02", tz="UTC"), 4, 21).values())
    cleaned, ds = dataset_from_raw(raw, HORIZONS, THRESHOLDS, gap_min=25)
    xgb = {h: fit_horizon_models(ds, h, FAST) for h in HORIZONS}
    with threadpool_limits(1):  # scikit-learn's OpenMP threads, as OneThread
        values = {"cleaned_amhs_logs": cleaned, "model_dataset": ds,
                  "horizon_models": {str(h): m for h, m in xgb.items()},
                  "unified_model": fit_unified_model(ds, FAST, row_share=0.2),
                  "ensemble_model": fit_ensemble_model(ds, xgb, TINY_ENSEMBLE)}
    io = Preloaded(values)
    # registered_model reads its training window's cleaned rows from the warehouse
    write_days(cleaned, AmhsSettings.from_values({"data_dir": str(data)}).layout.warehouse
               / "cleaned_amhs_logs", FAB_TIMEZONE)
    # an unbounded latency budget: the candidate is chosen on validation alone, not on serving
    # latency measured under whatever load the machine has (that made the choice flaky)
    settings = AmhsSettings.from_values(world_settings(data))
    tracking = MlflowTracking.for_data_dir(data)
    with dg.instance_for_test() as instance:
        yield types.SimpleNamespace(data=data, io=io, settings=settings, tracking=tracking,
                                    instance=instance, client=tracking.client(),
                                    candidates={"xgb": XgbModel(xgb), **{
                                        k: values[f"{k}_model"] for k in ("unified", "ensemble")}})


def resources(world, tracking: MlflowTracking | None = None,
              settings: AmhsSettings | None = None) -> dict:
    return {"settings": settings or world.settings, "mlflow": tracking or world.tracking,
            "io_manager": dg.IOManagerDefinition.hardcoded_io_manager(world.io)}


def materialize(world, *keys: str, partition: str | None = None,
                tracking: MlflowTracking | None = None, settings: AmhsSettings | None = None
                ) -> dg.ExecuteInProcessResult:
    """Materialize the named assets; upstream values come from the Preloaded IO manager."""
    return dg.materialize(dg.load_assets_from_modules(ASSET_MODULES), selection=list(keys),
                          partition_key=partition, instance=world.instance,
                          resources=resources(world, tracking, settings), raise_on_error=False)


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """The first step failure's error, causes included."""
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.error.to_string()


def promotion(world) -> dict:
    """Run promotion_job once; the gate's decision."""
    defs = dg.Definitions(assets=dg.load_assets_from_modules(ASSET_MODULES),
                          jobs=[jobs.promotion_job], resources=resources(world))
    result = defs.resolve_job_def("promotion_job").execute_in_process(instance=world.instance)
    return result.output_for_node("champion_model")


def mlflow_run_of(world, dagster_run_id: str):
    """The MLflow run the dagster-mlflow resource made for a Dagster run."""
    experiment = world.client.get_experiment_by_name("amhs").experiment_id
    runs = world.client.search_runs([experiment], f"tags.dagster_run_id = '{dagster_run_id}'")
    assert len(runs) == 1
    return runs[0]


@pytest.fixture(scope="module")
def two_versions(world):
    """Register and promote a first version; evaluate again, register the same model with the
    tags of the second evaluation (no second pyfunc upload) and run the gate again."""
    first = materialize(world, "evaluation_report", "registered_model")
    assert first.success
    gate1 = promotion(world)
    second = materialize(world, "evaluation_report")
    assert second.success
    document = second.output_for_node("evaluation_report")
    v1 = world.client.get_model_version(NAME, "1")
    tags = candidate_tags(document, document["candidate"]["source"],
                          v1.tags["data_fingerprint"], second.run_id)
    info = types.SimpleNamespace(model_uri=v1.source, run_id=v1.run_id, model_id=v1.model_id)
    reg.register_version(world.client, NAME, info, tags, "second", (CHALLENGER_ALIAS,))
    return types.SimpleNamespace(first=first, second=second, gate1=gate1, gate2=promotion(world))


def test_training_logs_params_and_metrics_to_the_dagster_runs_mlflow_run(world):
    result = materialize(world, "horizon_models", partition="10")
    assert result.success
    run = mlflow_run_of(world, result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["xgb.num_boost_round"] == "5" and run.data.params["seed"] == "42"
    assert "h10.train_seconds" in run.data.metrics and "h10.trees_avg" in run.data.metrics


def test_unreachable_tracking_fails_training_clearly_but_keeps_the_model(world):
    bad = MlflowTracking(tracking_uri=UNREACHABLE, lock_path=world.tracking.lock_path,
                         attempts=2, timeout_s=0.5)
    result = materialize(world, "horizon_models", partition="15", tracking=bad)
    assert not result.success
    assert "unreachable after 2 attempt" in failure_text(result)
    assert isinstance(world.io.stored["horizon_models", "15"], type(world.io.values[
        "horizon_models"]["10"]))  # the trained model is in Dagster's storage
    assert result.asset_materializations_for_node("horizon_models")


def test_evaluation_and_registration_are_tracked_and_tagged(world, two_versions):
    run = mlflow_run_of(world, two_versions.first.run_id)
    assert run.data.metrics["test.xgb.h10.avg.mae"] > 0
    assert "test.persistence.h25.state.recall_CRITICAL" in run.data.metrics
    reports = {a.path for a in world.client.list_artifacts(run.info.run_id, "reports")}
    # the report and the plotly.js it loads from assets/, so a downloaded folder opens
    assert reports == {"reports/evaluation.json", "reports/evaluation.html", "reports/assets"}
    shared = {a.path for a in world.client.list_artifacts(run.info.run_id, "reports/assets")}
    assert any(p.startswith("reports/assets/plotly-") and p.endswith(".min.js") for p in shared)
    document = two_versions.first.output_for_node("evaluation_report")
    v1 = world.client.get_model_version(NAME, "1")
    assert v1.run_id == run.info.run_id and "AMHS predictor" in v1.description
    tags = v1.tags
    assert tags["candidate_kind"] == document["candidate"]["source"]
    assert tags["feature_version"] == FEATURE_VERSION and tags["dagster_run_id"] == run.data.tags[
        "dagster_run_id"]
    assert tags["data_fingerprint"] == data_fingerprint(world.io.values["cleaned_amhs_logs"])
    assert tags["code_version"] and tags["test_window_rows"] == str(document["test_window"]["rows"])
    assert {"test_avg_mae_h10", "test_state_accuracy_h25", "test_mean_critical_recall"} <= set(tags)
    # the default acceptance bars let the world's small models through, and say so
    assert document["accepted"] is True and tags["accepted"] == "true"
    assert tags["acceptance_avg_r2_h25"].startswith("pass ")
    assert "meets_acceptance_bars=pass" in tags["checks"]


def test_the_first_version_becomes_champion_and_later_ones_are_compared_to_it(world, two_versions):
    assert two_versions.gate1["decision"] == "promoted" and two_versions.gate1["champion"] == "1"
    document = two_versions.second.output_for_node("evaluation_report")
    assert document["champion"]["version"] == "1"  # the champion rows are the registry's
    assert document["champion"]["selected_by"] == "registry alias 'champion'"
    v2 = world.client.get_model_version(NAME, "2").tags
    assert v2["baseline_version"] == "1"
    # the champion rows are v1's: compare them with the rows of v1's kind in this run
    kind = world.client.get_model_version(NAME, "1").tags["candidate_kind"]
    champion = [r for r in document["results"] if r["model"] == "champion"]
    mine = [r for r in document["results"] if r["model"] == kind]
    assert [r.get("mae") for r in champion] == pytest.approx([r.get("mae") for r in mine])
    # the same model on the same window is not 1% better: the champion stays
    assert two_versions.gate2["decision"] == "kept_champion" and two_versions.gate2["champion"] == "1"
    assert v2["promotion_decision"] == "kept_champion" and "does not beat" in v2["promotion_reason"]
    assert reg.version_ref(world.client, NAME, CHALLENGER_ALIAS).version == "2"
    saved = json.loads((world.data / "reports" / "evaluation.json").read_text())
    assert saved["champion"] == document["champion"]


def test_the_champion_predicts_raw_rows_in_a_fresh_process(world, two_versions, tmp_path):
    rows = reg.input_example(world.io.values["cleaned_amhs_logs"], minutes=125)
    rows = rows.astype({c: "float64" for c in NUMERIC_COLUMNS})
    rows.to_csv(tmp_path / "rows.csv", index=False)
    script = (
        "import sys, mlflow, pandas as pd\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "model = mlflow.pyfunc.load_model('models:/amhs-predictor@champion')\n"
        "rows = pd.read_csv(sys.argv[2], dtype={'line_id': str, 'timestamp': str})\n"
        "rows = rows.astype({c: 'float64' for c in rows.columns[2:]})\n"
        "model.predict(rows).to_json(sys.argv[3], orient='records')\n")
    done = subprocess.run([sys.executable, "-c", script, world.tracking.tracking_uri,
                           str(tmp_path / "rows.csv"), str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    served = pd.read_json(tmp_path / "out.json", orient="records", dtype=False)
    kind = world.client.get_model_version_by_alias(NAME, CHAMPION_ALIAS).tags["candidate_kind"]
    local = AmhsPredictor(world.candidates[kind], {"feature_names": list(
        world.io.values["model_dataset"].feature_names)}).predict_frame(rows)
    assert served.columns.tolist() == local.columns.tolist()
    pd.testing.assert_frame_equal(served, local, check_dtype=False)
    # the version records the lines it was trained on: the API warns of any other line
    champion = world.client.get_model_version_by_alias(NAME, CHAMPION_ALIAS).version
    assert load_registered(world.client, NAME, champion).line_ids == {"A", "B"}


def test_registration_against_an_unreachable_server_registers_nothing(world, two_versions):
    before = len(world.client.search_model_versions(f"name='{NAME}'"))
    bad = MlflowTracking(tracking_uri=UNREACHABLE, lock_path=world.tracking.lock_path,
                         attempts=2, timeout_s=0.5)
    result = materialize(world, "registered_model", tracking=bad)
    assert not result.success
    assert "MLflow tracking server http://127.0.0.1:9 is unreachable" in failure_text(result)
    world.tracking.client()  # back to the embedded store
    assert len(world.client.search_model_versions(f"name='{NAME}'")) == before


# --- one integration test against a real `mlflow server` --------------------------------------
@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """`mlflow server` (SQLite backend, local artifact root) on a free loopback port; its URI."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    with open(root / "server.log", "w") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
             f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while not _healthy(uri):
                assert server.poll() is None, (root / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "mlflow server did not start in 180 s"
                time.sleep(0.5)
            yield uri
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker
            server.wait(60)


def _healthy(uri: str) -> bool:
    try:
        return requests.get(f"{uri}/health", timeout=2).ok
    except requests.RequestException:
        return False


def evaluate_xgb(model: XgbModel, world) -> tuple[list[dict], dict[str, str]]:
    """An XGBoost model's test records and version tags, as evaluation_report and
    registered_model make them."""
    ds = world.io.values["model_dataset"]
    models = {"persistence": PersistenceModel.from_dataset(ds), "xgb": model}
    records = evaluation_records(predictions_frame(models, ds))
    document = evaluation_document(ds, records, {"name": NAME, "version": None})
    fingerprint = data_fingerprint(world.io.values["cleaned_amhs_logs"])
    return records, candidate_tags(document, "xgb", fingerprint, "server-test")


def publish_xgb(client, experiment: str, model: XgbModel, world) -> str:
    """Log and register an XGBoost model (challenger if it passes the checks); its version."""
    records, tags = evaluate_xgb(model, world)
    predictor = AmhsPredictor(model, {"feature_names": list(world.io.values["model_dataset"]
                                                            .feature_names), "kind": "xgb"})
    example = reg.input_example(world.io.values["cleaned_amhs_logs"])
    with mlflow.start_run(experiment_id=experiment), tempfile.TemporaryDirectory() as workdir:
        mlflow.log_metrics(reg.evaluation_metrics(records))
        version = reg.publish(client, NAME, predictor, example, Path(workdir), tags, "test",
                              (CHALLENGER_ALIAS,) if tags["passed_checks"] == "true" else ())
    return str(version.version)


@pytest.mark.integration
def test_training_registration_and_promotion_against_a_real_mlflow_server(world, tmp_path):
    ds = world.io.values["model_dataset"]
    fit = lambda config: XgbModel({h: fit_horizon_models(ds, h, config) for h in HORIZONS})  # noqa: E731
    gate = lambda: reg.apply_gate(client, NAME, GateConfig(), FEATURE_VERSION,  # noqa: E731
                                  "test").outcome
    weak = fit(OneThread(num_boost_round=2, max_depth=2, early_stopping_rounds=2, seed=3))
    strong = world.candidates["xgb"]
    try:
        with mlflow_server(tmp_path) as uri:
            client = reg.connect(uri)
            experiment = reg.ensure_experiment(client, "amhs", None)
            assert publish_xgb(client, experiment, weak, world) == "1"
            assert gate() == "promoted"  # no champion yet
            assert publish_xgb(client, experiment, strong, world) == "2"
            assert gate() == "promoted"  # better by more than 1%
            v1 = client.get_model_version(NAME, "1")
            info = types.SimpleNamespace(model_uri=v1.source, run_id=v1.run_id, model_id=v1.model_id)
            reg.register_version(client, NAME, info, evaluate_xgb(weak, world)[1], "weak again",
                                 (CHALLENGER_ALIAS,))
            assert gate() == "kept_champion"  # worse: refused
            reason = client.get_model_version(NAME, "3").tags["promotion_reason"]
            assert "does not beat champion v2" in reason or (  # MAE, or recall first
                "lowers CRITICAL recall at its operating point against champion v2" in reason)
            rows = reg.input_example(world.io.values["cleaned_amhs_logs"]).astype(
                {c: "float64" for c in NUMERIC_COLUMNS})
            served = mlflow.pyfunc.load_model(f"models:/{NAME}@champion").predict(rows)
            local = AmhsPredictor(strong, {"feature_names": list(ds.feature_names)})
            pd.testing.assert_frame_equal(served, local.predict_frame(rows))
            assert reg.rollback(client, NAME, "alarms", "test") == ("2", "1")
            assert reg.version_ref(client, NAME, CHAMPION_ALIAS).version == "1"
            # same data, same seed: same metrics as the registered version records
            again = evaluate_xgb(fit(FAST), world)[1]
            recorded = client.get_model_version(NAME, "2").tags
            assert {k: v for k, v in again.items() if k.startswith("test_")} == {
                k: v for k, v in recorded.items() if k.startswith("test_")}
        with pytest.raises(reg.TrackingUnreachable, match=f"{uri} is unreachable"):
            reg.connect(uri, attempts=2, timeout_s=0.5)
        stored = f"sqlite:///{tmp_path / 'server.db'}"  # the server's own store, read directly
        offline = MlflowClient(tracking_uri=stored, registry_uri=stored)
        assert len(offline.search_model_versions(f"name='{NAME}'")) == 3
    finally:
        world.tracking.client()  # mlflow's global URIs back to the embedded store


PASSWORD = "s3cret-pa55word-9f2"


@pytest.mark.integration
def test_a_tracking_uri_password_never_reaches_dagster_storage_metadata_or_output(
        world, tmp_path, capfd):
    """Registration through a real server whose URI carries a password: the run succeeds, and
    the password is in no event, no metadata value, no file of the Dagster instance and nothing
    printed (MLflow's 'View run at <host>' included)."""
    try:
        with mlflow_server(tmp_path) as uri:
            secret = uri.replace("http://", f"http://amhs:{PASSWORD}@")
            tracking = MlflowTracking(tracking_uri=secret, lock_path=world.tracking.lock_path)
            result = materialize(world, "evaluation_report", "registered_model",
                                 tracking=tracking)
            assert result.success, failure_text(result)
            assert reg.connect(uri).get_model_version(NAME, "1").tags["artifact_sha256"]
        metadata = next(m for m in result.asset_materializations_for_node("registered_model"))
        assert metadata.metadata["tracking_uri"].value == secret.replace(PASSWORD, "***")
        events = "\n".join(repr(e) for e in result.all_events)
        assert PASSWORD not in events
        printed = capfd.readouterr()
        assert PASSWORD not in printed.out + printed.err
        root = Path(world.instance.root_directory)
        leaked = [p for p in root.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
        assert not leaked, leaked
    finally:
        world.tracking.client()  # mlflow's global URIs back to the embedded store


def test_a_candidate_failing_an_acceptance_bar_is_registered_but_never_challenger(
        world, two_versions):
    """An R2 floor no model of the world can meet: the evaluation records every bar and fails
    its check; the new version carries the verdicts and is rejected with each failed bar named."""
    challenger = reg.version_ref(world.client, NAME, CHALLENGER_ALIAS)
    strict = AmhsSettings.from_values(world_settings(world.data, acceptance={"min_avg_r2": 0.999}))
    result = materialize(world, "evaluation_report", "registered_model", settings=strict)
    assert result.success, failure_text(result)
    saved = json.loads((world.data / "reports" / "evaluation.json").read_text())
    assert saved["accepted"] is False and saved["bars"]  # the V8 reference stays, apart
    r2 = [r for r in saved["acceptance"] if r["metric"] == "avg_r2"]
    assert [r["horizon"] for r in r2] == list(HORIZONS) and all(r["bar"] == 0.999 for r in r2)
    assert all(r["passed"] is False for r in r2)
    check = next(e for e in result.get_asset_check_evaluations()
                 if e.check_name == "candidate_meets_acceptance_bars")
    assert not check.passed
    registered = result.output_for_node("registered_model")
    assert registered["aliases"] == []
    tags = registered["tags"]
    assert tags["accepted"] == "false" and tags["passed_checks"] == "false"
    assert tags["acceptance_avg_r2_h10"].startswith("FAIL ")
    assert tags["promotion_decision"] == "rejected"
    assert "meets_acceptance_bars: avg_r2_h10 " in tags["promotion_reason"]
    assert "bar 0.999 (>= 0.999)" in tags["promotion_reason"]
    # what happens today to a version that fails its checks: the challenger alias is not moved
    assert reg.version_ref(world.client, NAME, CHALLENGER_ALIAS) == challenger
