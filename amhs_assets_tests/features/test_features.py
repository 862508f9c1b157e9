"""Features and targets (SPEC sections 2 and 3): contract, no look-ahead, gaps, batch == online."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from amhs_assets.contract import (
    CRITICAL_THRESHOLD_S,
    FLAG_FILLED,
    FLAG_MISSING,
    HORIZONS,
    LOOKBACK_MIN,
    N_FEATURES,
    NUMERIC_COLUMNS,
    TARGET_COLUMN,
    TRANSFER_TIME_COLUMNS,
    WARNING_THRESHOLD_S,
)
from amhs_assets.features.compute import build_features, feature_rows_usable, online_features
from amhs_assets.features.spec import FEATURE_NAMES, FEATURE_VERSION, feature_catalog
from amhs_assets.features.targets import build_targets
from amhs_assets.simulate.lines import simulate_lines

START = pd.Timestamp("2026-01-05", tz="UTC")


def cleaned_frame(line_ids: tuple[str, ...], days: float, seed: int = 11, idle_share: float = 0.03
                  ) -> pd.DataFrame:
    """Simulated lines as the ingest step leaves them, with some minutes that complete nothing."""
    raw = pd.concat(simulate_lines(list(line_ids), START, days, seed).values(), ignore_index=True)
    frame = raw.sort_values(["line_id", "timestamp"], kind="stable").reset_index(drop=True)
    frame[list(NUMERIC_COLUMNS)] = frame[list(NUMERIC_COLUMNS)].astype(np.float64)
    idle = np.random.default_rng(seed).random(len(frame)) < idle_share
    frame.loc[idle, "jobs_completed"] = 0.0
    frame.loc[idle, list(TRANSFER_TIME_COLUMNS)] = np.nan
    frame[FLAG_FILLED] = False
    frame[FLAG_MISSING] = False
    return frame


def with_long_gap(frame: pd.DataFrame, first_row: int, length: int) -> pd.DataFrame:
    """The frame with rows first_row .. first_row+length-1 turned into a long gap."""
    out = frame.copy()
    rows = out.index[first_row: first_row + length]
    out.loc[rows, list(NUMERIC_COLUMNS)] = np.nan
    out.loc[rows, FLAG_MISSING] = True
    return out


def feature_values(frame: pd.DataFrame) -> np.ndarray:
    """The feature matrix of a frame."""
    return build_features(frame)[list(FEATURE_NAMES)].to_numpy()


@pytest.fixture(scope="module")
def week() -> pd.DataFrame:
    """One simulated line over a week."""
    return cleaned_frame(("OHT-A",), days=7)


@pytest.fixture(scope="module")
def two_lines() -> pd.DataFrame:
    """Two simulated lines over two days."""
    return cleaned_frame(("OHT-A", "OHT-B"), days=2, seed=5)


# --- names and catalog -------------------------------------------------------------------------

def test_there_are_exactly_222_unique_feature_names_all_in_the_catalog():
    catalog = feature_catalog()
    assert len(FEATURE_NAMES) == N_FEATURES == len(set(FEATURE_NAMES))
    assert list(catalog["name"]) == list(FEATURE_NAMES)
    assert {"name", "source_columns", "transform", "window", "description"} <= set(catalog.columns)
    assert catalog["description"].str.len().min() > 10
    assert (catalog["lookback_min"] <= LOOKBACK_MIN).all()
    assert FEATURE_VERSION.count(".") == 2


def test_persistence_and_alarm_features_exist_under_their_contract_names():
    assert "transfer_time_avg_s__last" in FEATURE_NAMES
    assert "alarms_major__value" in FEATURE_NAMES


def test_features_are_float32_one_row_per_input_row_in_input_order(two_lines):
    features = build_features(two_lines)
    assert list(features.columns) == ["line_id", "timestamp", *FEATURE_NAMES]
    assert (features[list(FEATURE_NAMES)].dtypes == np.float32).all()
    assert features["line_id"].tolist() == two_lines["line_id"].tolist()
    assert features["timestamp"].equals(two_lines["timestamp"])


def test_no_feature_is_constant_on_a_realistic_frame(week):
    values = feature_values(week)[feature_rows_usable(week)]
    constant = [n for n, col in zip(FEATURE_NAMES, values.T) if np.nanmin(col) == np.nanmax(col)]
    assert constant == []


# --- no look-ahead -----------------------------------------------------------------------------

@pytest.mark.parametrize("t", [700, 1439, 2000])
def test_changing_every_row_after_t_changes_no_feature_at_or_before_t(two_lines, t):
    changed = two_lines.copy()
    rng = np.random.default_rng(t)
    future = changed.index[t + 1:]
    noise = rng.uniform(0, 900, (len(future), len(NUMERIC_COLUMNS)))
    noise[rng.random(noise.shape) < 0.1] = np.nan
    changed.loc[future, list(NUMERIC_COLUMNS)] = noise
    changed.loc[future, FLAG_MISSING] = rng.random(len(future)) < 0.05
    np.testing.assert_array_equal(feature_values(changed)[: t + 1], feature_values(two_lines)[: t + 1])


def test_deleting_every_row_after_t_changes_no_feature_at_or_before_t(two_lines):
    t = 1000
    np.testing.assert_array_equal(feature_values(two_lines.iloc[: t + 1]),
                                  feature_values(two_lines)[: t + 1])


# --- long gaps ---------------------------------------------------------------------------------

def test_rows_whose_window_touches_a_long_gap_are_unusable(two_lines):
    gap_start, gap_len = 500, 30
    usable = feature_rows_usable(with_long_gap(two_lines, gap_start, gap_len))
    n_a = int((two_lines["line_id"] == "OHT-A").sum())
    expected = np.ones(len(two_lines), dtype=bool)
    expected[: LOOKBACK_MIN - 1] = False  # line A's first rows lack a whole lookback
    expected[n_a: n_a + LOOKBACK_MIN - 1] = False  # so do line B's
    expected[gap_start: gap_start + gap_len + LOOKBACK_MIN - 1] = False
    np.testing.assert_array_equal(usable, expected)


def test_usable_rows_after_a_gap_do_not_depend_on_rows_before_it(week):
    gap_start, gap_len = 3000, 20
    gapped = with_long_gap(week, gap_start, gap_len)
    after = gap_start + gap_len  # first row after the gap
    usable = feature_rows_usable(gapped)
    assert usable[after + LOOKBACK_MIN - 1:].all() and not usable[after + LOOKBACK_MIN - 2]
    with_history = feature_values(gapped)[after + LOOKBACK_MIN - 1:]
    fresh = feature_values(gapped.iloc[after:].reset_index(drop=True))[LOOKBACK_MIN - 1:]
    calendar = [i for i, n in enumerate(FEATURE_NAMES) if n.startswith("cal__")]
    np.testing.assert_allclose(np.delete(with_history, calendar, axis=1),
                               np.delete(fresh, calendar, axis=1), rtol=1e-5, atol=1e-4)


# --- batch == online ---------------------------------------------------------------------------

def online_mismatches(frame: pd.DataFrame, rows: range) -> list[tuple]:
    """(row, feature, online, batch) wherever online features of a line's window differ from batch."""
    batch = feature_values(frame)
    columns = {c: frame[c].to_numpy() for c in NUMERIC_COLUMNS}
    lines, stamps = frame["line_id"].to_numpy(), frame["timestamp"].tolist()
    mismatches = []
    for t in rows:
        lo = max(0, t + 1 - LOOKBACK_MIN)
        lo += int(np.argmax(lines[lo: t + 1] == lines[t]))  # the window stays in the row's line
        online = online_features({c: v[lo: t + 1] for c, v in columns.items()}, stamps[t])
        bad = ~np.isclose(online, batch[t], rtol=1e-4, atol=1e-3, equal_nan=True)
        mismatches += [(t, FEATURE_NAMES[j], online[j], batch[t, j]) for j in np.flatnonzero(bad)]
    return mismatches


def test_online_features_equal_batch_features_on_every_row_of_a_week(week):
    frame = with_long_gap(week, 4000, 30)
    frame.loc[6000:6040, list(TRANSFER_TIME_COLUMNS)] = np.nan  # 41 minutes without a completion
    assert online_mismatches(frame, range(len(frame)))[:10] == []


def test_online_features_equal_batch_features_where_a_line_starts(two_lines):
    second_line = int((two_lines["line_id"] == "OHT-A").sum())
    assert online_mismatches(two_lines, range(second_line - 5, second_line + LOOKBACK_MIN + 5)) == []


def test_online_features_take_a_dataframe_and_use_only_the_last_lookback_rows(week):
    window = week.iloc[1000:1300]
    online = online_features(window, window["timestamp"].iloc[-1])
    assert online.dtype == np.float32 and online.shape == (N_FEATURES,)
    last_rows = {c: window[c].to_numpy()[-LOOKBACK_MIN:] for c in NUMERIC_COLUMNS}
    np.testing.assert_array_equal(online, online_features(last_rows, window["timestamp"].iloc[-1]))


# --- feature definitions against obvious references --------------------------------------------

def _series(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name].reset_index(drop=True)


REFERENCES = {
    "transfer_time_avg_s__mean_15": lambda f: _series(f, TARGET_COLUMN).rolling(15, min_periods=1).mean(),
    "transfer_time_avg_s__std_30": lambda f: _series(f, TARGET_COLUMN).rolling(30, min_periods=1).std(ddof=0),
    "transfer_time_avg_s__min_60": lambda f: _series(f, TARGET_COLUMN).rolling(60, min_periods=1).min(),
    "transfer_time_avg_s__last": lambda f: _series(f, TARGET_COLUMN).ffill(limit=LOOKBACK_MIN - 1),
    "jobs_queued__max_120": lambda f: _series(f, "jobs_queued").rolling(120, min_periods=1).max(),
    "jobs_queued__lag_5": lambda f: _series(f, "jobs_queued").shift(5),
    "jobs_queued__diff_15": lambda f: _series(f, "jobs_queued").diff(15),
    "alarms_minor__sum_60": lambda f: _series(f, "alarms_minor").rolling(60, min_periods=1).sum(),
    "queue_per_available_vehicle__value": lambda f: _series(f, "jobs_queued") / np.maximum(
        _series(f, "vehicles_total") - _series(f, "vehicles_down"), 1),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_feature_matches_its_pandas_definition(week, name):
    frame = week.iloc[:3000]
    got = build_features(frame)[name].to_numpy()
    np.testing.assert_allclose(got, REFERENCES[name](frame).to_numpy(), rtol=1e-5, atol=1e-3)


def test_slope_is_the_least_squares_slope_over_the_window(week):
    y = week["jobs_queued"].to_numpy()
    got = build_features(week.iloc[:600])["jobs_queued__slope_30"].to_numpy()
    for t in (29, 100, 450, 599):
        assert got[t] == pytest.approx(np.polyfit(np.arange(30), y[t - 29: t + 1], 1)[0], abs=1e-4)


def test_minutes_since_the_last_major_alarm_count_from_zero_and_stop_at_the_lookback():
    frame = cleaned_frame(("OHT-A",), days=0.5)
    frame["alarms_major"] = 0.0
    frame.loc[[100, 130], "alarms_major"] = 2.0
    since = build_features(frame)["alarms_major__since"].to_numpy()
    assert since[99] == LOOKBACK_MIN and since[100] == 0 and since[129] == 29 and since[130] == 0
    assert since[130 + LOOKBACK_MIN - 1] == LOOKBACK_MIN - 1 and since[130 + LOOKBACK_MIN] == LOOKBACK_MIN


def test_calendar_features_use_fab_shifts():
    frame = cleaned_frame(("OHT-A",), days=0.1)  # starts Monday 2026-01-05 00:00 UTC
    features = build_features(frame).iloc[0]
    assert features["cal__shift_index"] == 0  # 08:00 local (UTC+8): day shift since 06:00
    assert features["cal__minutes_since_shift_change"] == 120
    assert features["cal__day_of_week"] == 0 and features["cal__is_weekend"] == 0


def test_a_frame_that_is_not_a_one_minute_grid_is_refused_with_the_row(two_lines):
    with pytest.raises(ValueError, match="row 10"):
        build_features(two_lines.drop(index=10))


# --- targets -----------------------------------------------------------------------------------

def reference_targets(frame: pd.DataFrame, horizons=HORIZONS, target_column=TARGET_COLUMN,
                      warning_s=WARNING_THRESHOLD_S, critical_s=CRITICAL_THRESHOLD_S) -> dict:
    """Targets by the obvious loop over rows and windows."""
    rows = frame.to_dict("records")
    out = {f"{k}_{h}": [] for h in horizons for k in ("min", "max", "avg", "state")}
    for t, row in enumerate(rows):
        for h in horizons:
            window = rows[t + 1: t + 1 + h]
            ok = (len(window) == h and all(r["line_id"] == row["line_id"] for r in window)
                  and not any(r[FLAG_MISSING] for r in window))
            values = [r[target_column] for r in window if not math.isnan(r[target_column])] if ok else []
            if not values:
                for k, empty in (("min", np.nan), ("max", np.nan), ("avg", np.nan), ("state", -1)):
                    out[f"{k}_{h}"].append(empty)
                continue
            high = max(values)
            critical = high >= critical_s or any(r["alarms_major"] > 0 for r in window)
            out[f"min_{h}"].append(min(values))
            out[f"max_{h}"].append(high)
            out[f"avg_{h}"].append(sum(values) / len(values))
            out[f"state_{h}"].append(2 if critical else 1 if high >= warning_s else 0)
    return out


def small_target_frame() -> pd.DataFrame:
    """Two short lines with NaN target minutes, a long gap, alarms and slow transfers."""
    frame = cleaned_frame(("OHT-A", "OHT-B"), days=0.1, seed=3, idle_share=0.3)
    frame = with_long_gap(frame, 60, 8)
    rng = np.random.default_rng(1)
    frame[TARGET_COLUMN] = np.where(frame[TARGET_COLUMN].isna(), np.nan, rng.uniform(100, 800, len(frame)))
    frame.loc[90:105, TARGET_COLUMN] = np.nan  # a stretch longer than a horizon with no completions
    frame["alarms_major"] = np.where(frame[FLAG_MISSING], np.nan, (rng.random(len(frame)) < 0.02) * 1.0)
    return frame


def assert_targets_equal(got: pd.DataFrame, expected: dict) -> None:
    """Every target column equals the reference (states exactly, values to rounding)."""
    for name, values in expected.items():
        if name.startswith("state"):
            assert got[name].dtype == np.int8
            np.testing.assert_array_equal(got[name].to_numpy(), values, err_msg=name)
        else:
            np.testing.assert_allclose(got[name].to_numpy(), values, rtol=1e-12, err_msg=name)


def test_targets_match_a_row_by_row_reference():
    frame = small_target_frame()
    got = build_targets(frame)
    assert list(got.columns[:2]) == ["line_id", "timestamp"]
    assert_targets_equal(got, reference_targets(frame))
    assert set(got["state_10"]) == {-1, 0, 1, 2}


def test_target_horizons_thresholds_and_column_are_configuration():
    frame = small_target_frame()
    settings = {"horizons": (3, 7), "target_column": "wait_time_avg_s", "warning_s": 40.0, "critical_s": 90.0}
    got = build_targets(frame, **settings)
    assert [c for c in got.columns if c.startswith("state")] == ["state_3", "state_7"]
    assert_targets_equal(got, reference_targets(frame, **settings))
    assert not got["state_3"].equals(build_targets(frame, horizons=(3,))["state_3"])


def test_a_line_shorter_than_the_horizon_has_no_targets_and_no_usable_rows():
    frame = cleaned_frame(("A", "B"), 1)
    short = pd.concat([frame[frame["line_id"] == "A"].head(7), frame[frame["line_id"] == "B"]],
                      ignore_index=True)
    targets = build_targets(short)
    features = build_features(short)
    a = (short["line_id"] == "A").to_numpy()
    assert targets.loc[a, "avg_25"].isna().all() and (targets.loc[a, "state_25"] == -1).all()
    assert targets.loc[a, "avg_10"].isna().all()
    assert not feature_rows_usable(short)[a].any()
    assert len(features) == len(short)
    assert targets.loc[~a, "avg_10"].notna().any()
