"""The modelling dataset: features and targets joined, unusable rows dropped, each row labelled
train / validation / test, with the persistence baseline; helpers every model kind shares."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from amhs_assets.contract import (
    CRITICAL_THRESHOLD_S,
    HORIZONS,
    MAX_FILL_GAP_MIN,
    NUMERIC_COLUMNS,
    RAW_COLUMNS,
    STATES,
    TARGET_COLUMN,
    WARNING_THRESHOLD_S,
)
from amhs_assets.features.compute import build_features, feature_rows_usable
from amhs_assets.features.targets import build_targets
from amhs_assets.ingest.clean import regularize
from amhs_assets.models.splits import TEST, TRAIN, VAL, SplitConfig, assign_splits

N_CLASSES = len(STATES)


ALARMS_FEATURE = "alarms_major__value"


@dataclass
class ModelDataset:
    """Usable rows of every split: features, targets, baselines and split labels."""

    feature_names: tuple[str, ...]
    X: np.ndarray  # float32 (rows, features)
    line_id: np.ndarray
    timestamp: pd.DatetimeIndex
    split: np.ndarray  # TRAIN / VAL / TEST
    targets: pd.DataFrame  # f"{target}_{h}" columns, state as int codes (-1 unavailable)
    persistence: np.ndarray  # last known value of the target column at t
    alarms_now: np.ndarray  # alarms_major at t
    persistence_index: int  # column of X holding the persistence value
    alarms_index: int  # column of X holding alarms_major at t
    horizons: tuple[int, ...]
    boundaries: pd.DataFrame
    thresholds: dict = field(default_factory=dict)  # warning_s, critical_s, target_column

    def mask(self, split: str) -> np.ndarray:
        return self.split == split

    def target(self, name: str, h: int) -> np.ndarray:
        return self.targets[f"{name}_{h}"].to_numpy()


def newest_days(timestamps: pd.Series, days: float) -> np.ndarray:
    """Rows within the newest `days` days before the newest timestamp (of every line)."""
    return (timestamps > timestamps.max() - pd.Timedelta(days=days)).to_numpy()


def build_dataset(features: pd.DataFrame, targets: pd.DataFrame, usable: np.ndarray,
                  horizons: tuple[int, ...], config: SplitConfig, thresholds: dict
                  ) -> ModelDataset:
    """Join features and targets, keep the newest config.train_window_days (if set), drop
    unusable rows, and label each row's split."""
    if len(features) != len(targets) or not (
        features["timestamp"].to_numpy() == targets["timestamp"].to_numpy()
    ).all():
        raise ValueError("features and targets must hold the same rows in the same order")
    if config.train_window_days > 0:
        inside = newest_days(features["timestamp"], config.train_window_days)
        features, targets, usable = features[inside], targets[inside], np.asarray(usable)[inside]
    split, bounds = assign_splits(features["line_id"], features["timestamp"], config)
    keep = np.asarray(usable, bool) & (split != "purged")
    names = tuple(c for c in features.columns if c not in ("line_id", "timestamp"))
    kept = features.loc[keep]
    column = thresholds.get("target_column", "transfer_time_avg_s")
    base = f"{column}__last" if f"{column}__last" in kept else f"{column}__value"
    return ModelDataset(
        feature_names=names,
        X=kept[list(names)].to_numpy(dtype=np.float32),
        line_id=kept["line_id"].to_numpy(),
        timestamp=pd.DatetimeIndex(kept["timestamp"]),
        split=split[keep],
        targets=targets.loc[keep].drop(columns=["line_id", "timestamp"]).reset_index(drop=True),
        persistence=kept[base].to_numpy(dtype=np.float64),
        alarms_now=kept[ALARMS_FEATURE].to_numpy(dtype=np.float64),
        persistence_index=names.index(base),
        alarms_index=names.index(ALARMS_FEATURE),
        horizons=tuple(horizons),
        boundaries=bounds,
        thresholds=dict(thresholds),
    )


def class_weights(y: np.ndarray, power: float) -> np.ndarray:
    """Per-row weights (n / (k * count_c)) ** power: rare states count more."""
    counts = np.bincount(y, minlength=N_CLASSES).astype(float)
    per_class = np.where(counts > 0, len(y) / (N_CLASSES * np.maximum(counts, 1)), 0.0) ** power
    return per_class[y]


def state_labels(state: np.ndarray) -> np.ndarray:
    """State codes as float labels, NaN where the state is unavailable (-1)."""
    return np.where(state >= 0, state, np.nan).astype(float)


def state_weights(labels: np.ndarray, power: float) -> np.ndarray:
    """Class weights of the labelled rows (0 where the state is unavailable)."""
    known = ~np.isnan(labels)
    out = np.zeros(len(labels))
    out[known] = class_weights(labels[known].astype(int), power)
    return out


def training_rows(ds: "ModelDataset", stride: int) -> np.ndarray:
    """Indices of every stride-th training row: neighbouring minutes are near duplicates."""
    return np.flatnonzero(ds.mask(TRAIN))[::max(1, stride)]


def baseline(persistence: np.ndarray, fallback: float) -> np.ndarray:
    """Persistence with unknown values replaced by a fallback level."""
    return np.where(np.isnan(persistence), fallback, persistence)


def ordered(pred: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Enforce min <= avg <= max (and no negative times) on regression predictions."""
    avg = np.maximum(pred["avg"], 0.0)
    return pred | {"avg": avg, "min": np.clip(pred["min"], 0.0, avg),
                   "max": np.maximum(pred["max"], avg)}


def fallback_level(ds: ModelDataset, h: int | None = None) -> float:
    """The level used where persistence is unknown: the training rows' median avg at horizon h
    (the first horizon by default)."""
    h = ds.horizons[0] if h is None else h
    return float(np.nanmedian(ds.target("avg", h)[ds.mask(TRAIN)]))


def split_summary(ds: ModelDataset) -> dict[str, dict]:
    """Rows and time range of each split, for reports."""
    out = {}
    for name in (TRAIN, VAL, TEST):
        m = ds.mask(name)
        ts = ds.timestamp[m]
        out[name] = {"rows": int(m.sum()),
                     "start": ts.min().isoformat() if m.any() else None,
                     "end": ts.max().isoformat() if m.any() else None}
    return out


def dataset_from_raw(raw: pd.DataFrame, horizons: tuple[int, ...] = HORIZONS,
                     thresholds: dict | None = None, gap_min: int | None = None
                     ) -> tuple[pd.DataFrame, ModelDataset]:
    """The cleaned grid and the modelling dataset of raw rows already known to be valid
    (simulated data in tests and benchmarks): no quarantine, no file bookkeeping."""
    typed = raw.astype({c: "float64" for c in NUMERIC_COLUMNS})[list(RAW_COLUMNS)]
    cleaned = regularize(typed, MAX_FILL_GAP_MIN)
    thresholds = thresholds or {"warning_s": WARNING_THRESHOLD_S,
                                "critical_s": CRITICAL_THRESHOLD_S, "target_column": TARGET_COLUMN}
    split = SplitConfig(gap_min=max(horizons) if gap_min is None else gap_min)
    ds = build_dataset(build_features(cleaned),
                       build_targets(cleaned, horizons, thresholds["target_column"],
                                     thresholds["warning_s"], thresholds["critical_s"]),
                       feature_rows_usable(cleaned), horizons, split, thresholds)
    return cleaned, ds
