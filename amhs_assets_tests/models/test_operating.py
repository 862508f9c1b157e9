"""Operating points on hand-made probabilities whose answers are known: thresholds for a
precision target and for a false alarm budget, calibration, the states they decide, JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from amhs_assets.models.operating import (
    AlarmConfig,
    Calibration,
    HorizonPolicy,
    brier_score,
    choose_calibration,
    choose_threshold,
    decide,
    false_alarm_episodes,
    fit_policy,
    sort_rows,
)

N, W, C = 0, 1, 2


def one_line(n: int) -> tuple[np.ndarray, np.ndarray]:
    line = np.array(["A"] * n)
    ts = pd.date_range("2026-03-01", periods=n, freq="min").to_numpy()
    return sort_rows(line, ts)[1:]


def test_the_budget_threshold_is_the_lowest_with_few_enough_false_alarm_episodes():
    line, minutes = one_line(720)  # one shift
    p = np.full(720, 0.05)
    positive = np.zeros(720, bool)
    positive[100:110] = True
    p[95:110] = 0.9  # the true alarm episode
    for start, height in ((300, 0.6), (400, 0.4)):  # two false ones, lower and lower
        p[start:start + 3] = height
    budget = lambda b: choose_threshold(p, positive, line, minutes,  # noqa: E731
                                        AlarmConfig(target="false_alarm_budget",
                                                    false_alarms_per_shift=b), horizon=10)
    assert 0.4 < budget(1) <= 0.6   # one false episode allowed: the 0.6 one alarms
    # two allowed: alarming all the time gives 2 (before 100, after 110), the lowest at 0.05
    assert budget(2) == pytest.approx(0.05)
    assert 0.6 < budget(0) <= 0.9   # none allowed: only the true episode alarms
    # its 5 minutes before the first positive label are an early alarm within the horizon;
    # alarming all the time is one false episode per gap, not one cheap episode
    always = np.ones(720, bool)
    assert false_alarm_episodes(always, positive, line, minutes, 10) == 2  # before 100, after 110
    positive[400:405] = True
    assert false_alarm_episodes(always, positive, line, minutes, 10) == 3


def test_isotonic_and_platt_fix_overconfident_probabilities_and_auto_picks_one():
    rng = np.random.default_rng(3)
    n = 20_000
    raw_c = rng.uniform(0, 1, n)
    truth_c = rng.uniform(0, 1, n) < raw_c * 0.4  # the model says p, the truth is 0.4 p
    state = np.where(truth_c, C, N)
    proba = np.column_stack([1 - raw_c, np.zeros(n), raw_c])
    minutes = np.arange(n)
    raw_brier = brier_score(proba, state)
    for method in ("isotonic", "platt"):
        fitted = Calibration.fit(method, proba, state).apply(proba)
        assert brier_score(fitted, state) < raw_brier - 0.02
        assert np.allclose(fitted.sum(axis=1), 1.0)
    chosen, info = choose_calibration(AlarmConfig(), proba, state, minutes)
    assert chosen.method in ("isotonic", "platt") and info["brier_cv"]["none"] > min(
        v for k, v in info["brier_cv"].items() if k != "none")
    assert choose_calibration(AlarmConfig(calibration="none"), proba, state,
                              minutes)[0].method == "none"


def test_the_state_follows_the_thresholds_not_the_most_probable_class():
    policy = HorizonPolicy(10, critical_threshold=0.25, warning_threshold=0.5)
    proba = np.array([[0.70, 0.00, 0.30],    # CRITICAL: 0.30 >= 0.25, though NORMAL is likelier
                      [0.35, 0.45, 0.20],    # NORMAL: WARNING is likeliest but below 0.5
                      [0.20, 0.60, 0.20]])   # WARNING
    out = decide({"proba": proba}, policy)
    assert out["state"].tolist() == [C, N, W]
    assert out["alarm"].tolist() == [True, False, False]
    plain = decide({"proba": proba}, None)
    assert plain["state"].tolist() == [N, W, W]


def test_a_fitted_policy_survives_json_and_decides_the_same():
    rng = np.random.default_rng(5)
    n = 3000
    line = np.repeat(["A", "B"], n // 2)
    ts = np.tile(pd.date_range("2026-03-01", periods=n // 2, freq="min").to_numpy(), 2)
    state = rng.choice([N, W, C], size=n, p=[0.8, 0.12, 0.08])
    proba = np.clip(np.eye(3)[state] * 0.5 + rng.dirichlet([2, 1, 1], n) * 0.5, 1e-3, None)
    proba /= proba.sum(axis=1, keepdims=True)
    policy = fit_policy(10, proba, state, line, ts, AlarmConfig(calibration="isotonic"))
    again = HorizonPolicy.from_dict(json.loads(json.dumps(policy.to_dict())))
    a, b = policy.decide(proba), again.decide(proba)
    assert np.array_equal(a["state"], b["state"]) and np.allclose(a["proba"], b["proba"])
    # the threshold reaches the precision target on the rows it was chosen on
    alarm = a["proba"][:, C] >= policy.critical_threshold
    assert (state[alarm] == C).mean() >= 0.5
    assert policy.val_brier <= policy.val_brier_raw + 1e-9


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="alarms.target='recall'"):
        AlarmConfig(target="recall")
    with pytest.raises(ValueError, match="alarms.calibration='beta'"):
        AlarmConfig(calibration="beta")
