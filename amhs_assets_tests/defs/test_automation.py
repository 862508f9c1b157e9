"""Sensors, schedules and jobs against a real Dagster instance and real files: a change of the raw
folder launches one training run, a drift or degradation episode launches one, schedules and jobs
are what the README says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import dagster as dg
import pandas as pd
import pytest
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from amhs_assets.config import read_environment
from amhs_assets.contract import TRIGGER_REASON_TAG, TRIGGER_TAG
from amhs_assets.definitions import build_definitions
from amhs_assets.defs import jobs, sensors
from amhs_assets.ingest.days import INDEX_FILE
from amhs_assets.defs.resources import (
    AmhsSettings,
    MlflowTracking,
    mlflow_run_name,
    settings_from_environment,
)
from amhs_assets.models.xgb import XgbConfig
from amhs_assets.monitoring.drift import reference_window
from amhs_assets.monitoring.performance import PerformanceConfig, degradation, levels_frame
from amhs_assets.monitoring.triggers import Launch, Report, SourceState, advance, combine
from amhs_assets.registry.gate import GateConfig
from amhs_assets.registry.tags import train_window_from_tags, train_window_tags, trigger_tags
from amhs_assets.runner import AFTER_GATE, BEFORE_GATE
from amhs_assets_tests.support import (
    simulated_rows,
    simulated_scored,
    with_critical_minutes,
    write_local_days,
)

RANGE = {"dagster/asset_partition_range_start": "10", "dagster/asset_partition_range_end": "25"}


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def settings(data_dir) -> AmhsSettings:
    return AmhsSettings(data_dir=str(data_dir))


class Ticker:
    """Evaluates a sensor tick after tick, carrying its cursor as the daemon does."""

    def __init__(self, sensor: dg.SensorDefinition, instance: dg.DagsterInstance,
                 cursor: str | None = None, definitions: dg.Definitions | None = None):
        self.sensor, self.instance, self.cursor = sensor, instance, cursor
        self.definitions = definitions

    def __call__(self) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                          definitions=self.definitions)
        result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        return list(result.run_requests or [])


def write(path, text: str = "x\n1\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --- raw_data_sensor ---------------------------------------------------------------------------
@pytest.fixture
def deployment(settings):
    return build_definitions(settings, MlflowTracking.for_data_dir(settings.data_dir))


def raw_ticker(settings, instance, deployment) -> Ticker:
    return Ticker(sensors.raw_data_sensor(settings), instance, definitions=deployment)


def planned(request: dg.RunRequest) -> dict[str, set]:
    """asset -> partitions of a backfill request (None for an unpartitioned asset)."""
    subset = request.asset_graph_subset
    out = {k.to_user_string(): {None} for k in subset.non_partitioned_asset_keys}
    for key, parts in subset.partitions_subsets_by_asset_key.items():
        out[key.to_user_string()] = set(parts.get_partition_keys())
    return out


def submit(instance, request: dg.RunRequest) -> str:
    """Record a backfill request as the sensor daemon does; its id."""
    backfill_id = make_new_backfill_id()
    instance.add_backfill(PartitionBackfill.from_asset_graph_subset(
        backfill_id=backfill_id, dynamic_partitions_store=instance, backfill_timestamp=time.time(),
        asset_graph_subset=request.asset_graph_subset, tags=request.tags, title=None,
        description=None, run_config=None))
    return backfill_id


def end(instance, backfill_id: str, status: BulkActionStatus) -> None:
    """Mark a backfill ended, as the backfill daemon does when its runs are done."""
    instance.update_backfill(instance.get_backfill(backfill_id).with_status(status))


def ingest(deployment, instance, plan: dict[str, set]) -> None:
    """Carry out a planned backfill as the daemon would: each asset for its days, in order."""
    for asset in ("raw_amhs_logs", "cleaned_amhs_logs", "amhs_features", "amhs_targets"):
        for day in sorted(plan.get(asset, ()), key=str):
            assert dg.materialize(deployment.assets, selection=[asset], partition_key=day,
                                  instance=instance, resources=deployment.resources).success


def test_new_raw_files_ingest_only_their_days_then_launch_one_training_run(
        settings, instance, deployment):
    tick = raw_ticker(settings, instance, deployment)
    assert tick() == []  # empty folder
    rows = simulated_rows(("A",), days=4)
    local = pd.to_datetime(rows["timestamp"], utc=True).dt.tz_convert(settings.fab_timezone)
    day_of = local.dt.strftime("%Y-%m-%d")
    new_day = sorted(day_of.unique())[-2]
    days = sorted(write_local_days(rows[day_of < new_day], settings.raw_dir))
    assert tick() == []  # first seen: they may still be growing
    [backfill] = tick()
    assert backfill.requires_backfill_daemon()
    plan = planned(backfill)
    assert plan == {"raw_amhs_logs": {None}, "cleaned_amhs_logs": set(days),
                    "amhs_features": set(days), "amhs_targets": set(days)}
    assert backfill.tags[TRIGGER_TAG] == "data" and "A/A_" in backfill.tags[TRIGGER_REASON_TAG]
    burst = backfill.tags[sensors.BURST_TAG]
    train = Ticker(sensors.ingested_data_sensor(settings), instance, definitions=deployment)
    backfill_id = submit(instance, backfill)
    assert train() == []  # the ingest has not ended: no training yet
    ingest(deployment, instance, plan)
    end(instance, backfill_id, BulkActionStatus.COMPLETED_SUCCESS)
    [training] = train()
    assert training.run_key == f"train-{burst}" and training.job_name in (None, "training_job")
    assert RANGE.items() <= training.tags.items() and training.tags[TRIGGER_TAG] == "data"
    assert "A/A_" in training.tags[TRIGGER_REASON_TAG]
    assert train() == [] and tick() == [] and tick() == []  # the same files again: nothing

    # a new day: only its partitions and the previous day's targets (they look 25 min ahead)
    write_local_days(rows[day_of == new_day], settings.raw_dir)
    assert tick() == []
    [backfill] = tick()
    assert planned(backfill) == {"raw_amhs_logs": {None}, "cleaned_amhs_logs": {new_day},
                                 "amhs_features": {new_day}, "amhs_targets": {days[-1], new_day}}


def test_a_corrected_file_for_an_old_day_replans_that_day_and_its_neighbours(
        settings, instance, deployment):
    rows = simulated_rows(("A",), days=4)
    files = write_local_days(rows, settings.raw_dir)
    days = sorted(files)
    tick = raw_ticker(settings, instance, deployment)
    tick()
    ingest(deployment, instance, planned(tick()[0]))
    old = days[1]
    frame = pd.read_csv(files[old])
    frame.loc[10, "transfer_time_avg_s"] = frame.loc[10, "transfer_time_avg_s"] + 1.0
    frame.to_csv(files[old], index=False)
    assert tick() == []  # settling
    [backfill] = tick()
    plan = planned(backfill)
    assert plan["cleaned_amhs_logs"] == {old}
    assert plan["amhs_features"] == {old, days[2]}  # the next day reads its last 120 minutes
    assert plan["amhs_targets"] == {days[0], old}  # the previous day looks 25 minutes into it


def test_a_file_still_growing_waits_until_it_holds_still(settings, instance, deployment):
    tick = raw_ticker(settings, instance, deployment)
    path = settings.raw_dir / "day1.csv"
    write(path, "x\n1\n")
    for i in range(3):
        assert tick() == []
        with path.open("a") as handle:
            handle.write(f"{i}\n")
    assert tick() == []
    assert len(tick()) == 1


def test_a_burst_of_files_becomes_one_backfill(settings, instance, deployment):
    tick = raw_ticker(settings, instance, deployment)
    tick()
    for i in range(6):
        write(settings.raw_dir / f"OHT-{i}" / f"day{i}.csv", f"x\n{i}\n")
        if i == 2:
            assert tick() == []  # mid-burst: new files are still settling
    assert tick() == []
    [request] = tick()
    assert "6 new or changed" in request.tags[TRIGGER_REASON_TAG]
    assert planned(request) == {"raw_amhs_logs": {None}}  # unreadable files cover no day
    ingest(deployment, instance, planned(request))
    end(instance, submit(instance, request), BulkActionStatus.COMPLETED_SUCCESS)
    train = Ticker(sensors.ingested_data_sensor(settings), instance, definitions=deployment)
    assert train() == []  # no day changed: nothing to train on
    assert tick() == []


def test_a_failed_ingest_launches_no_training(settings, instance, deployment):
    write_local_days(simulated_rows(("A",), days=1), settings.raw_dir)
    tick = raw_ticker(settings, instance, deployment)
    tick()
    [request] = tick()
    end(instance, submit(instance, request), BulkActionStatus.COMPLETED_FAILED)
    train = Ticker(sensors.ingested_data_sensor(settings), instance, definitions=deployment)
    assert train() == [] and train() == []


def test_a_restart_with_an_empty_cursor_does_not_redo_materialized_data(
        settings, instance, deployment):
    write(settings.raw_dir / "day1.csv")
    assert dg.materialize(deployment.assets, selection=["raw_amhs_logs"], instance=instance,
                          resources=deployment.resources).success
    tick = raw_ticker(settings, instance, deployment)  # a new cursor, the same data
    assert tick() == [] and tick() == [] and tick() == []
    write(settings.raw_dir / "day2.csv")  # and a real change still launches
    assert tick() == []
    assert len(tick()) == 1
    # the cursor the UI shows is a line; the detail is in a file beside the raw index
    cursor = json.loads(tick.cursor)
    assert set(cursor) == {"files", "fingerprint", "detail"} and cursor["files"] == 2
    detail = json.loads((settings.layout.warehouse / "_raw_watch.json").read_text())
    assert set(detail["launched"]) == {"day1.csv", "day2.csv"}


def test_a_data_folder_from_before_the_warehouse_is_ingested_on_the_first_tick(
        settings, instance, deployment):
    days = write_local_days(simulated_rows(("A",), days=2), settings.raw_dir)
    assert dg.materialize(deployment.assets, selection=["raw_amhs_logs"], instance=instance,
                          resources=deployment.resources).success
    (settings.layout.warehouse / INDEX_FILE).unlink()  # as an earlier version left it
    tick = raw_ticker(settings, instance, deployment)
    tick()  # the files are seen for the first time
    [backfill] = tick()
    assert planned(backfill)["cleaned_amhs_logs"] == set(days)


# --- retraining_trigger_sensor -----------------------------------------------------------------
def drift(instance, detected: bool | None, share: float = 0.42) -> None:
    """A drift_report materialization as the asset records it (None: not enough data)."""
    metadata = ({"status": "not enough data"} if detected is None else {
        "drift_detected": detected, "share_drifted": share, "drift_share": 0.2,
        "drifted_columns": "transfer_time_avg_s, jobs_queued"})
    instance.report_runless_asset_event(dg.AssetMaterialization("drift_report", metadata=metadata))


def degraded(instance, flag: bool, reason: str = "") -> None:
    """A performance_monitor materialization (the asset may not exist yet: only the events)."""
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "performance_monitor", metadata={"degraded": flag, "degradation_reason": reason}))


def test_a_drift_episode_launches_one_training_run_with_the_reason(settings, instance):
    tick = Ticker(sensors.retraining_trigger_sensor(settings), instance)
    assert tick() == []  # nothing reported yet
    drift(instance, False)
    assert tick() == []
    drift(instance, True)
    [first] = tick()
    assert first.tags[TRIGGER_TAG] == "drift" and RANGE.items() <= first.tags.items()
    assert first.tags[TRIGGER_REASON_TAG] == (
        "drift share 0.42 >= 0.20, most drifted: transfer_time_avg_s, jobs_queued")
    drift(instance, True, share=0.5)  # the same episode
    drift(instance, None)  # a report that could not tell changes nothing
    assert tick() == []
    drift(instance, False)  # the episode ends
    assert tick() == []
    drift(instance, True, share=0.3)  # a new one
    [second] = tick()
    assert second.run_key != first.run_key and "0.30" in second.tags[TRIGGER_REASON_TAG]
    assert tick() == []


def test_performance_degradation_is_an_episode_of_its_own(settings, instance):
    tick = Ticker(sensors.retraining_trigger_sensor(settings), instance)
    tick()
    degraded(instance, True, "avg MAE h25 41.0 > 1.2 x evaluated 30.1")
    [request] = tick()
    assert request.tags[TRIGGER_TAG] == "performance"
    assert request.tags[TRIGGER_REASON_TAG] == "avg MAE h25 41.0 > 1.2 x evaluated 30.1"
    degraded(instance, True, "still")
    drift(instance, True)
    [only_drift] = tick()
    assert only_drift.tags[TRIGGER_TAG] == "drift"


def test_an_empty_cursor_joins_an_open_episode_without_launching(settings, instance):
    drift(instance, True)
    tick = Ticker(sensors.retraining_trigger_sensor(settings), instance)
    assert tick() == []  # a (re)started sensor does not retrain on an old report
    drift(instance, True)
    assert tick() == []
    drift(instance, False)
    drift(instance, True)
    assert len(tick()) == 1


def test_episodes_and_reasons_in_plain_python():
    state, launch = advance("drift", SourceState(), [Report(3, True, "a"), Report(5, False),
                                                     Report(9, True, "b")])
    assert state == SourceState(9, True, 9) and launch == Launch("drift", "b", "drift-9")
    assert advance("drift", state, [Report(11, True, "c")])[1] is None
    both = combine([Launch("drift", "d", "drift-1"), Launch("performance", "p", "performance-2")])
    assert both == Launch("drift", "drift: d; performance: p", "drift-1+performance-2")


# --- schedules, jobs, settings -----------------------------------------------------------------
def test_nightly_retraining_and_daily_promotion_run_on_fab_time(settings):
    nightly = AmhsSettings(data_dir=settings.data_dir, retraining_cron="30 3 * * *")
    defs = build_definitions(nightly, MlflowTracking.for_data_dir(settings.data_dir))
    schedule = defs.resolve_schedule_def("retraining_schedule")
    assert (schedule.job_name, schedule.cron_schedule, schedule.execution_timezone) == (
        "training_job", "30 3 * * *", "Asia/Taipei")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    [request] = schedule.evaluate_tick(dg.build_schedule_context()).run_requests
    assert request.tags[TRIGGER_TAG] == "schedule" and RANGE.items() <= request.tags.items()
    promotion = defs.resolve_schedule_def("promotion_schedule")
    assert (promotion.job_name, promotion.cron_schedule, promotion.execution_timezone) == (
        "promotion_job", "0 6 * * *", "Asia/Taipei")
    assert promotion.default_status == dg.DefaultScheduleStatus.RUNNING
    for name in ("ingested_data_sensor", "retraining_trigger_sensor"):
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.job_name == "training_job"
    raw = defs.resolve_sensor_def("raw_data_sensor")  # backfills of the data assets' days
    assert raw.default_status == dg.DefaultSensorStatus.RUNNING
    assert {k.to_user_string() for k in raw.asset_selection.resolve(
        defs.resolve_asset_graph())} == set(sensors.DATA_ASSETS)


def test_monitoring_runs_every_hour_on_its_own(settings):
    defs = build_definitions(settings, MlflowTracking.for_data_dir(settings.data_dir))
    schedule = defs.resolve_schedule_def("monitoring_schedule")
    assert (schedule.job_name, schedule.cron_schedule, schedule.execution_timezone) == (
        "monitoring_job", "0 * * * *", "Asia/Taipei")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    every_ten = AmhsSettings(data_dir=settings.data_dir, monitoring_cron="*/10 * * * *")
    defs = build_definitions(every_ten, MlflowTracking.for_data_dir(settings.data_dir))
    assert defs.resolve_schedule_def("monitoring_schedule").cron_schedule == "*/10 * * * *"
    sensor = defs.resolve_sensor_def("monitoring_after_promotion_sensor")
    assert sensor.job_name == "monitoring_job"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def materialized(instance, asset: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset))


def test_each_promotion_gate_is_followed_by_one_monitoring_run(settings, instance):
    tick = Ticker(sensors.monitoring_after_promotion_sensor(settings), instance)
    assert tick() == []  # the gate never ran
    materialized(instance, "champion_model")
    [request] = tick()
    assert request.run_key.startswith("promotion-") and request.tags[TRIGGER_TAG] == "promotion"
    assert tick() == []  # once per gate
    materialized(instance, "champion_model")
    materialized(instance, "performance_monitor")  # amhs run refreshed monitoring itself
    assert tick() == []
    materialized(instance, "champion_model")
    [again] = tick()
    assert again.run_key != request.run_key


def test_a_collapsed_critical_recall_launches_one_retraining_run(settings, instance):
    levels = levels_frame({"3": {h: {"mae_avg": 8.0, "accuracy": 0.9, "critical_recall": 0.63}
                                 for h in (10, 15, 25)}})
    verdict = degradation(with_critical_minutes(simulated_scored(0.0), 0.1, 0.2), levels,
                          PerformanceConfig())
    assert verdict.degraded and all(0.85 < v["ratio"] < 1.15 for v in verdict.horizons.values())
    tick = Ticker(sensors.retraining_trigger_sensor(settings), instance)
    tick()
    degraded(instance, verdict.degraded, verdict.reason)  # what performance_monitor reports
    [request] = tick()
    assert request.tags[TRIGGER_TAG] == "performance" and RANGE.items() <= request.tags.items()
    assert "critical_recall@h25: live CRITICAL recall" in request.tags[TRIGGER_REASON_TAG]
    assert tick() == []


def test_mlflow_runs_are_named_by_job_horizons_and_trigger():
    whole = {"dagster/asset_partition_range_start": "10", "dagster/asset_partition_range_end": "25",
             TRIGGER_TAG: "drift"}
    assert mlflow_run_name("training_job", whole, "3f2a1b9c77") == "training_job h10-25 drift 3f2a1b9c"
    one = {"dagster/partition": "15"}
    assert mlflow_run_name("__ephemeral_asset_job__", one, "abcdef0123") == (
        "ephemeral_asset_job h15 manual abcdef01")
    assert mlflow_run_name("promotion_job", {}, "0123456789") == "promotion_job manual 01234567"


def test_jobs_select_what_the_readme_says(settings):
    defs = build_definitions(settings, MlflowTracking.for_data_dir(settings.data_dir))
    graph = defs.resolve_asset_graph()
    selected = lambda job: {k.to_user_string() for k in  # noqa: E731
                            defs.resolve_job_def(job).asset_layer.selected_asset_keys}
    assert selected("ingest_job") == {"raw_amhs_logs", "cleaned_amhs_logs", "amhs_features",
                                      "feature_catalog", "amhs_targets"}
    training = selected("training_job")
    assert {"model_dataset", "horizon_models", "evaluation_report", "registered_model",
            "drift_report"} <= training and "champion_model" not in training
    assert not training & selected("ingest_job")  # training reads the warehouse ingest_job keeps
    assert selected("promotion_job") == {"champion_model"}
    present = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert selected("monitoring_job") == present & set(jobs.MONITORING_KEYS)
    # amhs run: everything before the gate in one run, the gate, then what watches the champion
    before, after = BEFORE_GATE.resolve(graph), AFTER_GATE.resolve(graph)
    assert dg.AssetKey("champion_model") not in before | after and not before & after
    assert before | after | {dg.AssetKey("champion_model")} == set(graph.get_all_asset_keys())


def settings_of(env: dict) -> AmhsSettings:
    return settings_from_environment(read_environment(env))


def test_settings_come_from_an_amhs_settings_file(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("xgb: {num_boost_round: 12, max_depth: 4}\nretraining_cron: '15 1 * * *'\n"
                    "drift: {drift_share: 0.3}\nperformance: {mae_margin: 0.5}\ndata_dir: elsewhere\n")
    env = {"AMHS_SETTINGS": str(path), "AMHS_DATA_DIR": str(tmp_path)}
    settings = settings_of(env)
    assert (settings.xgb.num_boost_round, settings.xgb.max_depth) == (12, 4)
    assert settings.xgb.pure().learning_rate == XgbConfig().learning_rate  # defaults from the config
    assert settings.drift.pure().drift_share == 0.3 and settings.performance.pure().mae_margin == 0.5
    assert settings.retraining_cron == "15 1 * * *"
    assert settings.data_dir == str(tmp_path)  # AMHS_DATA_DIR wins
    path.write_text(json.dumps({"xgb": {"rounds": 3}}))
    with pytest.raises(ValueError, match=r"settings.yaml: unknown AmhsSettings field.*xgb\.rounds"):
        settings_of(env)
    assert settings_of({}).xgb.pure() == XgbConfig() and settings_of({}).gate.pure() == GateConfig()


def test_flat_settings_of_earlier_versions_still_work(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("xgb_rounds: 12\nseed: 7\nperformance_margin: 0.4\npromotion_metrics: [avg_mae_h10]\n")
    settings = settings_of({"AMHS_SETTINGS": str(path)})
    assert settings.xgb.num_boost_round == 12 and settings.performance.mae_margin == 0.4
    assert settings.xgb.seed == settings.ensemble.seed == 7
    assert settings.gate.pure().metrics == ("avg_mae_h10",)


def test_horizons_are_the_deployments_and_partitions_follow_them(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("horizons: [30, 5]\n")
    env = read_environment({"AMHS_SETTINGS": str(path)})
    assert env.horizons == (5, 30) and "horizons" not in env.settings
    assert "horizons" not in AmhsSettings.model_fields  # no run can change them
    path.write_text("horizons: [0, 10]\n")
    with pytest.raises(ValueError, match="settings.yaml: horizons must be positive whole minutes"):
        read_environment({"AMHS_SETTINGS": str(path)})
    code = ("from amhs_assets.defs.partitions import deployment_horizons, horizon_partitions;"
            "print(deployment_horizons(), horizon_partitions.get_partition_keys())")
    path.write_text("horizons: [5, 30]\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "AMHS_SETTINGS": str(path)}).stdout
    assert out.strip() == "(5, 30) ['5', '30']"


# --- what a version records, and the drift reference it gives ----------------------------------
def test_the_training_window_and_trigger_go_on_the_version_and_back():
    bounds = [{"line_id": "A", "start": "2026-02-02 00:00:00+00:00",
               "train_end": "2026-02-05 00:00:00+00:00"},
              {"line_id": "B", "start": "2026-02-03 00:00:00+00:00",
               "train_end": "2026-02-06 00:00:00+00:00"}]
    tags = train_window_tags(bounds)
    assert (tags["train_window_start"], tags["train_window_end"]) == (
        "2026-02-02 00:00:00+00:00", "2026-02-06 00:00:00+00:00")
    back = train_window_from_tags(tags)
    assert list(back["line_id"]) == ["A", "B"]
    assert back["train_end"].iloc[1] == pd.Timestamp("2026-02-06", tz="UTC")
    assert train_window_from_tags({}) is None
    assert trigger_tags({TRIGGER_TAG: "drift", TRIGGER_REASON_TAG: "share 0.4"}, TRIGGER_TAG,
                        TRIGGER_REASON_TAG) == {"trigger": "drift", "trigger_reason": "share 0.4"}
    assert trigger_tags({}, TRIGGER_TAG, TRIGGER_REASON_TAG)["trigger"] == "manual"


def test_drift_compares_with_the_champions_training_window_while_the_data_hold_it():
    minutes = pd.date_range("2026-02-02", periods=6 * 24 * 60, freq="min", tz="UTC")
    cleaned = pd.concat([pd.DataFrame({"line_id": line, "timestamp": minutes})
                         for line in ("A", "B")], ignore_index=True)
    current = pd.DataFrame({"line_id": ["A", "B"], "start": minutes[0],
                            "train_end": pd.Timestamp("2026-02-05", tz="UTC")})
    champion = train_window_from_tags({"train_window_start": "2026-02-02T00:00:00Z",
                                       "train_window_end": "2026-02-03T00:00:00Z"})
    frame, source = reference_window(cleaned, current, champion, "4")
    assert source == {"source": "champion", "champion_version": "4"}
    assert len(frame) == 2 * 24 * 60  # one day of both lines
    gone = champion.assign(start=minutes[0] - pd.Timedelta(days=30),
                           train_end=minutes[0] - pd.Timedelta(days=29))
    frame, source = reference_window(cleaned, current, gone, "4")
    assert source["source"] == "current_training" and "no longer hold" in source["why"]
    assert len(frame) == 2 * 3 * 24 * 60
    assert reference_window(cleaned, current, None, None)[1]["why"] == "no champion yet"

