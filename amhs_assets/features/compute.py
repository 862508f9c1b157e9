"""The 222 features (SPEC section 3), batch and online, no Dagster; the targets are in targets.py.

One declarative plan (`spec`) drives both paths through the same transforms, each
prepared once per block of series and then evaluated per window:
- batch (`build_features`): per line, in blocks of CHUNK_ROWS rows plus LOOKBACK_MIN-1 rows of
  history, every row at once (prefix sums, O(n) min/max filters), no loop over rows;
- online (`online_features`): one line's window of at most LOOKBACK_MIN rows, last row only.
Series are rows of a (series, time) float64 matrix; features are written as float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from amhs_assets.contract import (
    FLAG_MISSING,
    KEY_COLUMNS,
    LOOKBACK_MIN,
    N_FEATURES,
    NUMERIC_COLUMNS,
)
from amhs_assets.features.spec import (
    BASE_SERIES,
    CALENDAR_FEATURES,
    CALENDAR_SOURCE,
    DERIVED,
    FEATURE_NAMES,
    FEATURE_SPECS,
    FeatureSpec,
    calendar_features,
)
from amhs_assets.progress import Progress, advance

CHUNK_ROWS = 8_192  # rows per batch block: keeps prefix sums small and exact, blocks in cache
_HISTORY = LOOKBACK_MIN - 1  # rows before a block that its first row may read
_NEVER = -(1 << 40)  # position of an event that did not happen

# a window: one length (batch, every row), the lengths of a group (online, last row) or None
Window = int | np.ndarray | None


# --- transforms: prepare a block once, then evaluate each window at every row or the last only --

def _prefix(a: np.ndarray) -> np.ndarray:
    """Cumulative sums along time, with a leading zero column."""
    out = np.zeros((a.shape[0], a.shape[1] + 1))
    np.cumsum(a, axis=1, out=out[:, 1:])
    return out


def _window_sums(prefix: np.ndarray, rows: np.ndarray, w: Window, last: bool) -> np.ndarray:
    """Sums over rows t-w+1..t (fewer at the start) from prefix sums; a one-row prefix is shared."""
    if last:
        ends = prefix[:, np.append(np.maximum(prefix.shape[1] - 1 - w, 0), -1)]
        ends = ends if len(ends) == 1 else ends[rows]
        return ends[:, -1:] - ends[:, :-1]
    p = prefix if len(prefix) == 1 else prefix[rows]
    out = np.empty((p.shape[0], p.shape[1] - 1))
    np.subtract(p[:, w:], p[:, :-w], out=out[:, w - 1:])
    out[:, :w - 1] = p[:, 1:w]
    return out


def _moments(keys: str) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """Prepare prefix sums of the named moments (n count, s values, ss squares, t/tt/ts time terms).

    Values are centred on each row's first valid value (never a later one: no look-ahead) so the
    sums stay small; time is the row number in the block, so time sums are exact integers.
    Terms of the NaN mask alone (n, t, tt) are one shared row when the block has no NaN."""
    def prepare(x: np.ndarray) -> dict[str, np.ndarray]:
        """Centre, NaN mask and prefix sums of a block of series."""
        ok = ~np.isnan(x)
        complete = ok.all()
        first = x[:, 0] if complete else x[np.arange(len(x)), np.argmax(ok, axis=1)]
        center = np.where(np.isnan(first), 0.0, first)[:, None]
        d = x - center if complete else np.where(ok, x - center, 0.0)
        mask = np.ones((1, x.shape[1])) if complete else ok.astype(np.float64)
        t = mask * np.arange(x.shape[1], dtype=np.float64) if "t" in keys else None
        terms = {"n": lambda: mask, "s": lambda: d, "ss": lambda: d * d,
                 "t": lambda: t, "tt": lambda: t * t, "ts": lambda: t * d}
        return {"center": center, **{k: _prefix(terms[k]()) for k in keys.split()}}
    return prepare


def _moment_sums(state: dict, rows: np.ndarray, w: Window, last: bool, keys: str) -> list[np.ndarray]:
    """Window sums of the named prefix arrays for the given rows."""
    return [_window_sums(state[k], rows, w, last) for k in keys.split()]


def _safe_div(a: np.ndarray, b: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """a / b where ok, NaN elsewhere, without warnings."""
    if ok.all():  # cheap when ok is a shared row: the block has no NaN
        return a / b
    return np.divide(a, b, out=np.full(np.broadcast(a, b).shape, np.nan), where=ok)


def _mean(state: dict, rows: np.ndarray, w: Window, last: bool) -> np.ndarray:
    n, s = _moment_sums(state, rows, w, last, "n s")
    return _safe_div(s, n, n > 0) + state["center"][rows]


def _sum(state: dict, rows: np.ndarray, w: Window, last: bool) -> np.ndarray:
    n, s = _moment_sums(state, rows, w, last, "n s")
    return s + _safe_div(n, 1.0, n > 0) * state["center"][rows]  # NaN where no valid value


def _std(state: dict, rows: np.ndarray, w: Window, last: bool) -> np.ndarray:
    """Population standard deviation (ddof 0) of the valid values of the window."""
    n, s, ss = _moment_sums(state, rows, w, last, "n s ss")
    mean = _safe_div(s, n, n > 0)
    return np.sqrt(np.maximum(_safe_div(ss, n, n > 0) - mean * mean, 0.0))


def _slope(state: dict, rows: np.ndarray, w: Window, last: bool) -> np.ndarray:
    """Least-squares slope per minute of the valid values of the window (NaN below 2 values)."""
    n, s, t, tt, ts = _moment_sums(state, rows, w, last, "n s t tt ts")
    ok = n >= 2
    cov = ts - _safe_div(t * s, n, ok)
    var = tt - _safe_div(t * t, n, ok)
    return _safe_div(cov, var, ok & (var > 0))


def _fill_nan(fill: float) -> Callable[[np.ndarray], np.ndarray]:
    """Prepare for a min/max: NaN becomes the value that never wins."""
    return lambda x: np.where(np.isnan(x), fill, x)


def _extreme(filt: Callable, ufunc: np.ufunc) -> Callable:
    """Trailing-window min or max: an O(n) filter for every row, or the last row's tails."""
    def evaluate(a: np.ndarray, rows: np.ndarray, w: Window, last: bool) -> np.ndarray:
        """Min or max of the chosen rows of a NaN-filled block."""
        if last:
            out = ufunc.accumulate(a[rows][:, ::-1], axis=1)[:, np.minimum(w, a.shape[1]) - 1]
        else:
            out = filt(a[rows], size=w, axis=1, origin=(w - 1) // 2, mode="nearest")
        out[np.isinf(out)] = np.nan  # the window held NaN only
        return out
    return evaluate


def _value(x: np.ndarray, rows: np.ndarray, w: None, last: bool) -> np.ndarray:
    return x[rows, -1:] if last else x[rows]


def _lag(x: np.ndarray, rows: np.ndarray, w: Window, last: bool) -> np.ndarray:
    if last:
        out = x[rows][:, np.maximum(x.shape[1] - 1 - w, 0)]
        out[:, w >= x.shape[1]] = np.nan
        return out
    out = np.full((len(rows), x.shape[1]), np.nan)
    out[:, w:] = x[rows, :-w]
    return out


def _diff(x: np.ndarray, rows: np.ndarray, w: Window, last: bool) -> np.ndarray:
    return _value(x, rows, None, last) - _lag(x, rows, w, last)


def _age(mask: np.ndarray) -> np.ndarray:
    """Rows since the last True at or before each row (huge where none)."""
    idx = np.arange(mask.shape[1])
    return idx - np.maximum.accumulate(np.where(mask, idx, _NEVER), axis=1)


def _last_valid(x: np.ndarray, rows: np.ndarray, w: None, last: bool) -> np.ndarray:
    """Last non-NaN value within the lookback (NaN if none)."""
    a = x[rows]
    age = _age(~np.isnan(a))
    at = np.maximum(np.arange(a.shape[1]) - age, 0)
    out = np.where(age < LOOKBACK_MIN, np.take_along_axis(a, at, axis=1), np.nan)
    return out[:, -1:] if last else out


def _since(x: np.ndarray, rows: np.ndarray, w: None, last: bool) -> np.ndarray:
    """Minutes since the last value above 0, LOOKBACK_MIN if none within the lookback."""
    out = np.minimum(_age(x[rows] > 0), LOOKBACK_MIN).astype(np.float64)
    return out[:, -1:] if last else out


def _identity(x: np.ndarray) -> np.ndarray:
    return x


@dataclass(frozen=True)
class Transform:
    """A transform: prepare a block of series once, then evaluate one window for some of them,
    at every row (batch) or at the last row only (online)."""

    prepare: Callable[[np.ndarray], object]
    evaluate: Callable[[object, np.ndarray, Window, bool], np.ndarray]


TRANSFORMS: dict[str, Transform] = {
    "value": Transform(_identity, _value),
    "last": Transform(_identity, _last_valid),
    "lag": Transform(_identity, _lag),
    "diff": Transform(_identity, _diff),
    "mean": Transform(_moments("n s"), _mean),
    "sum": Transform(_moments("n s"), _sum),
    "std": Transform(_moments("n s ss"), _std),
    "slope": Transform(_moments("n s t tt ts"), _slope),
    "min": Transform(_fill_nan(np.inf), _extreme(minimum_filter1d, np.minimum)),
    "max": Transform(_fill_nan(-np.inf), _extreme(maximum_filter1d, np.maximum)),
    "since": Transform(_identity, _since),
}


# --- the plan compiled into groups: one prepare per transform, then its windows ---------------

@dataclass(frozen=True)
class _WindowFeatures:
    window: int | None
    rows: np.ndarray  # rows of the group's series block
    positions: np.ndarray  # positions in FEATURE_NAMES


@dataclass(frozen=True)
class _Group:
    """One transform: its series, its windows one by one (batch) and all at once (online)."""

    transform: Transform
    series: np.ndarray  # rows of the base matrix the transform reads
    windows: tuple[_WindowFeatures, ...]
    lengths: np.ndarray | None  # every window length, for the last row at once; None: no window
    picks: tuple[np.ndarray, np.ndarray, np.ndarray]  # (series row, window, feature position)


def _group(transform: Transform, specs: list[tuple[int, FeatureSpec]]) -> _Group:
    """Index arrays of the features of one transform; specs are (position, spec)."""
    base_index = {name: i for i, name in enumerate(BASE_SERIES)}
    series = np.array(sorted({base_index[s.source] for _, s in specs}), dtype=np.intp)
    row = {s.source: int(np.searchsorted(series, base_index[s.source])) for _, s in specs}
    lengths = list(dict.fromkeys(s.window for _, s in specs))
    picks = tuple(np.array(v, dtype=np.intp)
                  for v in zip(*[(row[s.source], lengths.index(s.window), i) for i, s in specs]))
    windows = tuple(_WindowFeatures(w, picks[0][picks[1] == j], picks[2][picks[1] == j])
                    for j, w in enumerate(lengths))
    return _Group(transform, series, windows, None if lengths == [None] else np.array(lengths), picks)


_GROUPS = tuple(_group(t, [(i, s) for i, s in enumerate(FEATURE_SPECS) if s.transform == name])
                for name, t in TRANSFORMS.items())
_CALENDAR_POSITIONS = np.array([FEATURE_NAMES.index(f"{CALENDAR_SOURCE}__{c}") for c in CALENDAR_FEATURES])
assert sum(len(g.picks[2]) for g in _GROUPS) + len(_CALENDAR_POSITIONS) == N_FEATURES


def _base_matrix(raw: np.ndarray) -> np.ndarray:
    """Contract columns (rows of `raw`, NUMERIC_COLUMNS order) plus the derived per-minute series."""
    out = np.empty((len(BASE_SERIES), raw.shape[1]))
    out[: len(raw)] = raw
    columns = dict(zip(NUMERIC_COLUMNS, raw))
    for i, derived in enumerate(DERIVED, start=len(raw)):
        out[i] = derived.compute(columns)
    return out


def _evaluate(base: np.ndarray, last: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(positions, values) of every non-calendar feature of a block: every row (one window at a
    time), or the last row only (all windows of a transform at once)."""
    for group in _GROUPS:
        state = group.transform.prepare(base[group.series])
        if last:
            every = np.arange(len(group.series))
            values = group.transform.evaluate(state, every, group.lengths, True)
            rows, windows, positions = group.picks
            yield positions, values[rows, windows]
            continue
        for win in group.windows:
            yield win.positions, group.transform.evaluate(state, win.rows, win.window, False)


# --- batch path --------------------------------------------------------------------------------

def _line_bounds(line_ids: pd.Series) -> list[tuple[int, int]]:
    """(start, stop) row ranges of each line; lines must be contiguous."""
    ids = line_ids.to_numpy()
    if len(ids) == 0:
        return []
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts, stops = np.r_[0, cuts], np.r_[cuts, len(ids)]
    if len(set(ids[starts])) != len(starts):
        raise ValueError("cleaned frame: rows of a line_id are not contiguous; sort by line_id, timestamp")
    return list(zip(starts.tolist(), stops.tolist()))


def _epoch_minutes(timestamps: pd.Series) -> np.ndarray:
    """Minutes since the Unix epoch of a timestamp column (naive means UTC)."""
    return pd.DatetimeIndex(timestamps).as_unit("s").asi8 // 60


def checked_bounds(cleaned: pd.DataFrame, columns: tuple[str, ...]) -> list[tuple[int, int]]:
    """Line bounds of a cleaned frame after checking its columns and one-minute grid."""
    absent = [c for c in (*KEY_COLUMNS, *columns) if c not in cleaned.columns]
    if absent:
        raise ValueError(f"cleaned frame lacks columns {absent}; pass the output of the ingest step")
    bounds = _line_bounds(cleaned["line_id"])
    steps = np.diff(_epoch_minutes(cleaned["timestamp"]))
    steps[[stop - 1 for _, stop in bounds[:-1]]] = 1  # line changes are not steps
    if (steps != 1).any():
        row = int(np.flatnonzero(steps != 1)[0]) + 1
        raise ValueError(f"cleaned frame row {row}: timestamps are not a one-minute grid per line "
                         f"(line {cleaned['line_id'].iloc[row]!r}, {cleaned['timestamp'].iloc[row]})")
    return bounds


def _fill_block(raw: np.ndarray, minutes: np.ndarray, out: np.ndarray, skip: int) -> None:
    """Write every feature of the rows of a block after its first `skip` (history) rows."""
    for positions, values in _evaluate(_base_matrix(raw), last=False):
        out[positions] = values[:, skip:]
    out[_CALENDAR_POSITIONS] = calendar_features(minutes[skip:])


def _blocks(bounds: list[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
    """(history start, start, stop) of each block of each line."""
    for start, stop in bounds:
        for s in range(start, stop, CHUNK_ROWS):
            yield max(s - _HISTORY, start), s, min(s + CHUNK_ROWS, stop)


def build_features(cleaned: pd.DataFrame, progress: Progress | None = None) -> pd.DataFrame:
    """The 222 features (float32) of every row of a cleaned frame, with line_id and timestamp
    first; progress counts rows."""
    bounds = checked_bounds(cleaned, NUMERIC_COLUMNS)
    columns = [cleaned[c].to_numpy(np.float64) for c in NUMERIC_COLUMNS]
    minutes = _epoch_minutes(cleaned["timestamp"])
    out = np.empty((N_FEATURES, len(cleaned)), dtype=np.float32)
    for h, s, e in _blocks(bounds):
        raw = np.stack([c[h:e] for c in columns])
        _fill_block(raw, minutes[h:e], out[:, s:e], s - h)
        advance(progress, e - s)
    frame = pd.DataFrame(out.T, columns=list(FEATURE_NAMES), index=cleaned.index, copy=False)
    frame.insert(0, "timestamp", cleaned["timestamp"].array)
    frame.insert(0, "line_id", cleaned["line_id"].array)
    return frame


def feature_rows_usable(cleaned: pd.DataFrame) -> np.ndarray:
    """True where the row's whole lookback (LOOKBACK_MIN rows of its line) exists without a missing row."""
    bounds = checked_bounds(cleaned, (FLAG_MISSING,))
    missing = cleaned[FLAG_MISSING].to_numpy(bool)
    usable = np.zeros(len(cleaned), dtype=bool)
    for start, stop in bounds:
        counts = np.r_[0, np.cumsum(missing[start:stop])]
        usable[start + LOOKBACK_MIN - 1: stop] = counts[LOOKBACK_MIN:] == counts[:-LOOKBACK_MIN]
    return usable


# --- online path -------------------------------------------------------------------------------

def _epoch_minute(timestamp: object) -> int:
    """Minutes since the Unix epoch of one timestamp (datetime, numpy datetime64 or ISO string;
    naive means UTC)."""
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp)
    if isinstance(timestamp, datetime):
        aware = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=timezone.utc)
        return int(aware.timestamp() // 60)
    return int(np.datetime64(timestamp, "m").astype(np.int64))


def online_features(window: Mapping[str, np.ndarray] | pd.DataFrame, timestamp: object) -> np.ndarray:
    """The 222 features (float32) of the last row of one line's latest <= LOOKBACK_MIN cleaned rows."""
    if isinstance(window, pd.DataFrame):
        raw = window.loc[:, list(NUMERIC_COLUMNS)].to_numpy(np.float64)[-LOOKBACK_MIN:].T
    else:
        raw = np.stack([np.asarray(window[c], np.float64)[-LOOKBACK_MIN:] for c in NUMERIC_COLUMNS])
    if raw.shape[1] == 0:
        raise ValueError("online_features needs at least one row in the window")
    out = np.empty(N_FEATURES, dtype=np.float32)
    for positions, values in _evaluate(_base_matrix(raw), last=True):
        out[positions] = values
    out[_CALENDAR_POSITIONS] = calendar_features(np.array([_epoch_minute(timestamp)]))[:, 0]
    return out


# --- targets (SPEC section 2) ------------------------------------------------------------------


