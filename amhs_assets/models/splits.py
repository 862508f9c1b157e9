"""Chronological train/validation/test splits per line, with purge gaps (SPEC section 4).

Each line's time span is cut by time, not by row count: the test set is the last
``test_fraction`` of the span, validation the ``val_fraction`` before it, training the rest.
Between two sets lies a purge gap of at least the largest horizon, so no target window
(minutes t+1..t+h) of one set reaches into the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from amhs_assets.config import setting

TRAIN, VAL, TEST, PURGED = "train", "val", "test", "purged"


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of each line's time span and the purge gap in minutes."""

    val_fraction: float = setting(0.2, "share of each line's span for validation")
    test_fraction: float = setting(0.2, "share of each line's span for test (the newest)")
    gap_min: int = setting(25, "purge gap between splits, minutes (the largest horizon)")
    train_window_days: float = setting(
        28.0, "models learn from the newest this many days of data, split as above (0 = all "
              "history; 28 keeps training cost and memory flat as the history grows); the "
              "version's train_window tags record the exact window")

    def __post_init__(self) -> None:
        if not (0 < self.val_fraction < 1 and 0 < self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be in (0, 1) and sum below 1")
        if self.gap_min < 0:
            raise ValueError("gap_min must be >= 0")


def split_boundaries(line_ids: pd.Series, timestamps: pd.Series, config: SplitConfig
                     ) -> pd.DataFrame:
    """Per line: first/last minute and the start of validation and test (and their gap)."""
    frame = pd.DataFrame({"line_id": line_ids.to_numpy(), "timestamp": timestamps.to_numpy()})
    span = frame.groupby("line_id", sort=True)["timestamp"].agg(["min", "max"])
    length = span["max"] - span["min"]
    gap = pd.Timedelta(minutes=config.gap_min)
    out = pd.DataFrame({
        "line_id": span.index,
        "start": span["min"].to_numpy(),
        "end": span["max"].to_numpy(),
    })
    test_start = span["max"] - length * config.test_fraction
    val_start = test_start - length * config.val_fraction
    out["val_start"] = val_start.dt.ceil("min").to_numpy()
    out["test_start"] = test_start.dt.ceil("min").to_numpy()
    out["train_end"] = out["val_start"] - gap  # exclusive
    out["val_end"] = out["test_start"] - gap  # exclusive
    return out


def assign_splits(line_ids: pd.Series, timestamps: pd.Series, config: SplitConfig
                  ) -> tuple[np.ndarray, pd.DataFrame]:
    """The split of every row (TRAIN/VAL/TEST/PURGED as strings) and the per-line boundaries."""
    bounds = split_boundaries(line_ids, timestamps, config)
    per_row = bounds.set_index("line_id").loc[line_ids.to_numpy()]
    t = timestamps.to_numpy()
    split = np.full(len(t), PURGED, dtype=object)
    split[t < per_row["train_end"].to_numpy()] = TRAIN
    split[(t >= per_row["val_start"].to_numpy()) & (t < per_row["val_end"].to_numpy())] = VAL
    split[t >= per_row["test_start"].to_numpy()] = TEST
    return split, bounds
