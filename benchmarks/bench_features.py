"""Benchmark of the feature paths: batch for a year of one line against the obvious pandas code,
peak memory, and online latency for one line.

    python benchmarks/bench_features.py [--days 365] [--repeats 5] [--online-calls 3000]

Prints figures; exits non-zero only if the pandas reference and the batch path disagree.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import pandas as pd

from amhs_assets.contract import FLAG_FILLED, FLAG_MISSING, LOOKBACK_MIN, NUMERIC_COLUMNS
from amhs_assets.features.compute import build_features, online_features
from amhs_assets.features.spec import (
    CALENDAR_SOURCE,
    DERIVED,
    FEATURE_NAMES,
    FEATURE_SPECS,
    FeatureSpec,
    calendar_features,
)
from amhs_assets.simulate.lines import simulate_lines


def cleaned_year(days: float) -> pd.DataFrame:
    """One simulated line as the ingest step leaves it, 3% of minutes completing nothing."""
    raw = simulate_lines(["OHT-A"], pd.Timestamp("2025-01-01", tz="UTC"), days, seed=7)["OHT-A"]
    frame = raw.copy()
    frame[list(NUMERIC_COLUMNS)] = frame[list(NUMERIC_COLUMNS)].astype(np.float64)
    idle = np.random.default_rng(0).random(len(frame)) < 0.03
    frame.loc[idle, "jobs_completed"] = 0.0
    frame.loc[idle, ["transfer_time_avg_s", "transfer_time_max_s", "transfer_time_min_s"]] = np.nan
    frame[FLAG_FILLED] = False
    frame[FLAG_MISSING] = False
    return frame


# --- the reference: the same features, the obvious pandas way ----------------------------------

def _pandas_slope(s: pd.Series, w: int) -> pd.Series:
    t = pd.Series(np.arange(len(s), dtype=np.float64), index=s.index).where(s.notna())
    cov = s.rolling(w, min_periods=2).cov(t, ddof=0)
    return cov / t.rolling(w, min_periods=2).var(ddof=0)


def _pandas_since(s: pd.Series) -> pd.Series:
    idx = pd.Series(np.arange(len(s), dtype=np.float64), index=s.index)
    return (idx - idx.where(s > 0).ffill()).clip(upper=LOOKBACK_MIN).fillna(LOOKBACK_MIN)


PANDAS: dict[str, Callable[[pd.Series, int], pd.Series]] = {
    "value": lambda s, w: s,
    "last": lambda s, w: s.ffill(limit=LOOKBACK_MIN - 1),
    "lag": lambda s, w: s.shift(w),
    "diff": lambda s, w: s.diff(w),
    "mean": lambda s, w: s.rolling(w, min_periods=1).mean(),
    "std": lambda s, w: s.rolling(w, min_periods=1).std(ddof=0),
    "min": lambda s, w: s.rolling(w, min_periods=1).min(),
    "max": lambda s, w: s.rolling(w, min_periods=1).max(),
    "sum": lambda s, w: s.rolling(w, min_periods=1).sum(),
    "slope": _pandas_slope,
    "since": lambda s, w: _pandas_since(s),
}


def base_series(cleaned: pd.DataFrame) -> dict[str, pd.Series]:
    """The contract columns and derived series of one line."""
    line = cleaned.reset_index(drop=True)
    series = {c: line[c] for c in NUMERIC_COLUMNS}
    series.update({d.name: pd.Series(d.compute(series), index=line.index) for d in DERIVED})
    return series


def pandas_features(cleaned: pd.DataFrame) -> pd.DataFrame:
    """Every feature by per-column pandas calls on one line (the reference, not the product)."""
    line = cleaned.reset_index(drop=True)
    series = base_series(line)
    minutes = line["timestamp"].astype("int64").to_numpy() // 60_000_000_000
    calendar = calendar_features(minutes)
    calendar_rows = {f"{CALENDAR_SOURCE}__{n}": i for i, n in enumerate(
        [s.transform for s in FEATURE_SPECS if s.source == CALENDAR_SOURCE])}

    def one(spec: FeatureSpec) -> pd.Series:
        """One feature column."""
        if spec.source == CALENDAR_SOURCE:
            return pd.Series(calendar[calendar_rows[spec.name]], index=line.index)
        return PANDAS[spec.transform](series[spec.source], spec.window)

    return pd.DataFrame({spec.name: one(spec) for spec in FEATURE_SPECS}).astype(np.float32)


# --- measurements ------------------------------------------------------------------------------

def timed(fn: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    """Wall seconds of each of `repeats` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def peak_mib(fn: Callable[[], object]) -> float:
    """Peak bytes allocated (tracemalloc) while fn runs, in MiB."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def online_latency_ms(cleaned: pd.DataFrame, calls: int, as_frame: bool) -> np.ndarray:
    """Wall and CPU milliseconds (rows) of online_features on `calls` sliding windows of one line."""
    columns = {c: cleaned[c].to_numpy() for c in NUMERIC_COLUMNS}
    stamps = cleaned["timestamp"].tolist()
    out = np.empty((2, calls))
    for i in range(calls):
        t = LOOKBACK_MIN + i
        window = (cleaned.iloc[t + 1 - LOOKBACK_MIN: t + 1] if as_frame
                  else {c: v[t + 1 - LOOKBACK_MIN: t + 1] for c, v in columns.items()})
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        online_features(window, stamps[t])
        out[:, i] = time.perf_counter_ns() - wall, time.thread_time_ns() - cpu
    return out / 1e6


def agrees_with_polyfit(cleaned: pd.DataFrame, features: pd.DataFrame, name: str, sample: int = 200) -> bool:
    """Where batch and pandas differ on a slope, check batch against np.polyfit (exact).

    pandas' rolling cov loses digits when the time index reaches 10^5 minutes; the batch path
    restarts its time index every block."""
    spec = next(s for s in FEATURE_SPECS if s.name == name)
    if spec.transform != "slope":
        return False
    y, got = base_series(cleaned)[spec.source].to_numpy(), features[name].to_numpy()
    rows = np.random.default_rng(0).choice(np.arange(spec.window, len(y)), sample, replace=False)
    errors = []
    for t in rows:
        window = y[t + 1 - spec.window: t + 1]
        ok = ~np.isnan(window)
        if ok.sum() >= 2:
            exact = np.polyfit(np.flatnonzero(ok), window[ok], 1)[0]
            errors.append(abs(got[t] - exact) / max(1.0, abs(exact)))
    print(f"  {name}: batch vs np.polyfit on {len(errors)} sampled rows, max relative error {max(errors):.1e}")
    return max(errors) < 1e-4


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--repeats", type=int, default=5, help="batch runs (at least 2)")
    parser.add_argument("--online-calls", type=int, default=3000)
    args = parser.parse_args()

    cleaned = cleaned_year(args.days)
    print(f"rows: {len(cleaned):,} (one line, {args.days:g} days); load average {os.getloadavg()[0]:.2f}")
    batch_s, features = timed(lambda: build_features(cleaned), max(2, args.repeats))
    best = min(batch_s[1:])
    print(f"batch build_features: first {batch_s[0]:.3f} s (fresh memory), then best {best:.3f} s, "
          f"median {np.median(batch_s[1:]):.3f} s ({len(FEATURE_NAMES)} features)")
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pandas_s, reference = timed(lambda: pandas_features(cleaned), 2)
    print(f"pandas reference:     best {min(pandas_s):.3f} s -> batch is {min(pandas_s) / best:.1f}x "
          f"faster (best vs best; {min(pandas_s) / batch_s[0]:.1f}x against batch's first run)")
    ours = features[list(FEATURE_NAMES)].to_numpy()
    close = np.isclose(ours, reference.to_numpy(), rtol=1e-4, atol=1e-3, equal_nan=True)
    differing = [FEATURE_NAMES[j] for j in np.flatnonzero(~close.all(axis=0))]
    print(f"batch == pandas (rtol 1e-4, atol 1e-3): {close.mean():.6%} of values; differing: {differing}")
    wrong = [name for name in differing if not agrees_with_polyfit(cleaned, features, name)]
    print(f"peak memory of build_features: {peak_mib(lambda: build_features(cleaned)):.0f} MiB traced "
          f"(output alone {ours.nbytes / 2**20:.0f} MiB); process max RSS before the pandas "
          f"reference {rss_mib:.0f} MiB (the simulator included)")
    for as_frame in (False, True):
        wall, cpu = online_latency_ms(cleaned, args.online_calls, as_frame)
        print(f"online_features ({'DataFrame' if as_frame else 'dict of arrays'} window): wall p50 "
              f"{np.percentile(wall, 50):.3f} ms, p99 {np.percentile(wall, 99):.3f} ms; CPU p50 "
              f"{np.percentile(cpu, 50):.3f} ms, p99 {np.percentile(cpu, 99):.3f} ms")
    raise SystemExit(1 if wrong else 0)


if __name__ == "__main__":
    main()
