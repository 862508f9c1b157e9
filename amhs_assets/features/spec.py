"""The declarative feature catalog (SPEC section 3): which transform of which series, over which window.

Features are `{source}__{transform}` or `{source}__{transform}_{window}`. A source is a contract
column, a derived per-minute series (a ratio that expresses load, computed from the same minute
only) or the calendar. The table `_PLAN` drives everything: names, catalog, batch and online code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from amhs_assets.contract import (
    COLUMN_SPECS,
    FAB_UTC_OFFSET_H,
    LOOKBACK_MIN,
    N_FEATURES,
    NUMERIC_COLUMNS,
    SHIFT_START_HOURS,
    TARGET_COLUMN,
)

FEATURE_VERSION = "1.0.0"  # bump whenever a definition below changes

CALENDAR_SOURCE = "cal"

NOW = (None,)  # one feature without a window
W_ALL = (5, 15, 30, 60, 120)
W_LONG = (15, 30, 60, 120)
W_MAIN = (15, 60)

Series = Mapping[str, np.ndarray]


def _per(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Ratio with the denominator floored at 1, so an empty fleet or no demand gives no inf."""
    return numerator / np.maximum(denominator, 1.0)


@dataclass(frozen=True)
class DerivedSeries:
    """A per-minute series computed from the same minute's contract columns."""

    name: str
    sources: tuple[str, ...]
    description: str
    compute: Callable[[Series], np.ndarray]


DERIVED: tuple[DerivedSeries, ...] = (
    DerivedSeries("vehicles_available", ("vehicles_total", "vehicles_down"), "vehicles not down",
                  lambda c: c["vehicles_total"] - c["vehicles_down"]),
    DerivedSeries("vehicles_down_share", ("vehicles_down", "vehicles_total"), "share of the fleet down",
                  lambda c: _per(c["vehicles_down"], c["vehicles_total"])),
    DerivedSeries("vehicles_active_share", ("vehicles_active", "vehicles_total"),
                  "share of the fleet executing a transfer",
                  lambda c: _per(c["vehicles_active"], c["vehicles_total"])),
    DerivedSeries("queue_per_available_vehicle", ("jobs_queued", "vehicles_total", "vehicles_down"),
                  "queued commands per vehicle not down",
                  lambda c: _per(c["jobs_queued"], c["vehicles_total"] - c["vehicles_down"])),
    DerivedSeries("demand_per_available_vehicle", ("jobs_requested", "vehicles_total", "vehicles_down"),
                  "new commands per vehicle not down (demand vs fleet capacity)",
                  lambda c: _per(c["jobs_requested"], c["vehicles_total"] - c["vehicles_down"])),
    DerivedSeries("completion_ratio", ("jobs_completed", "jobs_requested"),
                  "transfers delivered per new command",
                  lambda c: _per(c["jobs_completed"], c["jobs_requested"])),
    DerivedSeries("backlog_growth", ("jobs_requested", "jobs_completed", "jobs_cancelled"),
                  "new commands minus delivered and cancelled ones",
                  lambda c: c["jobs_requested"] - c["jobs_completed"] - c["jobs_cancelled"]),
    DerivedSeries("transfer_spread_s", ("transfer_time_max_s", "transfer_time_min_s"),
                  "slowest minus fastest transfer of the minute",
                  lambda c: c["transfer_time_max_s"] - c["transfer_time_min_s"]),
)

# the series every feature reads, in the order of the rows of the base matrix
BASE_SERIES: tuple[str, ...] = (*NUMERIC_COLUMNS, *(d.name for d in DERIVED))

_CALENDAR: dict[str, str] = {
    "minute_of_day_sin": "sine of the local minute of the day",
    "minute_of_day_cos": "cosine of the local minute of the day",
    "shift_index": f"shift of the day, shifts starting at {SHIFT_START_HOURS} h",
    "minutes_since_shift_change": "minutes since the last shift change",
    "day_of_week": "local day of the week, Monday = 0",
    "is_weekend": "1 on Saturday and Sunday",
}
CALENDAR_FEATURES: tuple[str, ...] = tuple(_CALENDAR)


def calendar_features(minutes: np.ndarray) -> np.ndarray:
    """Calendar features (rows in CALENDAR_FEATURES order) of minutes since the Unix epoch (UTC)."""
    local = minutes + FAB_UTC_OFFSET_H * 60
    minute_of_day = local % 1440
    angle = 2.0 * np.pi * minute_of_day / 1440.0
    starts = np.array(SHIFT_START_HOURS) * 60
    shift = np.searchsorted(starts, minute_of_day, side="right") - 1  # -1: before the first start
    since_shift = (minute_of_day - starts[shift]) % 1440
    day_of_week = (local // 1440 + 3) % 7  # 1970-01-01 was a Thursday
    values = {"minute_of_day_sin": np.sin(angle), "minute_of_day_cos": np.cos(angle),
              "shift_index": shift % len(starts), "minutes_since_shift_change": since_shift,
              "day_of_week": day_of_week, "is_weekend": day_of_week >= 5}
    return np.stack([np.asarray(values[c], dtype=np.float64) for c in CALENDAR_FEATURES])


# source -> transform -> windows; dict order is the output order
_PLAN: dict[str, dict[str, tuple[int | None, ...]]] = {
    TARGET_COLUMN: {"value": NOW, "last": NOW, "lag": (1, 2, 5, 10), "mean": W_ALL, "std": W_LONG,
                    "min": W_LONG, "max": W_ALL, "slope": (15, 30, 60)},
    "transfer_time_max_s": {"value": NOW, "mean": W_MAIN, "max": W_MAIN},
    "transfer_time_min_s": {"value": NOW, "mean": W_MAIN},
    "transfer_spread_s": {"mean": W_MAIN},
    "wait_time_avg_s": {"value": NOW, "lag": (1, 5), "mean": (5, 15, 60, 120), "std": W_MAIN,
                        "max": W_MAIN, "slope": W_MAIN},
    "travel_time_avg_s": {"value": NOW, "mean": (5, 15, 60), "std": W_MAIN, "max": (15,),
                          "slope": (15,)},
    "jobs_queued": {"value": NOW, "lag": (1, 5, 15, 30), "mean": W_ALL, "std": W_MAIN, "min": (60,),
                    "max": (15, 60, 120), "diff": (1, 5, 15, 30), "slope": (15, 30, 60)},
    "jobs_requested": {"value": NOW, "mean": W_ALL, "std": W_MAIN},
    "jobs_completed": {"value": NOW, "mean": W_ALL, "std": (15,), "min": (15,)},
    "jobs_cancelled": {"value": NOW, "sum": W_MAIN},
    "backlog_growth": {"value": NOW, "mean": (5, 15, 60)},
    "completion_ratio": {"mean": W_MAIN},
    "vehicles_active": {"value": NOW, "mean": W_MAIN},
    "vehicles_idle": {"value": NOW, "mean": (15,)},
    "vehicles_down": {"value": NOW, "mean": W_MAIN, "max": (15, 60, 120), "diff": (5, 30)},
    "vehicles_available": {"value": NOW, "min": (60,)},
    "vehicles_down_share": {"value": NOW, "mean": (60,)},
    "vehicles_active_share": {"value": NOW, "mean": W_MAIN},
    "queue_per_available_vehicle": {"value": NOW, "mean": (5, 15, 60), "max": W_MAIN, "slope": (15,)},
    "demand_per_available_vehicle": {"value": NOW, "mean": W_MAIN},
    "vehicle_speed_avg_mps": {"value": NOW, "mean": (5, 15, 60), "min": (15,), "slope": (15,)},
    "congested_segments": {"value": NOW, "mean": (5, 15, 60, 120), "max": W_MAIN, "slope": W_MAIN},
    "blocked_segments": {"value": NOW, "mean": W_MAIN, "max": W_MAIN, "since": NOW},
    "rail_utilization_pct": {"value": NOW, "mean": (5, 15, 60, 120), "std": W_MAIN, "max": W_MAIN,
                             "slope": W_MAIN},
    "stocker_in": {"value": NOW, "mean": (15,)},
    "stocker_out": {"value": NOW, "mean": (15,)},
    "stocker_util_pct": {"value": NOW, "mean": W_MAIN},
    "port_busy_pct": {"value": NOW, "mean": W_MAIN},
    "hoist_ops": {"value": NOW, "mean": W_MAIN},
    "hoist_time_avg_s": {"value": NOW, "mean": W_MAIN},
    "alarms_minor": {"value": NOW, "sum": (5, 15, 60, 120), "since": NOW},
    "alarms_major": {"value": NOW, "sum": W_ALL, "since": NOW},
    "comm_errors": {"value": NOW, "sum": (5, 15, 60, 120)},
    "retry_count": {"value": NOW, "sum": (5, 15, 60, 120)},
    "wip_lots": {"value": NOW, "diff": W_MAIN, "slope": (60,)},
    "tool_down_count": {"value": NOW, "max": (60,), "diff": (15,)},
    "pm_active": {"value": NOW, "mean": (120,)},
    CALENDAR_SOURCE: {name: NOW for name in CALENDAR_FEATURES},
}

# transform -> (how the catalog describes it, rows it looks at given its window)
TRANSFORM_TEXT: dict[str, tuple[str, Callable[[int | None], int]]] = {
    "value": ("value at minute t", lambda w: 1),
    "last": ("last non-missing value within the lookback", lambda w: LOOKBACK_MIN),
    "lag": ("value {w} minutes before t", lambda w: w + 1),
    "diff": ("change since {w} minutes before t", lambda w: w + 1),
    "mean": ("mean over the last {w} minutes", lambda w: w),
    "std": ("standard deviation over the last {w} minutes", lambda w: w),
    "min": ("minimum over the last {w} minutes", lambda w: w),
    "max": ("maximum over the last {w} minutes", lambda w: w),
    "sum": ("sum over the last {w} minutes", lambda w: w),
    "slope": ("least-squares slope per minute over the last {w} minutes", lambda w: w),
    "since": (f"minutes since the last minute above 0, {LOOKBACK_MIN} if none in the lookback",
              lambda w: LOOKBACK_MIN),
}


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: a transform of a source series over a window."""

    source: str
    transform: str
    window: int | None

    @property
    def name(self) -> str:
        """`{source}__{transform}` or `{source}__{transform}_{window}`."""
        suffix = "" if self.window is None else f"_{self.window}"
        return f"{self.source}__{self.transform}{suffix}"

    @property
    def lookback(self) -> int:
        """Rows at or before t the feature reads."""
        return 1 if self.source == CALENDAR_SOURCE else TRANSFORM_TEXT[self.transform][1](self.window)


def _specs_from_plan() -> tuple[FeatureSpec, ...]:
    """Expand the plan table into one spec per feature."""
    return tuple(FeatureSpec(source, transform, w)
                 for source, transforms in _PLAN.items()
                 for transform, windows in transforms.items()
                 for w in windows)


FEATURE_SPECS: tuple[FeatureSpec, ...] = _specs_from_plan()
FEATURE_NAMES: tuple[str, ...] = tuple(s.name for s in FEATURE_SPECS)

_DERIVED_BY_NAME = {d.name: d for d in DERIVED}


def _source_columns(spec: FeatureSpec) -> tuple[str, ...]:
    """Contract columns a feature is computed from."""
    if spec.source == CALENDAR_SOURCE:
        return ("timestamp",)
    if spec.source in _DERIVED_BY_NAME:
        return _DERIVED_BY_NAME[spec.source].sources
    return (spec.source,)


def _description(spec: FeatureSpec) -> str:
    """One sentence saying what the feature is."""
    if spec.source == CALENDAR_SOURCE:
        return _CALENDAR[spec.transform]
    derived = _DERIVED_BY_NAME.get(spec.source)
    what = derived.description if derived else COLUMN_SPECS[spec.source].meaning
    return f"{what}: {TRANSFORM_TEXT[spec.transform][0].format(w=spec.window)}"


def feature_catalog() -> pd.DataFrame:
    """One row per feature: name, source columns, transform, window, description, lookback."""
    return pd.DataFrame({
        "name": FEATURE_NAMES,
        "source_columns": [",".join(_source_columns(s)) for s in FEATURE_SPECS],
        "transform": [s.transform for s in FEATURE_SPECS],
        "window": pd.array([s.window for s in FEATURE_SPECS], dtype="Int64"),
        "description": [_description(s) for s in FEATURE_SPECS],
        "lookback_min": [s.lookback for s in FEATURE_SPECS],
    })


def _check_specs() -> None:
    """Fail at import if the plan breaks the contract (count, uniqueness, lookback, sources)."""
    unknown = {s.source for s in FEATURE_SPECS} - {*BASE_SERIES, CALENDAR_SOURCE}
    too_long = [s.name for s in FEATURE_SPECS if s.lookback > LOOKBACK_MIN]
    if len(FEATURE_NAMES) != N_FEATURES or len(set(FEATURE_NAMES)) != N_FEATURES or unknown or too_long:
        raise RuntimeError(f"feature plan broken: {len(FEATURE_NAMES)} features "
                           f"({len(set(FEATURE_NAMES))} unique, {N_FEATURES} wanted), "
                           f"unknown sources {sorted(unknown)}, lookback too long {too_long}")


_check_specs()
