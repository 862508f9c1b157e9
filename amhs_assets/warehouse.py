"""The warehouse: the data assets (cleaned logs, features, targets) as Parquet datasets that any
tool reads without this project (pandas, polars, DuckDB, Spark):

    $AMHS_DATA_DIR/warehouse/<asset key>/date=YYYY-MM-DD/part-0.parquet

one folder per fab-local day (hive layout), rows sorted by line and minute, column types kept
(timestamps UTC, features float32, state codes int8, flags bool). A day's file is replaced
atomically: a reader sees the old day or the new one, never half of either. No Dagster here.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

DAY = "date"
PART = "part-0.parquet"
KEYS = ["line_id", "timestamp"]


def local_days(timestamps: pd.Series, timezone: str) -> pd.Series:
    """The fab-local day (YYYY-MM-DD) of each UTC timestamp; NaT stays missing. Each distinct
    day is formatted once (strftime per row cost 7 us, most of a day's cleaning)."""
    local = timestamps.dt.tz_convert(timezone).dt.tz_localize(None).to_numpy()
    missing = pd.isna(local)
    days, inverse = np.unique(local.astype("datetime64[D]"), return_inverse=True)
    text = np.datetime_as_string(days, unit="D").astype(object)[inverse.reshape(-1)]
    text[missing] = None
    return pd.Series(text, index=timestamps.index, dtype=object)


def day_folder(root: Path, day: str) -> Path:
    return Path(root) / f"{DAY}={day}"


def stored_days(root: Path) -> list[str]:
    """The days the dataset holds, oldest first."""
    if not Path(root).is_dir():
        return []
    return sorted(p.name.split("=", 1)[1] for p in Path(root).glob(f"{DAY}=*")
                  if (p / PART).is_file())


def window_days(root: Path, days: float, lookback_days: int = 1) -> list[str]:
    """The stored days that hold the newest `days` days of data and the lookback before them
    (a day more: features and usability look 120 minutes back); every day when days <= 0."""
    stored = stored_days(root)
    if days <= 0:
        return stored
    return stored[-(math.ceil(days) + 1 + lookback_days):]


def days_since(root: Path, start: pd.Timestamp, timezone: str, lookback_days: int = 1
               ) -> list[str]:
    """The stored days from the fab-local day of `start` (less the lookback) to the newest: a
    contiguous stretch, as the features' lookback and the one-minute grid need."""
    first = (pd.Timestamp(start) - pd.Timedelta(days=lookback_days)).tz_convert(timezone)
    return [d for d in stored_days(root) if d >= first.strftime("%Y-%m-%d")]


def write_day(frame: pd.DataFrame, root: Path, day: str) -> Path:
    """Write one day's rows (atomically, replacing the day); no rows removes the day."""
    folder = day_folder(Path(root), day)
    if frame.empty:
        shutil.rmtree(folder, ignore_errors=True)
        return folder / PART
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    tmp = folder / f".{PART}.{os.getpid()}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(folder / PART)
    return folder / PART


def write_days(frame: pd.DataFrame, root: Path, timezone: str, replace_all: bool = False
               ) -> list[str]:
    """Write each fab-local day of the frame to its folder (atomically, replacing that day);
    with replace_all, days the frame does not hold are removed. Returns the days written."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    days = local_days(frame["timestamp"], timezone)
    written = []
    for day, rows in frame.groupby(days.to_numpy(), sort=True):
        write_day(rows, root, str(day))
        written.append(str(day))
    if replace_all:
        for day in set(stored_days(root)) - set(written):
            shutil.rmtree(day_folder(root, day))
    return written


def read_days(root: Path, days: list[str] | None = None, columns: list[str] | None = None,
              missing_ok: bool = False) -> pd.DataFrame:
    """The dataset (or some days of it, some columns) as one frame sorted by line and minute;
    with missing_ok, no stored day is an empty frame instead of an error."""
    root = Path(root)
    stored = stored_days(root)
    known = set(stored)
    chosen = stored if days is None else [d for d in days if d in known]
    if not chosen and missing_ok:
        return pd.DataFrame(columns=columns or [])
    if not chosen:
        raise FileNotFoundError(f"{root}: no day of the dataset is stored"
                                + (f" among {days}" if days is not None else ""))
    files = [str(day_folder(root, d) / PART) for d in chosen]
    table = ds.dataset(files, format="parquet").to_table(columns=columns)
    frame = table.to_pandas()
    if set(KEYS) <= set(frame.columns):
        frame = frame.sort_values(KEYS, kind="stable")
    return frame.reset_index(drop=True)


class DayFrames(Mapping):
    """The frames of several days, each computed when it is asked for: a step over many days
    holds one day in memory at a time. `stats` gathers what the computation reports."""

    def __init__(self, days: list[str], compute: Callable[[str], pd.DataFrame]):
        self.days, self.compute, self.stats = list(days), compute, {}

    def __getitem__(self, day: str) -> pd.DataFrame:
        if day not in self.days:
            raise KeyError(day)
        return self.compute(day)

    def __contains__(self, day: object) -> bool:  # Mapping's would compute the day
        return day in self.days

    def __iter__(self) -> Iterator[str]:
        return iter(self.days)

    def __len__(self) -> int:
        return len(self.days)


class DayReader:
    """Days of a stored dataset, read when asked for: what a step gets for a warehouse input."""

    def __init__(self, root: Path, days: list[str]):
        self.root, self.days = Path(root), list(days)

    def read(self, days: list[str] | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Some of the days (all by default); days not stored are skipped, none is empty."""
        return read_days(self.root, self.days if days is None else days, columns, missing_ok=True)
