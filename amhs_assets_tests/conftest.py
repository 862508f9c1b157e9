"""Shared fixtures: contract-valid raw rows built by hand, temporary data folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amhs_assets.contract import RAW_COLUMNS


def valid_rows(n: int = 30, line_id: str = "L1", start: str = "2026-03-01T00:00:00Z",
               seed: int = 0) -> pd.DataFrame:
    """n consecutive minutes of one line that satisfy every rule of the contract."""
    rng = np.random.default_rng(seed)
    total = np.full(n, 200)
    completed = rng.integers(0, 40, n)
    completed[::7] = 0  # some minutes complete nothing: transfer times empty
    avg = rng.uniform(90, 400, n).round(2)
    frame = pd.DataFrame({
        "timestamp": pd.date_range(start, periods=n, freq="min").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "line_id": line_id,
        "vehicles_total": total,
        "vehicles_active": rng.integers(50, 150, n),
        "vehicles_idle": rng.integers(0, 40, n),
        "vehicles_down": rng.integers(0, 10, n),
        "jobs_requested": rng.integers(10, 50, n),
        "jobs_completed": completed,
        "jobs_queued": rng.integers(0, 30, n),
        "jobs_cancelled": rng.integers(0, 2, n),
        "wait_time_avg_s": rng.uniform(5, 100, n).round(2),
        "travel_time_avg_s": rng.uniform(60, 200, n).round(2),
        "transfer_time_avg_s": avg,
        "transfer_time_max_s": (avg + rng.uniform(0, 100, n)).round(2),
        "transfer_time_min_s": (avg - rng.uniform(0, 80, n)).round(2),
        "vehicle_speed_avg_mps": rng.uniform(2, 5, n).round(3),
        "congested_segments": rng.integers(0, 5, n),
        "blocked_segments": rng.integers(0, 2, n),
        "rail_utilization_pct": rng.uniform(20, 90, n).round(2),
        "stocker_in": rng.integers(0, 10, n),
        "stocker_out": rng.integers(0, 10, n),
        "stocker_util_pct": rng.uniform(40, 90, n).round(2),
        "port_busy_pct": rng.uniform(20, 90, n).round(2),
        "hoist_ops": rng.integers(10, 80, n),
        "hoist_time_avg_s": rng.uniform(10, 20, n).round(2),
        "alarms_minor": rng.integers(0, 3, n),
        "alarms_major": (rng.random(n) < 0.05).astype(int),
        "comm_errors": rng.integers(0, 4, n),
        "retry_count": rng.integers(0, 4, n),
        "wip_lots": rng.integers(500, 900, n),
        "tool_down_count": rng.integers(0, 6, n),
        "pm_active": (rng.random(n) < 0.1).astype(int),
    })
    for col in ("transfer_time_avg_s", "transfer_time_max_s", "transfer_time_min_s"):
        frame[col] = frame[col].astype(object).where(completed > 0, "")
    assert list(frame.columns) == list(RAW_COLUMNS)
    return frame


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty AMHS_DATA_DIR with raw/ created."""
    (tmp_path / "raw").mkdir()
    return tmp_path
