"""The AMHS simulator behind `amhs simulate`: simulated lines as frames and as daily CSV files.

The model lives in simulate_process (the causal chain and its knobs: demand, fleet, rail, queue,
incidents, drift) and simulate_observe (the 32 contract columns); this module runs them for
every line and writes what they produce.

Calibration (SPEC section 2 thresholds, 25-minute horizon, default data): about 75% NORMAL,
18% WARNING, 7% CRITICAL; transfer times around 190-250 s in normal operation.
Deterministic per seed: line i draws everything from numpy Generator([seed, i]).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from amhs_assets.simulate.observe import observe_line
from amhs_assets.simulate.process import (
    DAY,
    WARMUP_MIN,
    build_clock,
    draw_line_params,
    exogenous_inputs,
    run_queue,
)

from amhs_assets.simulate import (  # noqa: F401 (re-exported: the simulator's defaults)
    DEFAULT_DAYS,
    DEFAULT_LINES,
    DEFAULT_SEED,
    DEFAULT_START,
)


def _as_utc(start: pd.Timestamp | str) -> pd.Timestamp:
    """A start time as a tz-aware UTC timestamp (naive means UTC)."""
    ts = pd.Timestamp(start)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def simulate_lines(line_ids: Sequence[str], start: pd.Timestamp, days: float, seed: int,
                   drift_day: float | None = None, progress: bool = False
                   ) -> dict[str, pd.DataFrame]:
    """Simulate lines minute by minute: one DataFrame of the 32 contract columns per line."""
    start = _as_utc(start)
    n = int(round(days * DAY)) + WARMUP_MIN
    clock = build_clock(start, n)
    rngs = [np.random.default_rng([seed, i]) for i in range(len(line_ids))]
    params = [draw_line_params(r) for r in rngs]
    exo = [exogenous_inputs(p, clock, r, drift_day) for p, r in zip(params, rngs)]
    state = run_queue(exo, progress)
    frames = {}
    for i, line_id in enumerate(line_ids):
        line_state = {k: v[:, i].copy() for k, v in state.items()}
        frames[line_id] = observe_line(line_id, params[i], exo[i], line_state, start, rngs[i])
        exo[i] = {}  # a year of inputs is ~100 MB per line: free it as soon as it is observed
    return frames


def line_names(count: int) -> list[str]:
    """Line ids: 'OHT-A', 'OHT-B', ... up to 26 lines, else 'LINE01', 'LINE02', ..."""
    if count <= 26:
        return [f"OHT-{c}" for c in string.ascii_uppercase[:count]]
    return [f"LINE{i + 1:02d}" for i in range(count)]


def write_frame_by_day(frame: pd.DataFrame, out_dir: Path, timezone: str | None = None
                       ) -> list[Path]:
    """Write one line's frame as one CSV per day: out_dir/<line>/<line>_<YYYY-MM-DD>.csv, days
    in UTC, or in `timezone` (a fab whose loggers rotate at local midnight)."""
    line_id = str(frame["line_id"].iat[0])
    folder = Path(out_dir) / line_id
    folder.mkdir(parents=True, exist_ok=True)
    utc = frame["timestamp"].dt.tz_convert(None).to_numpy().astype("datetime64[s]")
    text = frame.assign(timestamp=np.char.add(np.datetime_as_string(utc, unit="s"), "Z"))
    local = frame["timestamp"].dt.tz_convert(timezone).dt.tz_localize(None) if timezone else None
    day = (utc if local is None else local.to_numpy()).astype("datetime64[D]")
    days, first = np.unique(day, return_index=True)
    bounds = [*first[1:], len(frame)]
    paths = []
    for d, lo, hi in zip(days, first, bounds):
        path = folder / f"{line_id}_{d}.csv"
        text.iloc[lo:hi].to_csv(path, index=False, na_rep="")
        paths.append(path)
    return paths


def write_simulation(out_dir: Path, lines: int = DEFAULT_LINES, days: int = DEFAULT_DAYS,
                     seed: int = DEFAULT_SEED, drift_day: int | None = None,
                     start: str = DEFAULT_START, progress: bool = True) -> list[Path]:
    """Simulate `lines` lines for `days` days, write one CSV per line and day, return the paths."""
    frames = simulate_lines(line_names(lines), pd.Timestamp(start), days, seed, drift_day, progress)
    paths: list[Path] = []
    for frame in tqdm(frames.values(), disable=not progress, desc="writing", unit="line"):
        paths.extend(write_frame_by_day(frame, Path(out_dir)))
    return paths
