"""The AMHS simulator: contract-valid rows, determinism, files, calibration, drift, precursors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amhs_assets.contract import (
    COLUMN_SPECS,
    CRITICAL_THRESHOLD_S,
    INTEGER_COLUMNS,
    LINE_ID_PATTERN,
    RAW_COLUMNS,
    TARGET_COLUMN,
    TRANSFER_TIME_COLUMNS,
    WARNING_THRESHOLD_S,
)
from amhs_assets.simulate.lines import simulate_lines, write_simulation

START = pd.Timestamp("2026-01-05", tz="UTC")
LINES = ("OHT-A", "OHT-B")
MIX_HORIZON = 25
MIX_RANGES = {"NORMAL": (0.65, 0.85), "WARNING": (0.10, 0.25), "CRITICAL": (0.03, 0.12)}


@pytest.fixture(scope="module")
def two_weeks() -> dict[str, pd.DataFrame]:
    return simulate_lines(LINES, START, 14, seed=7)


@pytest.fixture(scope="module")
def all_rows(two_weeks: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(two_weeks.values(), ignore_index=True)


def forward_states(frame: pd.DataFrame, horizon: int) -> pd.Series:
    """SPEC section 2 over minutes t+1..t+h; rows whose window runs past the end are dropped."""
    ahead = pd.api.indexers.FixedForwardWindowIndexer(window_size=horizon)
    worst = frame[TARGET_COLUMN].shift(-1).rolling(ahead, min_periods=1).max()
    majors = frame["alarms_major"].shift(-1).rolling(ahead, min_periods=1).max()
    state = np.where((worst >= CRITICAL_THRESHOLD_S) | (majors > 0), "CRITICAL",
                     np.where(worst >= WARNING_THRESHOLD_S, "WARNING", "NORMAL"))
    return pd.Series(state[:-horizon])


def test_each_line_has_the_32_contract_columns_in_order(
    two_weeks: dict[str, pd.DataFrame],
) -> None:
    assert list(two_weeks) == list(LINES)
    for line_id, frame in two_weeks.items():
        assert list(frame.columns) == list(RAW_COLUMNS)
        assert (frame["line_id"] == line_id).all()
        assert re.fullmatch(LINE_ID_PATTERN, line_id)


def test_timestamps_are_utc_one_row_per_minute(two_weeks: dict[str, pd.DataFrame]) -> None:
    for frame in two_weeks.values():
        ts = frame["timestamp"]
        assert str(ts.dt.tz) == "UTC"
        assert ts.iloc[0] == START and len(frame) == 14 * 1440
        assert (ts.diff().iloc[1:] == pd.Timedelta(minutes=1)).all()


def test_every_value_is_inside_its_contract_range(all_rows: pd.DataFrame) -> None:
    for name in INTEGER_COLUMNS:
        assert pd.api.types.is_integer_dtype(all_rows[name]), name
    for name, spec in COLUMN_SPECS.items():
        if not spec.is_numeric:
            continue
        values = all_rows[name].dropna()
        if spec.low is not None:
            assert (values >= spec.low).all(), name
        if spec.high is not None:
            assert (values <= spec.high).all(), name
    assert set(all_rows["pm_active"].unique()) <= {0, 1}


def test_cross_column_rules_hold_on_every_row(all_rows: pd.DataFrame) -> None:
    r = all_rows
    assert (r["vehicles_active"] <= r["vehicles_total"]).all()
    assert (r["vehicles_down"] <= r["vehicles_total"]).all()
    fleet = r["vehicles_active"] + r["vehicles_idle"] + r["vehicles_down"]
    assert (fleet == r["vehicles_total"]).all()
    done = r["jobs_completed"] > 0
    assert (r.loc[done, "transfer_time_min_s"] <= r.loc[done, "transfer_time_avg_s"]).all()
    assert (r.loc[done, "transfer_time_avg_s"] <= r.loc[done, "transfer_time_max_s"]).all()


def test_transfer_times_are_empty_exactly_when_no_job_completed(all_rows: pd.DataFrame) -> None:
    none_done = all_rows["jobs_completed"] == 0
    for name in TRANSFER_TIME_COLUMNS:
        assert (all_rows[name].isna() == none_done).all(), name
    assert none_done.any(), "severe blockages should stop deliveries for some minutes"


def test_same_seed_gives_the_same_logs_and_another_seed_differs() -> None:
    first = simulate_lines(LINES, START, 1, seed=3)
    again = simulate_lines(LINES, START, 1, seed=3)
    other = simulate_lines(LINES, START, 1, seed=4)
    for line_id in LINES:
        pd.testing.assert_frame_equal(first[line_id], again[line_id])
        assert not first[line_id].equals(other[line_id])
    assert first["OHT-A"]["vehicles_total"].iat[0] != first["OHT-B"]["vehicles_total"].iat[0]


def test_written_files_are_one_per_line_and_day_and_parse_back(tmp_path: Path) -> None:
    paths = write_simulation(tmp_path, lines=2, days=2, seed=5, progress=False)
    expected = {tmp_path / line / f"{line}_{day}.csv"
                for line in LINES for day in ("2026-01-05", "2026-01-06")}
    assert set(paths) == expected and all(p.exists() for p in paths)
    frames = simulate_lines(LINES, START, 2, seed=5)
    for line_id in LINES:
        written = pd.concat(pd.read_csv(tmp_path / line_id / f"{line_id}_{day}.csv")
                            for day in ("2026-01-05", "2026-01-06"))
        assert list(written.columns) == list(RAW_COLUMNS) and len(written) == 2 * 1440
        stamps = pd.to_datetime(written["timestamp"], utc=True)
        assert stamps.tolist() == frames[line_id]["timestamp"].tolist()
        for name in INTEGER_COLUMNS:
            assert pd.api.types.is_integer_dtype(written[name]), name
        numbers = [c for c in RAW_COLUMNS if c not in ("timestamp", "line_id")]
        expect = frames[line_id][numbers].reset_index(drop=True)
        got = written[numbers].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expect, check_dtype=False)


def test_csv_text_uses_z_timestamps_integers_and_empty_transfer_times(tmp_path: Path) -> None:
    path = write_simulation(tmp_path, lines=1, days=1, seed=5, progress=False)[0]
    header, first_row = path.read_text().splitlines()[:2]
    assert header.split(",") == list(RAW_COLUMNS)
    cells = dict(zip(RAW_COLUMNS, first_row.split(",")))
    assert cells["timestamp"] == "2026-01-05T00:00:00Z"
    assert all(re.fullmatch(r"\d+", cells[c]) for c in INTEGER_COLUMNS)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    empty = raw["jobs_completed"] == "0"
    assert ((raw[list(TRANSFER_TIME_COLUMNS)] == "").all(axis=1) == empty).all()


def test_state_mix_at_25_minutes_matches_the_calibration(
    two_weeks: dict[str, pd.DataFrame],
) -> None:
    states = pd.concat(forward_states(frame, MIX_HORIZON) for frame in two_weeks.values())
    mix = states.value_counts(normalize=True)
    for state, (low, high) in MIX_RANGES.items():
        assert low <= mix.get(state, 0.0) <= high, (state, mix.to_dict())


def test_normal_operation_transfer_times_are_a_few_minutes(all_rows: pd.DataFrame) -> None:
    typical = all_rows[TARGET_COLUMN].median()
    assert 100 <= typical <= 250


def test_drift_day_raises_transfer_times_and_shrinks_the_fleet() -> None:
    plain = simulate_lines(LINES, START, 6, seed=9)
    drift = simulate_lines(LINES, START, 6, seed=9, drift_day=3)
    cut = START + pd.Timedelta(days=3)
    for line_id in LINES:
        before, after = (f[f["timestamp"] < cut] for f in (plain[line_id], drift[line_id]))
        pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))
        p_late = plain[line_id][plain[line_id]["timestamp"] >= cut]
        d_late = drift[line_id][drift[line_id]["timestamp"] >= cut]
        assert (d_late["vehicles_total"] < p_late["vehicles_total"]).all()
        assert d_late[TARGET_COLUMN].mean() > 1.2 * p_late[TARGET_COLUMN].mean()


def test_incidents_are_announced_by_rising_comm_errors(all_rows: pd.DataFrame) -> None:
    ratios = []
    for _, frame in all_rows.groupby("line_id"):
        major = frame["alarms_major"].to_numpy() > 0
        quiet_before = pd.Series(major).rolling(30, min_periods=1).max().shift(1, fill_value=0) == 0
        onsets = np.flatnonzero(major & quiet_before.to_numpy())
        comm = frame["comm_errors"].to_numpy()
        before = np.mean([comm[o - 10:o].mean() for o in onsets if o >= 10])
        ratios.append(before / comm.mean())
        assert len(onsets) >= 5
    assert min(ratios) > 1.5, ratios


def test_written_logs_pass_the_contract_schema_without_a_single_quarantined_row(tmp_path: Path) -> None:
    from amhs_assets.ingest.clean import clean_raw_logs
    from amhs_assets.ingest.files import read_raw_files

    write_simulation(tmp_path, lines=2, days=3, seed=9, drift_day=2, progress=False)
    result = clean_raw_logs(read_raw_files(tmp_path), max_fill_gap=5)
    q = result.quality
    assert q["rows_read"] == 2 * 3 * 1440
    assert q["rows_quarantined"] == 0 and q["rows_duplicate"] == 0, result.quarantined.head()
    assert {f["status"] for f in q["files"]} == {"ok"}
