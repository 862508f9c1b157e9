"""Webhook notifications against real local HTTP receivers: one message per CRITICAL episode
of a line, retries with backoff, and receivers that are down never slow a prediction."""

from __future__ import annotations

import time

import pytest

from amhs_assets.notify import CriticalEpisodes, Notifier, NotifyConfig, WebhookSender
from amhs_assets_tests.notify.receiver import receiving, silent_receiver
from amhs_assets_tests.support import free_port

MODEL = {"name": "amhs-predictor", "version": "3", "alias": "champion"}


def forecast(line_id: str, minute: int, alarm: bool | None, state: str = "NORMAL") -> dict:
    """A line's prediction as the API answers it; alarm None: a model without the alarm key."""
    def horizon(h: str) -> dict:
        alarming = bool(alarm) and h == "10"
        answer = {"min": 100.0, "max": 200.0, "avg": 150.0,
                  "state": "CRITICAL" if alarming else state,
                  "proba": {"NORMAL": 0.1, "WARNING": 0.1, "CRITICAL": 0.8 if alarming else 0.1}}
        if alarm is not None:
            answer |= {"alarm": alarming, "threshold": 0.42}
        return answer
    return {"line_id": line_id, "as_of": f"2026-03-01T08:{minute:02d}:00Z",
            "horizons": {h: horizon(h) for h in ("10", "15", "25")}}


# alarm minutes of each line: two episodes each, flapping inside the first ones (calm gaps
# shorter than clear_after=3); the (event, minute) messages each line must get
ALARMS = {"A": {3, 4, 5, 7, 8, 20, 21}, "B": {10, 12, 14, 30}}
EXPECTED = {"A": [("entered", 3), ("cleared", 11), ("entered", 20), ("cleared", 24)],
            "B": [("entered", 10), ("cleared", 17), ("entered", 30), ("cleared", 33)]}


@pytest.mark.parametrize("store", ["memory", "file"])
def test_two_episodes_with_flapping_give_one_entered_and_one_cleared_message_each(store,
                                                                                  tmp_path):
    state_file = tmp_path / "episodes.sqlite" if store == "file" else None
    with receiving() as receiver:
        notifier = Notifier(NotifyConfig(critical_webhooks=(receiver.url,), clear_after=3),
                            state_file=state_file)
        notifier.start()
        for minute in range(40):
            answer = [forecast(line, minute, minute in ALARMS[line]) for line in ALARMS]
            notifier.observe(MODEL, answer)
            notifier.observe(MODEL, answer)  # the same minute asked again changes nothing
        notifier.close()
        got = receiver.wait_for(8)
    assert len(got) == 8
    for line, expected in EXPECTED.items():
        assert [(m["event"], int(m["as_of"][14:16])) for m in got
                if m["line_id"] == line] == expected
    first = got[0]
    assert first["kind"] == "critical" and first["model"] == MODEL
    assert first["horizons"] == {"10": {"p_critical": 0.8, "threshold": 0.42, "state": "CRITICAL"}}
    assert first["sent_at"].endswith("Z") and "line A" in first["text"] and ">= 0.42" in first["text"]
    cleared = next(m for m in got if m["event"] == "cleared" and m["line_id"] == "A")
    assert (cleared["started_at"], cleared["last_alarm_at"]) == ("2026-03-01T08:03:00Z",
                                                                 "2026-03-01T08:08:00Z")
    assert (cleared["duration_min"], cleared["alarm_minutes"]) == (5, 5)
    assert cleared["as_of"] == "2026-03-01T08:11:00Z"  # after 3 calm minutes
    assert notifier.sender.count("critical", "sent") == 8


def test_the_alarm_key_wins_over_the_state_which_is_the_fallback_without_it():
    episodes = CriticalEpisodes(clear_after=1)
    # a CRITICAL state below the operating point is no alarm
    assert episodes.observe(MODEL, [forecast("A", 0, False, state="CRITICAL")]) == []
    [entered] = episodes.observe(MODEL, [forecast("A", 1, None, state="CRITICAL")])
    assert entered["horizons"]["10"] == {"p_critical": 0.1, "threshold": None,
                                         "state": "CRITICAL"}
    [cleared] = episodes.observe(MODEL, [forecast("A", 2, None)])
    assert cleared["event"] == "cleared"
    assert episodes.observe(MODEL, [forecast("A", 1, True)]) == []  # an older minute: ignored


def test_a_receiver_answering_500_twice_then_200_gets_the_strict_json_once_after_backoff():
    with receiving(statuses=(500, 503)) as receiver:
        with WebhookSender(NotifyConfig(drift_webhooks=(receiver.url,), attempts=3,
                                        backoff_s=0.1)) as sender:
            sender.send("drift", {"kind": "drift", "event": "detected", "share": float("nan")})
        got = receiver.wait_for(1)
    assert got == [{"kind": "drift", "event": "detected", "share": None}]  # strict JSON
    first, second, third = receiver.tries
    assert second - first >= 0.09 and third - second >= 0.19  # 0.1 s, then doubled
    assert (sender.count("drift", "sent"), sender.count("drift", "failed")) == (1, 0)


def test_an_answer_that_another_try_will_not_change_is_not_retried():
    with receiving(statuses=(404,)) as receiver:
        with WebhookSender(NotifyConfig(drift_webhooks=(receiver.url,), backoff_s=0.01)) as s:
            s.send("drift", {"kind": "drift", "event": "detected"})
    assert len(receiver.tries) == 1 and s.count("drift", "failed") == 1


def test_receivers_that_are_down_or_hang_never_slow_observe_and_failures_are_counted():
    closed = f"http://127.0.0.1:{free_port()}/hook"
    with silent_receiver() as hanging:
        config = NotifyConfig(critical_webhooks=(closed, hanging), timeout_s=1.0, attempts=2,
                              backoff_s=0.05, clear_after=1, queue_size=16)
        results: list[tuple[str, str]] = []
        notifier = Notifier(config, on_result=lambda kind, result: results.append((kind, result)))
        notifier.start()
        slowest = 0.0
        for minute in range(2000):  # an episode enters or clears on every call
            answer = [forecast(line, minute % 60, minute % 2 == 0) for line in ("A", "B")]
            answer = [{**a, "as_of": f"2026-03-{1 + minute // 1440:02d}T"
                                     f"{minute // 60 % 24:02d}:{minute % 60:02d}:00Z"} for a in answer]
            started = time.perf_counter()
            notifier.observe(MODEL, answer)
            slowest = max(slowest, time.perf_counter() - started)
        deadline = time.monotonic() + 5
        while notifier.sender.count("critical", "failed") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.perf_counter()
        notifier.close(timeout_s=0.5)
        closing = time.perf_counter() - started
    assert slowest < 0.05, slowest  # far under the 1 s timeout: no call waits on the network
    assert notifier.sender.count("critical", "failed") >= 1
    assert notifier.sender.count("critical", "dropped") > 1000  # the queue held 16
    assert ("critical", "dropped") in results and ("critical", "failed") in results
    assert closing < 1.5


def test_settings_name_the_field_that_is_wrong():
    with pytest.raises(ValueError, match="notify.drift_webhooks: 'ftp://x' is not an http"):
        NotifyConfig(drift_webhooks=("ftp://x",))
    with pytest.raises(ValueError, match="notify.critical_webhooks: expected a list"):
        NotifyConfig(critical_webhooks="http://x")
    with pytest.raises(ValueError, match=r"s.yaml: unknown field\(s\) \['notify.hooks'\]"):
        NotifyConfig.from_values({"hooks": []}, "s.yaml")
    with pytest.raises(ValueError, match="notify.attempts=0: expected a whole number >= 1"):
        NotifyConfig.from_values({"attempts": 0})
    with pytest.raises(ValueError, match="notify.timeout_s=0: expected a number > 0"):
        NotifyConfig(timeout_s=0)
    assert NotifyConfig.from_values({"critical_webhooks": ["https://chat/x"]}).webhooks(
        "critical") == ("https://chat/x",)
