"""The targets (SPEC section 2): min, max, avg and state of the target column over minutes
t+1..t+h of each line, vectorised over each line with the feature transforms, no Dagster."""

from __future__ import annotations

import numpy as np
import pandas as pd

from amhs_assets.contract import (
    CRITICAL_THRESHOLD_S,
    FLAG_MISSING,
    HORIZONS,
    TARGET_COLUMN,
    WARNING_THRESHOLD_S,
)
from amhs_assets.features.compute import TRANSFORMS, checked_bounds

STATE_UNAVAILABLE = -1


def _ahead(transform: str, x: np.ndarray, h: int) -> np.ndarray:
    """A transform of each series of x over rows t+1..t+h (NaN where that passes the end)."""
    spec = TRANSFORMS[transform]
    trailing = spec.evaluate(spec.prepare(x), np.arange(len(x)), h, False)
    out = np.full(trailing.shape, np.nan)
    if trailing.shape[1] > h:  # a line shorter than the horizon has no complete window
        out[:, : trailing.shape[1] - h] = trailing[:, h:]
    return out


def _line_targets(y: np.ndarray, alarms: np.ndarray, missing: np.ndarray, h: int,
                  thresholds: tuple[float, float]) -> dict[str, np.ndarray]:
    """min, max, avg and state of one line over minutes t+1..t+h."""
    low, high, avg = (_ahead(k, y[None], h)[0] for k in ("min", "max", "mean"))
    alarm_sum, missing_sum = _ahead("sum", np.stack([alarms, missing.astype(np.float64)]), h)
    available = ~np.isnan(avg) & (missing_sum == 0)
    warning_s, critical_s = thresholds
    state = np.where((high >= critical_s) | (alarm_sum > 0), 2, np.where(high >= warning_s, 1, 0))
    blank = np.where(available, 0.0, np.nan)
    return {"min": low + blank, "max": high + blank, "avg": avg + blank,
            "state": np.where(available, state, STATE_UNAVAILABLE).astype(np.int8)}


def build_targets(cleaned: pd.DataFrame, horizons: tuple[int, ...] = HORIZONS,
                  target_column: str = TARGET_COLUMN, warning_s: float = WARNING_THRESHOLD_S,
                  critical_s: float = CRITICAL_THRESHOLD_S) -> pd.DataFrame:
    """min_h, max_h, avg_h (NaN) and state_h (int8, -1) over minutes t+1..t+h of each row's line."""
    bounds = checked_bounds(cleaned, (target_column, "alarms_major", FLAG_MISSING))
    y = cleaned[target_column].to_numpy(np.float64)
    alarms = cleaned["alarms_major"].to_numpy(np.float64)
    missing = cleaned[FLAG_MISSING].to_numpy(bool)
    out = {"line_id": cleaned["line_id"].array, "timestamp": cleaned["timestamp"].array}
    for h in horizons:
        parts = {k: np.full(len(cleaned), np.nan) for k in ("min", "max", "avg")}
        parts["state"] = np.full(len(cleaned), STATE_UNAVAILABLE, dtype=np.int8)
        for start, stop in bounds:
            line = _line_targets(y[start:stop], alarms[start:stop], missing[start:stop], int(h),
                                 (warning_s, critical_s))
            for k, values in line.items():
                parts[k][start:stop] = values
        out.update({f"{k}_{h}": v for k, v in parts.items()})
    return pd.DataFrame(out, index=cleaned.index)
