"""The HTML kit the evaluation report and the monitoring dashboard share: the colour-blind-safe
palette, escaping, numbers, notes and times in the fab's timezone."""

from __future__ import annotations

import html
import math
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

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
