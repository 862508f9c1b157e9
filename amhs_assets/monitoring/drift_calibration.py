"""Drift statistic and per-column thresholds, calibrated on the reference itself; no Dagster.

Steps 1 and 2 of the method described in drift.py: the ``amhs_trimmed_wasserstein`` statistic
(registered with Evidently), the settings of drift detection (DriftConfig), and each column's
threshold from how far the reference's own windows stray from the rest of it (leave one
window out, pooled over lines).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from evidently.legacy.calculations.stattests.registry import (
    StatTest,
    get_registered_stattest,
    register_stattest,
)
from evidently.legacy.core import ColumnType

from amhs_assets.config import setting
from amhs_assets.contract import FLAG_MISSING, KEY_COLUMNS, NUMERIC_COLUMNS

TRIMMED_WASSERSTEIN = "amhs_trimmed_wasserstein"
QUANTILE_RANGE = (0.10, 0.60)  # the typical minutes: incidents fill the upper tail
_GRID = np.linspace(*QUANTILE_RANGE, 81)
MIN_SCALE = 1e-3  # as Evidently's own Wasserstein: a constant reference column
# Evidently's distance-type methods (larger score = more drift), the only ones calibration can use
DISTANCE_METHODS = frozenset(
    {TRIMMED_WASSERSTEIN, "wasserstein", "psi", "jensenshannon", "hellinger", "kl_div", "ed"}
)
NOT_MONITORED = ("vehicles_total", "pm_active")
# rare events: their drift is a change of rate, which lives in the tail; Evidently's Wasserstein
EVENT_COLUMNS = ("alarms_minor", "alarms_major", "comm_errors", "retry_count", "blocked_segments")
DRIFT_COLUMNS: tuple[str, ...] = tuple(c for c in NUMERIC_COLUMNS if c not in NOT_MONITORED)


@dataclass(frozen=True)
class DriftConfig:
    """Windows, methods, thresholds and the decision rule of drift detection."""

    current_hours: float = setting(
        24.0, "the current window of the drift report (and of each calibration window), hours "
              "up to the last minute")
    method: str = setting(TRIMMED_WASSERSTEIN, "distance of a column's current values from "
                                               "its reference (an Evidently method)")
    per_column_method: Mapping[str, str] = setting(
        dict.fromkeys(EVENT_COLUMNS, "wasserstein"),
        "methods of particular columns (rare events drift in their tail)")
    threshold_quantile: float = setting(
        1.0, "a column's threshold: this quantile of its calibration scores (1.0 = the largest)")
    threshold_margin: float = setting(1.3, "... times this margin")
    min_threshold: float = setting(0.1, "... and at least this")
    drift_share: float = setting(0.2, "drift when at least this share of (line, column) pairs "
                                      "is beyond its threshold")
    min_rows: int = setting(60, "fewer non-empty values: the pair is not compared")
    min_window_coverage: float = setting(
        0.5, "calibration windows need this share of their minutes")
    min_reference_windows: int = setting(
        7, "fewer reference windows than this on every line: no verdict (thresholds would be "
           "a guess; a week of daily windows covers each weekday once)")
    columns: tuple[str, ...] = setting(DRIFT_COLUMNS, "the columns compared")

    def __post_init__(self) -> None:
        for column, method in {"*": self.method, **self.per_column_method}.items():
            if method not in DISTANCE_METHODS:
                raise ValueError(f"drift method {method!r} for column {column!r} is not one of "
                                 f"{sorted(DISTANCE_METHODS)}: thresholds are calibrated on "
                                 "distances, not p-values")
        if self.current_hours <= 0 or not 0 < self.threshold_quantile <= 1:
            raise ValueError("current_hours must be > 0 and threshold_quantile in (0, 1]")
        if not 0 < self.drift_share <= 1:
            raise ValueError("drift_share must be in (0, 1]")

    def method_for(self, column: str) -> str:
        return self.per_column_method.get(column, self.method)


@dataclass(frozen=True)
class ColumnThreshold:
    """A column's drift method and calibrated threshold, with what it was calibrated on."""

    method: str
    threshold: float
    reference_score: float  # the threshold_quantile of the calibration scores
    windows: int  # calibration scores behind it (windows x lines)


# --- the statistic ----------------------------------------------------------------------------
def _sorted_quantiles(ascending: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Quantiles of an ascending array, interpolated linearly (numpy's default method)."""
    pos = probs * (len(ascending) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(ascending) - 1)
    return ascending[lo] + (pos - lo) * (ascending[hi] - ascending[lo])


def _trimmed_distance(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """Trimmed Wasserstein distance of two ascending samples, in units of the reference's IQR."""
    q25, q75 = _sorted_quantiles(ref_sorted, np.array([0.25, 0.75]))
    scale = q75 - q25 if q75 > q25 else float(np.std(ref_sorted))
    gap = np.abs(_sorted_quantiles(ref_sorted, _GRID) - _sorted_quantiles(cur_sorted, _GRID))
    return float(gap.mean() / max(scale, MIN_SCALE))


def _wasserstein_normed(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """Evidently's "wasserstein" (W1 over the reference's std) of two ascending samples."""
    edges = np.sort(np.concatenate([ref_sorted, cur_sorted]))
    gaps = np.diff(edges)
    cdf_ref = np.searchsorted(ref_sorted, edges[:-1], "right") / len(ref_sorted)
    cdf_cur = np.searchsorted(cur_sorted, edges[:-1], "right") / len(cur_sorted)
    return float(np.sum(np.abs(cdf_ref - cdf_cur) * gaps) / max(np.std(ref_sorted), MIN_SCALE))


def trimmed_wasserstein(reference: Sequence[float], current: Sequence[float]) -> float:
    """Mean gap of the 10th-60th percentiles over the reference's IQR; NaN dropped."""
    ref, cur = (np.asarray(x, dtype="float64") for x in (reference, current))
    return _trimmed_distance(np.sort(ref[~np.isnan(ref)]), np.sort(cur[~np.isnan(cur)]))


def _evidently_trimmed_wasserstein(reference_data: pd.Series, current_data: pd.Series,
                                   feature_type: ColumnType, threshold: float
                                   ) -> tuple[float, bool]:
    score = trimmed_wasserstein(reference_data, current_data)
    return score, score > threshold


register_stattest(
    StatTest(name=TRIMMED_WASSERSTEIN,
             display_name="Trimmed Wasserstein (10th-60th percentile, IQR-normed)",
             allowed_feature_types=[ColumnType.Numerical], default_threshold=0.5),
    _evidently_trimmed_wasserstein,
)


def stat_test(method: str) -> StatTest:
    """Evidently's registered test of a method, on numerical columns."""
    return get_registered_stattest(method, ColumnType.Numerical)


# the same scores on presorted samples, for calibration (one sort per line, not one per window)
_SORTED_SCORES = {TRIMMED_WASSERSTEIN: _trimmed_distance, "wasserstein": _wasserstein_normed}


# --- calibration ------------------------------------------------------------------------------
def usable_rows(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Key and value columns of the rows that hold data (minutes of long gaps dropped), sorted."""
    missing = [c for c in (*KEY_COLUMNS, *columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"drift input lacks column(s) {', '.join(missing)}: pass the cleaned "
                         "frame (cleaned_amhs_logs) or predictions keyed by line_id and timestamp")
    rows = ~frame[FLAG_MISSING].astype(bool) if FLAG_MISSING in frame else slice(None)
    out = frame.loc[rows, [*KEY_COLUMNS, *columns]]
    return out.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)


def _window_ids(frame: pd.DataFrame, config: DriftConfig) -> np.ndarray:
    """Calibration window of every row; -1 for windows of a line with too few minutes."""
    width_ns = int(round(config.current_hours * 3600e9))
    elapsed = (frame["timestamp"] - frame["timestamp"].min()).to_numpy().astype(np.int64)
    ids = elapsed // width_ns
    counts = pd.Series(1, index=pd.MultiIndex.from_arrays([frame["line_id"], ids])).groupby(
        level=[0, 1]).transform("size").to_numpy()
    needed = max(config.min_rows, config.min_window_coverage * config.current_hours * 60)
    return np.where(counts >= needed, ids, -1)


def _window_scores(values: np.ndarray, windows: np.ndarray, method: str, min_rows: int
                   ) -> list[float]:
    """Each window of one line scored against the rest of that line (leave one window out)."""
    keep = ~np.isnan(values) & (windows >= 0)
    values, windows = values[keep], windows[keep]
    ids, counts = np.unique(windows, return_counts=True)
    ids = [w for w, n in zip(ids, counts) if n >= min_rows and len(values) - n >= min_rows]
    if method in _SORTED_SCORES:
        score = _SORTED_SCORES[method]
        order = np.argsort(values, kind="stable")
        ordered, owner = values[order], windows[order]
        return [score(ordered[owner != w], ordered[owner == w]) for w in ids]
    test = stat_test(method)
    return [float(test(pd.Series(values[windows != w]), pd.Series(values[windows == w]),
                       ColumnType.Numerical, None).drift_score) for w in ids]


def calibrate_thresholds(reference: pd.DataFrame, config: DriftConfig = DriftConfig(),
                         columns: Sequence[str] | None = None) -> dict[str, ColumnThreshold]:
    """Per column: method and threshold, from how far the reference's own windows stray."""
    columns = list(config.columns if columns is None else columns)
    ref = usable_rows(reference, columns)
    windows = _window_ids(ref, config)
    valid = windows >= 0
    per_line = pd.Series(windows[valid]).groupby(ref["line_id"].to_numpy()[valid]).nunique()
    if per_line.empty or per_line.max() < config.min_reference_windows:
        span = ref["timestamp"].max() - ref["timestamp"].min() if len(ref) else pd.Timedelta(0)
        raise ValueError(f"the reference spans {span}: calibration needs at least "
                         f"{config.min_reference_windows} windows of {config.current_hours:g} h "
                         "(current_hours) on some line")
    groups = ref.groupby("line_id", sort=True).indices
    thresholds: dict[str, ColumnThreshold] = {}
    for column in columns:
        method = config.method_for(column)
        values = ref[column].to_numpy(dtype="float64")
        scores = [s for idx in groups.values()
                  for s in _window_scores(values[idx], windows[idx], method, config.min_rows)]
        if not scores:
            continue  # never observed often enough: the column cannot be compared
        base = float(np.quantile(scores, config.threshold_quantile))
        thresholds[column] = ColumnThreshold(
            method, max(base * config.threshold_margin, config.min_threshold), base, len(scores))
    return thresholds
