"""Operating points and alarm figures on hand-made minutes whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amhs_assets.evaluation.alarms import alarm_metrics
from amhs_assets.models.operating import brier_score, episode_starts, precision_threshold

N, W, C = 0, 1, 2


def minutes(n: int, line: str = "A", start: str = "2026-03-01T00:00") -> tuple:
    ts = pd.date_range(start, periods=n, freq="min").to_numpy()
    return np.array([line] * n), ts


def test_the_threshold_is_the_lowest_that_reaches_the_precision_target():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    y = np.array([1, 1, 0, 1, 0, 0, 0], bool)
    # precision at cuts 0.9: 1, 0.8: 1, 0.7: 2/3, 0.6: 3/4, 0.5: 3/5, 0.4: 1/2, 0.3: 3/7
    assert precision_threshold(p, y, 0.5, 0.5) == 0.4
    assert precision_threshold(p, y, 0.7, 0.5) == 0.6
    assert precision_threshold(p, y, 1.0, 0.5) == 0.8


def test_ties_are_cut_together_and_unreachable_targets_take_the_most_precise_cut():
    p = np.array([0.9, 0.9, 0.2, 0.2])
    y = np.array([1, 0, 1, 1], bool)
    # cuts: 0.9 -> 1/2, 0.2 -> 3/4: 0.9 is out of reach, the most precise cut wins
    assert precision_threshold(p, y, 0.9, 0.5) == 0.2
    assert precision_threshold(p, y, 0.5, 0.5) == 0.2
    assert precision_threshold(np.array([0.3, 0.1]), np.array([False, False]), 0.5,
                               0.42) == 0.42


def test_episodes_break_at_gaps_and_at_line_changes():
    line = np.array(["A", "A", "A", "A", "B", "B"])
    ts = pd.to_datetime(["2026-03-01 00:00", "2026-03-01 00:01", "2026-03-01 00:03",
                         "2026-03-01 00:04", "2026-03-01 00:05", "2026-03-01 00:06"]).to_numpy()
    m = ts.astype("datetime64[m]").astype(np.int64)
    flags = np.array([1, 1, 1, 1, 1, 0], bool)
    assert episode_starts(flags, line, m).tolist() == [True, False, True, False, True, False]


def test_false_alarms_lead_time_and_recall_of_a_known_day():
    line, ts = minutes(720)  # one shift of one line
    state = np.zeros(720, int)
    state[100:110] = C  # CRITICAL episode 1: event at minute 110 (horizon 10)
    state[400:405] = C  # episode 2: never alarmed
    p = np.zeros(720)
    p[95:108] = 0.9     # one alarm episode starting 15 minutes before the event
    p[600:603] = 0.8    # a false alarm episode
    out = alarm_metrics(p, state, line, ts, horizon=10, threshold=0.5)
    assert out["critical_precision"] == pytest.approx(8 / 16)  # minutes 100..107 of 95..107, 600..602
    assert out["critical_recall"] == pytest.approx(8 / 15)
    assert out["false_alarms_per_shift"] == pytest.approx(1.0)
    assert out["critical_episodes"] == 2
    assert out["lead_time_median_min"] == 15.0           # 110 - 95
    assert out["caught_5min_share"] == pytest.approx(0.5)  # 1 of 2 episodes, >= 5 min ahead


def test_rows_in_any_order_give_the_same_figures():
    line, ts = minutes(300)
    state = np.where((np.arange(300) % 50) < 5, C, N)
    p = np.where(((np.arange(300) % 50) >= 47) | ((np.arange(300) % 50) < 2), 0.9, 0.1)
    shuffled = np.random.default_rng(1).permutation(300)
    a = alarm_metrics(p, state, line, ts, 10, 0.5)
    b = alarm_metrics(p[shuffled], state[shuffled], line[shuffled], ts[shuffled], 10, 0.5)
    assert a == b and a["lead_time_median_min"] == 13.0  # alarm 3 min before label, +10
    assert a["caught_5min_share"] == 1.0 and a["critical_episodes"] == 6


def test_without_critical_minutes_the_undefined_figures_are_null():
    line, ts = minutes(60)
    out = alarm_metrics(np.zeros(60), np.zeros(60, int), line, ts, 10, 0.5)
    assert out["critical_recall"] is None and out["critical_precision"] is None
    assert out["lead_time_median_min"] is None and out["false_alarms_per_shift"] == 0.0


def test_brier_score_is_zero_for_certain_truth_and_two_for_certain_error():
    proba = np.array([[1.0, 0, 0], [0, 0, 1.0]])
    assert brier_score(proba, np.array([N, C])) == 0.0
    assert brier_score(proba, np.array([C, N])) == 2.0
    assert brier_score(proba, np.array([-1, -1])) is None
