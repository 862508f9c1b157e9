"""CRITICAL episodes shared by the API's worker processes (a SQLite file): two real processes
answering the same lines' minutes page each episode once, and a restart mid-episode does not
page it again."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from amhs_assets.notify import Notifier, NotifyConfig
from amhs_assets_tests.notify.receiver import receiving
from amhs_assets_tests.notify.test_notify import ALARMS, MODEL, forecast

MINUTES = 40
STEP_S = 0.03


def worker(url: str, state_file: str, parity: int, start: float) -> None:
    """One API worker's notifier: it answers every other minute (and every fifth minute, which
    both workers answer), each at its time since `start`, as requests spread over workers."""
    notifier = Notifier(NotifyConfig(critical_webhooks=(url,), clear_after=3),
                        state_file=Path(state_file))
    notifier.start()
    for minute in range(MINUTES):
        if minute % 2 != parity and minute % 5:
            continue
        time.sleep(max(start + minute * STEP_S + parity * STEP_S / 3 - time.time(), 0))
        notifier.observe(MODEL, [forecast(line, minute, minute in ALARMS[line])
                                 for line in ALARMS])
    notifier.close(timeout_s=10)


def test_two_worker_processes_page_each_episode_once(tmp_path):
    spawn = multiprocessing.get_context("spawn")
    with receiving() as receiver:
        start = time.time() + 3  # both processes imported by then
        processes = [spawn.Process(target=worker, args=(receiver.url, str(tmp_path / "ep.sqlite"),
                                                        parity, start)) for parity in (0, 1)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
            assert process.exitcode == 0
        got = receiver.wait_for(8, timeout_s=2)
    for line in ALARMS:  # each worker alone saw the alarms too: with its own memory, it paged
        events = [m["event"] for m in got if m["line_id"] == line]
        assert events == ["entered", "cleared", "entered", "cleared"], (line, events)
    assert len(got) == 8
    entered = sorted(int(m["as_of"][14:16]) for m in got if m["event"] == "entered")
    assert entered == [3, 10, 20, 30]  # the first alarm of each, whichever worker answered it


def test_a_restart_in_the_middle_of_an_episode_does_not_page_it_again(tmp_path):
    with receiving() as receiver:
        config = NotifyConfig(critical_webhooks=(receiver.url,), clear_after=3)
        for minutes in (range(0, 6), range(6, 15)):  # line A alarms 3-5 and 7-8: one episode
            notifier = Notifier(config, state_file=tmp_path / "ep.sqlite")
            notifier.start()
            for minute in minutes:
                notifier.observe(MODEL, [forecast("A", minute, minute in ALARMS["A"])])
            notifier.close()
        got = receiver.wait_for(2, timeout_s=5)
    assert [(m["event"], m["as_of"][14:16]) for m in got] == [("entered", "03"),
                                                               ("cleared", "11")]
    assert got[1]["alarm_minutes"] == 5  # counted across the restart
