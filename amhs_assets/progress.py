"""Progress of the steps that take more than a few seconds: done of total, rate and ETA, written
as log lines (the Dagster log, through the asset's logger) and, in a terminal that asked for them
(`amhs run`), as tqdm bars. No Dagster here: the assets hand over their log function."""

from __future__ import annotations

import sys
import time
from typing import Callable

from tqdm import tqdm

_BARS = {"on": False}


def show_bars(on: bool = True) -> None:
    """Draw progress bars on stderr from now on (`amhs run` turns them on in a terminal)."""
    _BARS["on"] = on


def _duration(seconds: float) -> str:
    """A short duration: 42 s, 3 min 5 s, 1 h 12 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class Progress:
    """Counts work done of a known total; logs a line at most every `every_s` seconds and at
    the end, and moves a bar when bars are on. A context manager: the bar closes with it."""

    def __init__(self, what: str, total: int, unit: str,
                 log: Callable[[str], None] | None = None, every_s: float = 10.0):
        self.what, self.total, self.unit, self.log, self.every_s = what, total, unit, log, every_s
        self.done = 0
        self.started = self.logged = time.perf_counter()
        self.bar = (tqdm(total=total, desc=what, unit=f" {unit}", leave=False, file=sys.stderr,
                         dynamic_ncols=True) if _BARS["on"] and total > 0 else None)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    @property
    def rate(self) -> float:
        """Units per second so far."""
        return self.done / max(time.perf_counter() - self.started, 1e-9)

    def line(self, note: str = "") -> str:
        """'<what>: 2/3 horizons (67 %), 0.11 horizons/s, ETA 9 s[, note]'."""
        share = self.done / self.total if self.total else 1.0
        eta = (self.total - self.done) / self.rate if self.done else float("nan")
        when = "done in " + _duration(time.perf_counter() - self.started) if self.done >= self.total \
            else ("ETA " + _duration(eta) if eta == eta else "ETA unknown")
        extra = f", {note}" if note else ""
        rate = f"{self.rate:,.0f}" if self.rate >= 100 else f"{self.rate:.3g}"
        return (f"{self.what}: {self.done:,}/{self.total:,} {self.unit} ({share:.0%}), "
                f"{rate} {self.unit}/s, {when}{extra}")

    def advance(self, n: int = 1, note: str = "") -> None:
        """n more units done."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        now = time.perf_counter()
        if self.log and (self.done >= self.total or now - self.logged >= self.every_s):
            self.logged = now
            self.log(self.line(note))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def advance(progress: Progress | None, n: int = 1, note: str = "") -> None:
    """progress.advance, for functions whose progress is optional."""
    if progress is not None:
        progress.advance(n, note)
