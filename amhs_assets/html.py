"""The HTML kit the reports share (dashboard, evaluation, drift): the colour-blind-safe palette,
escaping, numbers, notes, times in the fab's timezone, and the one plotly.js of the reports
folder.

Every page of a reports folder loads the same plotly.js from `assets/` beside it, by a relative
path, so a page is a few hundred KB instead of 4.6 MB more and still opens from disk (file://);
the API serves the same file under /reports/assets/ with a year's caching. The file name carries
plotly's version: a page always loads the bundle it was drawn with, and the cache never goes
stale."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import plotly
from plotly.offline import get_plotlyjs

from amhs_assets.documents import write_bytes, write_text

# Okabe-Ito: distinguishable with every common colour-vision deficiency
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}


def esc(value: Any) -> str:
    """Text made safe for HTML."""
    return html.escape(str(value))


def num(value: Any) -> float | None:
    """A finite float, or None for None, NaN and non-numbers."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def note(text: str) -> str:
    """A visible note standing in for a piece that could not be drawn."""
    return f'<p class="note">{esc(text)}</p>'


def local_time(value: Any, timezone: str) -> str:
    """An ISO timestamp shown in the given timezone; '—' when absent."""
    if value is None or value == "":
        return "—"
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return esc(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return stamp.tz_convert(timezone).strftime("%Y-%m-%d %H:%M")


def check_timezone(timezone: str) -> None:
    """Fail early, and clearly, on a timezone name that is not an IANA zone."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown timezone {timezone!r}: use an IANA name such as "
                         "'Asia/Taipei'") from error


# --- the JavaScript the pages of a reports folder share ------------------------------------------
ASSETS_DIR = "assets"  # beside the pages; the API serves it at /reports/assets/
PLOTLY_JS = f"plotly-{plotly.__version__}.min.js"


NO_FAVICON = '<link rel="icon" href="data:,">'  # served pages ask for none (no 404 to log)


def plotly_script() -> str:
    """The script tag that loads the reports folder's shared plotly.js (relative to the page)."""
    return f'<script src="{ASSETS_DIR}/{PLOTLY_JS}"></script>'


def write_asset(reports: Path, name: str, data: bytes) -> Path:
    """A shared file in reports/assets/, written atomically when absent or different (so pages
    loading it never see half a file), left alone when it is already there."""
    path = Path(reports) / ASSETS_DIR / name
    if not (path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data):
        write_bytes(path, data)
    return path


def write_page(path: Path, page: str) -> Path:
    """Write a report page atomically, after the shared plotly.js it loads is in place."""
    write_asset(Path(path).parent, PLOTLY_JS, get_plotlyjs().encode("utf-8"))
    return write_text(Path(path), page)


# --- long time series, light ----------------------------------------------------------------------
GRID_FILL = 1.5  # a grid at most this much longer than the rows (else explicit x)


def on_grid(x: pd.Series, values: pd.DataFrame, digits: int = 0) -> tuple[dict, dict[str, list]]:
    """A time series for plotly without a date string per point: {"x0", "dx"} of its regular
    grid (dx in ms, gaps as nulls) and each column rounded to `digits`, as plain lists. A series
    off any grid (repeated or uneven times) keeps its x. A day of minutes: ~6 KB a trace, not ~40."""
    x = pd.Series(pd.to_datetime(x)).reset_index(drop=True)
    values = values.reset_index(drop=True).round(digits)
    steps = x.diff().dropna()
    step = steps.min() if len(steps) else None
    regular = (step is not None and step > pd.Timedelta(0) and x.is_monotonic_increasing
               and bool((steps % step == pd.Timedelta(0)).all())
               and (x.iloc[-1] - x.iloc[0]) / step + 1 <= GRID_FILL * len(x))
    if not regular:
        return {"x": x}, {c: _plain(values[c], digits) for c in values}
    slots = ((x - x.iloc[0]) / step).round().astype(int)
    grid = values.set_index(slots).reindex(range(int(slots.iloc[-1]) + 1))
    spec = {"x0": x.iloc[0].strftime("%Y-%m-%d %H:%M:%S"), "dx": step / pd.Timedelta(milliseconds=1)}
    return spec, {c: _plain(grid[c], digits) for c in grid}


def _plain(column: pd.Series, digits: int) -> list:
    """Numbers as short JSON: ints when no decimals are kept, None for gaps."""
    kind = int if digits <= 0 else float
    return [None if v != v else kind(v) for v in column.to_numpy(dtype=float)]
