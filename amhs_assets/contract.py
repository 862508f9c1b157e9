"""The raw-log contract (SPEC section 1) and the constants every stage shares.

Everything that names a column, a range, a horizon or a threshold default lives here once;
the rest of the package imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pandera loads in a third of a second: only where a frame is checked
    import pandera.pandas as pa

# --- targets and horizons (SPEC section 2) -------------------------------------------------
TARGET_COLUMN = "transfer_time_avg_s"
HORIZONS: tuple[int, ...] = (10, 15, 25)
WARNING_THRESHOLD_S = 300.0
CRITICAL_THRESHOLD_S = 600.0
STATES: tuple[str, ...] = ("NORMAL", "WARNING", "CRITICAL")
REGRESSION_TARGETS: tuple[str, ...] = ("min", "max", "avg")

# --- cleaning and features (SPEC sections 1 and 3) -----------------------------------------
MAX_FILL_GAP_MIN = 5  # gaps of at most this many minutes are filled and flagged
LOOKBACK_MIN = 120  # no feature looks further back than this
N_FEATURES = 222

# flag columns the cleaned series adds to the contract's columns
FLAG_FILLED = "is_filled"  # minute filled from the last observation (short gap)
FLAG_MISSING = "is_missing"  # minute inside a long gap: every value missing, never used

# fab local time: shifts, maintenance windows and calendar features follow it (no DST)
FAB_TIMEZONE = "Asia/Taipei"
FAB_UTC_OFFSET_H = 8  # must equal FAB_TIMEZONE's offset
SHIFT_START_HOURS: tuple[int, ...] = (6, 14, 22)  # shift changes, local time

LINE_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"

# --- registry (SPEC section 5) -------------------------------------------------------------
REGISTERED_MODEL_NAME = "amhs-predictor"
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"

# --- automation: Dagster run tags saying what launched a run and why (copied onto versions) ----
TRIGGER_TAG = "amhs/trigger"  # data | drift | performance | schedule | manual
TRIGGER_REASON_TAG = "amhs/trigger_reason"


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the raw-log contract."""

    name: str
    kind: str  # "datetime" | "str" | "int" | "float" | "flag"
    unit: str
    low: float | None = None
    high: float | None = None
    meaning: str = ""

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("int", "float", "flag")


_INF = None
COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("timestamp", "datetime", "minute", meaning="start of the minute, UTC"),
    ColumnSpec("line_id", "str", "", meaning="production line / OHT system"),
    ColumnSpec("vehicles_total", "int", "count", 0, 5000, "OHT vehicles registered on the line"),
    ColumnSpec("vehicles_active", "int", "count", 0, 5000, "vehicles executing a transfer"),
    ColumnSpec("vehicles_idle", "int", "count", 0, _INF, "idle vehicles"),
    ColumnSpec("vehicles_down", "int", "count", 0, 5000, "vehicles in error or maintenance"),
    ColumnSpec("jobs_requested", "int", "per minute", 0, _INF, "new transfer commands"),
    ColumnSpec("jobs_completed", "int", "per minute", 0, _INF, "transfers delivered"),
    ColumnSpec("jobs_queued", "int", "count", 0, _INF, "commands waiting at minute end"),
    ColumnSpec("jobs_cancelled", "int", "per minute", 0, _INF, "commands cancelled"),
    ColumnSpec("wait_time_avg_s", "float", "s", 0, 86400, "command to vehicle arrival"),
    ColumnSpec("travel_time_avg_s", "float", "s", 0, 86400, "loaded travel time"),
    ColumnSpec("transfer_time_avg_s", "float", "s", 0, 86400, "command to delivery (target)"),
    ColumnSpec("transfer_time_max_s", "float", "s", 0, _INF, "slowest transfer this minute"),
    ColumnSpec("transfer_time_min_s", "float", "s", 0, _INF, "fastest transfer this minute"),
    ColumnSpec("vehicle_speed_avg_mps", "float", "m/s", 0, 10, "mean vehicle speed"),
    ColumnSpec("congested_segments", "int", "count", 0, _INF, "segments over occupancy limit"),
    ColumnSpec("blocked_segments", "int", "count", 0, _INF, "segments blocked by a vehicle"),
    ColumnSpec("rail_utilization_pct", "float", "%", 0, 100, "rail utilisation"),
    ColumnSpec("stocker_in", "int", "per minute", 0, _INF, "lots stored"),
    ColumnSpec("stocker_out", "int", "per minute", 0, _INF, "lots retrieved"),
    ColumnSpec("stocker_util_pct", "float", "%", 0, 100, "stocker utilisation"),
    ColumnSpec("port_busy_pct", "float", "%", 0, 100, "load-port occupancy"),
    ColumnSpec("hoist_ops", "int", "per minute", 0, _INF, "load/unload operations"),
    ColumnSpec("hoist_time_avg_s", "float", "s", 0, 600, "mean hoist time"),
    ColumnSpec("alarms_minor", "int", "per minute", 0, _INF, "minor alarms"),
    ColumnSpec("alarms_major", "int", "per minute", 0, _INF, "major alarms"),
    ColumnSpec("comm_errors", "int", "per minute", 0, _INF, "communication errors"),
    ColumnSpec("retry_count", "int", "per minute", 0, _INF, "re-dispatch / re-route events"),
    ColumnSpec("wip_lots", "int", "count", 0, _INF, "lots in process on the line"),
    ColumnSpec("tool_down_count", "int", "count", 0, _INF, "process tools down"),
    ColumnSpec("pm_active", "flag", "flag", 0, 1, "preventive maintenance under way"),
)

COLUMN_SPECS: dict[str, ColumnSpec] = {c.name: c for c in COLUMNS}
RAW_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS)
KEY_COLUMNS: tuple[str, ...] = ("line_id", "timestamp")
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.is_numeric)
INTEGER_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.kind in ("int", "flag"))
# empty exactly when no transfer completed in the minute
TRANSFER_TIME_COLUMNS: tuple[str, ...] = (
    "transfer_time_avg_s",
    "transfer_time_max_s",
    "transfer_time_min_s",
)

assert len(RAW_COLUMNS) == 32, "the contract has 32 columns"


# --- the pandera schema of a typed raw frame ------------------------------------------------
# Cross-column rules: (name, fields it reads, rule over the frame). NaN on either side passes:
# missing values are reported by the column's own not-null rule, once.
CROSS_COLUMN_RULES: tuple[tuple[str, tuple[str, ...], Callable[[pd.DataFrame], pd.Series]], ...] = (
    (
        "vehicles_active <= vehicles_total",
        ("vehicles_active", "vehicles_total"),
        lambda d: ~(d["vehicles_active"] > d["vehicles_total"]),
    ),
    (
        "vehicles_down <= vehicles_total",
        ("vehicles_down", "vehicles_total"),
        lambda d: ~(d["vehicles_down"] > d["vehicles_total"]),
    ),
    (
        "transfer_time_min_s <= transfer_time_avg_s",
        ("transfer_time_min_s", "transfer_time_avg_s"),
        lambda d: ~(d["transfer_time_min_s"] > d["transfer_time_avg_s"]),
    ),
    (
        "transfer_time_avg_s <= transfer_time_max_s",
        ("transfer_time_avg_s", "transfer_time_max_s"),
        lambda d: ~(d["transfer_time_avg_s"] > d["transfer_time_max_s"]),
    ),
    (
        "transfer times present exactly when jobs_completed > 0",
        ("jobs_completed", *TRANSFER_TIME_COLUMNS),
        lambda d: d["jobs_completed"].isna()
        | ((d["jobs_completed"] > 0) == d[list(TRANSFER_TIME_COLUMNS)].notna().all(axis=1))
        & ((d["jobs_completed"] > 0) | d[list(TRANSFER_TIME_COLUMNS)].isna().all(axis=1)),
    ),
)


def _column_checks(spec: ColumnSpec) -> list[pa.Check]:
    """Range and integrality checks of one numeric column."""
    import pandera.pandas as pa

    checks: list[pa.Check] = []
    if spec.low is not None or spec.high is not None:
        low = spec.low if spec.low is not None else -np.inf
        high = spec.high if spec.high is not None else np.inf
        checks.append(pa.Check.in_range(low, high, error=f"out of range [{low:g}, {high:g}]"))
    if spec.kind in ("int", "flag"):
        checks.append(pa.Check(lambda s: s % 1 == 0, error="not an integer"))
    return checks


def raw_schema() -> pa.DataFrameSchema:
    """The contract as a pandera schema over a typed frame (numbers as float64, UTC timestamps)."""
    import pandera.pandas as pa

    columns: dict[str, pa.Column] = {
        "timestamp": pa.Column(
            pd.DatetimeTZDtype("ns", "UTC"),
            pa.Check(lambda s: s.dt.floor("min") == s, error="not at the start of a minute"),
            nullable=False,
        ),
        "line_id": pa.Column(
            str, pa.Check.str_matches(LINE_ID_PATTERN, error="line_id must be 1-64 of [A-Za-z0-9_.-]"),
            nullable=False,
        ),
    }
    for spec in COLUMNS:
        if spec.is_numeric:
            columns[spec.name] = pa.Column(
                float, _column_checks(spec), nullable=spec.name in TRANSFER_TIME_COLUMNS
            )
    wide = [pa.Check(rule, error=name) for name, _, rule in CROSS_COLUMN_RULES]
    return pa.DataFrameSchema(columns, checks=wide, strict=False, coerce=False)
