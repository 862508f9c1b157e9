"""Training data and the per-horizon XGBoost models (the original V8 design), no Dagster.

Regressors learn the *change* from the persistence value (the last known target value), not
the level: tree models cannot extrapolate, and a regime with higher transfer times (drift)
then shifts the baseline instead of pushing predictions off the edge of the trees.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xgboost as xgb

from amhs_assets.contract import (
    CRITICAL_THRESHOLD_S,
    HORIZONS,
    MAX_FILL_GAP_MIN,
    NUMERIC_COLUMNS,
    RAW_COLUMNS,
    REGRESSION_TARGETS,
    STATES,
    TARGET_COLUMN,
    WARNING_THRESHOLD_S,
)
from amhs_assets.models.splits import TEST, TRAIN, VAL, SplitConfig, assign_splits

N_CLASSES = len(STATES)
UNAVAILABLE = -1
# The figures that matter are MAEs and transfer times are heavy-tailed: fit the median.
REGRESSION_OBJECTIVE = "reg:absoluteerror"
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


def build_dataset(features: pd.DataFrame, targets: pd.DataFrame, usable: np.ndarray,
                  horizons: tuple[int, ...], config: SplitConfig, thresholds: dict
                  ) -> ModelDataset:
    """Join features and targets, drop unusable rows, and label each row's split."""
    if len(features) != len(targets) or not (
        features["timestamp"].to_numpy() == targets["timestamp"].to_numpy()
    ).all():
        raise ValueError("features and targets must hold the same rows in the same order")
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


def persistence_state(persistence: np.ndarray, alarms_now: np.ndarray, thresholds: dict
                      ) -> np.ndarray:
    """The state the current minute would have if nothing changed (the baseline's state)."""
    state = np.zeros(len(persistence), dtype=np.int8)
    state[persistence >= thresholds["warning_s"]] = 1
    state[(persistence >= thresholds["critical_s"]) | (alarms_now > 0)] = 2
    return state


@functools.cache
def detect_device() -> str:
    """'cuda' when XGBoost was built with CUDA and an NVIDIA GPU answers, else 'cpu'."""
    if not xgb.build_info().get("USE_CUDA") or shutil.which("nvidia-smi") is None:
        return "cpu"
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "cpu"
    return "cuda" if out.returncode == 0 and "GPU" in out.stdout else "cpu"


@dataclass(frozen=True)
class XgbConfig:
    """Boosting settings shared by every XGBoost model."""

    max_depth: int = 6
    learning_rate: float = 0.08
    subsample: float = 0.8
    colsample_bytree: float = 0.5
    min_child_weight: float = 5.0
    max_bin: int = 64
    num_boost_round: int = 400
    early_stopping_rounds: int = 20
    class_weight_power: float = 0.5  # 0: none, 1: fully balanced classes
    train_stride: int = 2  # fit on every n-th training minute (neighbours are near duplicates)
    device: str = "auto"
    seed: int = 42

    def params(self) -> dict:
        device = detect_device() if self.device == "auto" else self.device
        return {
            "tree_method": "hist", "device": device, "max_depth": self.max_depth,
            "eta": self.learning_rate, "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree, "min_child_weight": self.min_child_weight,
            "max_bin": self.max_bin, "seed": self.seed, "nthread": os.cpu_count() or 1,
        }


def class_weights(y: np.ndarray, power: float) -> np.ndarray:
    """Per-row weights (n / (k * count_c)) ** power: rare states count more."""
    counts = np.bincount(y, minlength=N_CLASSES).astype(float)
    per_class = np.where(counts > 0, len(y) / (N_CLASSES * np.maximum(counts, 1)), 0.0) ** power
    return per_class[y]


@dataclass
class Matrices:
    """Training and validation rows quantised once and shared by every booster fitted on them.

    Quantising 50k rows x 222 features costs about as much as 20 boosting rounds; the min, max,
    avg and state models of a horizon read the same rows and differ only in labels and weights.
    A row without a label (NaN) gets weight 0 instead of being cut out of the matrix."""

    train: xgb.QuantileDMatrix
    val: xgb.QuantileDMatrix
    rows: tuple[np.ndarray, np.ndarray] | None = None  # dataset rows of train and val, if any

    @classmethod
    def build(cls, X_train: np.ndarray, X_val: np.ndarray, config: XgbConfig,
              rows: tuple[np.ndarray, np.ndarray] | None = None) -> "Matrices":
        threads = config.params()["nthread"]
        train = xgb.QuantileDMatrix(X_train, max_bin=config.max_bin, nthread=threads)
        val = xgb.QuantileDMatrix(X_val, ref=train, max_bin=config.max_bin, nthread=threads)
        return cls(train, val, rows)


def _label(matrix: xgb.DMatrix, y: np.ndarray, weight: np.ndarray | None) -> None:
    """Set labels and weights of a shared matrix; unlabelled (NaN) rows weigh nothing."""
    known = ~np.isnan(y)
    w = known.astype(np.float32) if weight is None else np.where(known, weight, 0.0)
    matrix.set_info(label=np.where(known, y, 0.0), weight=w)


def fit_booster(config: XgbConfig, objective: str, matrices: Matrices, y: np.ndarray,
                y_val: np.ndarray, weight: np.ndarray | None = None,
                weight_val: np.ndarray | None = None) -> xgb.Booster:
    """One XGBoost model with early stopping on the validation rows (NaN labels are ignored)."""
    params = config.params() | {"objective": objective}
    if objective == "multi:softprob":
        params |= {"num_class": N_CLASSES, "eval_metric": "mlogloss"}
    else:
        params |= {"eval_metric": "mae"}
    _label(matrices.train, y, weight)
    _label(matrices.val, y_val, weight_val)
    return xgb.train(params, matrices.train, num_boost_round=config.num_boost_round,
                     evals=[(matrices.val, "val")],
                     early_stopping_rounds=config.early_stopping_rounds, verbose_eval=False)


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


@dataclass
class HorizonModels:
    """One horizon's original design: XGBoost regressors for min/max/avg and a state classifier."""

    horizon: int
    regressors: dict[str, xgb.Booster]
    classifier: xgb.Booster
    fallback: float  # level used where persistence is unknown
    persistence_index: int
    feature_names: tuple[str, ...]
    best_iterations: dict[str, int]

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """min/max/avg in seconds and state probabilities (rows, 3) for feature rows X."""
        base = baseline(X[:, self.persistence_index], self.fallback)
        pred = {t: base + _predict(b, X) for t, b in self.regressors.items()}
        return ordered(pred) | {"proba": _predict(self.classifier, X).reshape(len(X), N_CLASSES)}

    def gain(self) -> np.ndarray:
        """Total gain of each feature over the four models."""
        gain = np.zeros(len(self.feature_names))
        for booster in (*self.regressors.values(), self.classifier):
            for key, value in booster.get_score(importance_type="total_gain").items():
                gain[int(key[1:])] += value  # unnamed features are keyed f0, f1, ...
        return gain


def _predict(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    """Predictions with the early-stopped number of trees (in place: no DMatrix per call)."""
    best = getattr(booster, "best_iteration", None)
    rng = (0, best + 1) if best is not None else (0, 0)
    return booster.inplace_predict(X, iteration_range=rng)


def fallback_level(ds: ModelDataset, h: int | None = None) -> float:
    """The level used where persistence is unknown: the training rows' median avg at horizon h
    (the first horizon by default)."""
    h = ds.horizons[0] if h is None else h
    return float(np.nanmedian(ds.target("avg", h)[ds.mask(TRAIN)]))


def shared_matrices(ds: ModelDataset, config: XgbConfig) -> Matrices:
    """The quantised training (strided) and validation rows every horizon's models share."""
    tr, va = training_rows(ds, config.train_stride), np.flatnonzero(ds.mask(VAL))
    return Matrices.build(ds.X[tr], ds.X[va], config, rows=(tr, va))


def fit_horizon_models(ds: ModelDataset, h: int, config: XgbConfig,
                       matrices: Matrices | None = None) -> HorizonModels:
    """Fit the four XGBoost models of one horizon on the training rows, early-stopped on val.

    `matrices` (shared_matrices of ds) may be shared across horizons; labels are taken from
    the dataset rows they were built from."""
    matrices = matrices or shared_matrices(ds, config)
    tr, va = matrices.rows
    fallback = fallback_level(ds, h)
    base = baseline(ds.persistence, fallback)
    regressors, best = {}, {}
    for name in REGRESSION_TARGETS:
        y = ds.target(name, h) - base
        regressors[name] = fit_booster(config, REGRESSION_OBJECTIVE, matrices, y[tr], y[va])
        best[name] = int(regressors[name].best_iteration)
    state = state_labels(ds.target("state", h))
    classifier = fit_booster(
        config, "multi:softprob", matrices, state[tr], state[va],
        weight=state_weights(state[tr], config.class_weight_power),
        weight_val=state_weights(state[va], config.class_weight_power),
    )
    best["state"] = int(classifier.best_iteration)
    return HorizonModels(h, regressors, classifier, fallback, ds.persistence_index,
                         ds.feature_names, best)


def fit_xgb_model(ds: ModelDataset, config: XgbConfig,
                  horizons: tuple[int, ...] | None = None) -> "XgbModel":
    """Every horizon's models, on one pair of quantised matrices."""
    matrices = shared_matrices(ds, config)
    return XgbModel({h: fit_horizon_models(ds, h, config, matrices)
                     for h in (horizons or ds.horizons)})


@dataclass
class XgbModel:
    """The original design across horizons: one HorizonModels per horizon."""

    horizon_models: dict[int, HorizonModels]

    @property
    def horizons(self) -> tuple[int, ...]:
        return tuple(sorted(self.horizon_models))

    def predict(self, X: np.ndarray, h: int) -> dict[str, np.ndarray]:
        return self.horizon_models[h].predict(X)


@dataclass
class PersistenceModel:
    """The baseline: the current value carried forward, and the state it implies now."""

    persistence_index: int
    alarms_index: int
    fallback: float
    thresholds: dict
    horizons: tuple[int, ...]

    @classmethod
    def from_dataset(cls, ds: ModelDataset) -> "PersistenceModel":
        fallback = fallback_level(ds)
        return cls(ds.persistence_index, ds.alarms_index, fallback, ds.thresholds, ds.horizons)

    def predict(self, X: np.ndarray, h: int) -> dict[str, np.ndarray]:
        value = baseline(X[:, self.persistence_index].astype(float), self.fallback)
        state = persistence_state(value, X[:, self.alarms_index], self.thresholds)
        return {"min": value, "max": value, "avg": value,
                "proba": np.eye(N_CLASSES)[state]}


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
    from amhs_assets.features.compute import build_features, build_targets, feature_rows_usable
    from amhs_assets.ingest.clean import regularize

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
