"""The Dagster side of the webhooks, on a real instance and a real local receiver: one message
per drift (or degradation) episode from retraining_trigger_sensor, one per failed run from
run_failure_sensor, and a receiver that is down costs a tick little time and no run."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from amhs_assets.defs import sensors
from amhs_assets.defs.resources import AmhsSettings, NotifySettings
from amhs_assets_tests.defs.test_automation import Ticker, degraded, drift
from amhs_assets_tests.notify.receiver import receiving, silent_receiver
from amhs_assets_tests.support import free_port


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def settings_with(data_dir, **notify) -> AmhsSettings:
    return AmhsSettings(data_dir=str(data_dir), notify=NotifySettings(backoff_s=0.05, **notify))


def test_one_drift_message_per_episode_start_and_end_and_one_per_degradation(
        data_dir, instance):
    with receiving() as receiver:
        settings = settings_with(data_dir, drift_webhooks=[receiver.url],
                                 degradation_webhooks=[receiver.url],
                                 dagster_url="http://dagster:3000")
        tick = Ticker(sensors.retraining_trigger_sensor(settings), instance)
        tick()  # the first tick adopts the instance's state: nothing to say
        drift(instance, False)
        assert tick() == [] and receiver.messages == []
        drift(instance, True)
        drift(instance, True, share=0.5)  # two flagged reports in a row: one episode
        assert len(tick()) == 1
        drift(instance, True, share=0.6)
        assert tick() == []
        drift(instance, False)  # the end of the episode
        tick()
        drift(instance, True, share=0.3)  # a second episode
        assert len(tick()) == 1
        degraded(instance, True, "avg MAE h25 41.0 > 1.2 x evaluated 30.1")
        tick()
        degraded(instance, True, "still")
        tick()
        got = list(receiver.messages)
    assert [(m["kind"], m["event"]) for m in got] == [
        ("drift", "detected"), ("drift", "cleared"), ("drift", "detected"),
        ("degradation", "detected")]
    first = got[0]
    assert first["reason"] == ("drift share 0.42 >= 0.20, most drifted: transfer_time_avg_s, "
                               "jobs_queued")
    assert first["asset"] == "drift_report" and first["metadata"]["share_drifted"] == 0.42
    assert first["text"].startswith("Drift detected in the AMHS logs: drift share 0.42")
    assert "0.30" in got[2]["reason"] and got[3]["reason"].startswith("avg MAE h25 41.0")


def test_a_webhook_that_is_down_or_hangs_neither_fails_nor_holds_up_the_tick(
        data_dir, instance):
    closed = f"http://127.0.0.1:{free_port()}/hook"
    with silent_receiver() as hanging:
        settings = settings_with(data_dir, drift_webhooks=[closed, hanging], timeout_s=0.3,
                                 attempts=2)
        tick = Ticker(sensors.retraining_trigger_sensor(settings), instance)
        tick()
        drift(instance, True)
        started = time.perf_counter()
        [request] = tick()
        took = time.perf_counter() - started
    assert request.tags["amhs/trigger"] == "drift"
    assert took < 3, took  # two tries of 0.3 s (+ 0.05 s backoff) on the hanging one


@dg.op
def jam() -> None:
    raise ValueError("vehicle 17 stuck on rail segment B4")


@dg.job
def tiny_failing_job() -> None:
    jam()


def test_a_failed_run_is_posted_once_with_its_job_step_and_error(data_dir, instance):
    result = tiny_failing_job.execute_in_process(instance=instance, raise_on_error=False,
                                                 tags={"amhs/trigger": "manual"})
    assert not result.success
    with receiving() as receiver:
        settings = settings_with(data_dir, run_failure_webhooks=[receiver.url])
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_sensor", dagster_instance=instance,
            dagster_run=result.dagster_run, dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        sensors.run_failure_sensor(settings)(context)
        [message] = receiver.messages
    run_id = result.dagster_run.run_id
    assert (message["kind"], message["event"]) == ("run_failure", "failed")
    assert (message["job_name"], message["run_id"]) == ("tiny_failing_job", run_id)
    assert message["run_url"] == f"/runs/{run_id}"
    assert message["failed_steps"] == [
        {"step": "jam", "error": "ValueError: vehicle 17 stuck on rail segment B4"}]
    assert message["tags"] == {"amhs/trigger": "manual"}
    assert "tiny_failing_job" in message["text"] and "vehicle 17" in message["text"]
