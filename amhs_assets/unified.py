"""One model for every horizon: rows stacked per horizon, the horizon itself an input feature.

A new horizon needs no new model: ``predict`` takes any horizon in minutes (trees interpolate
between the horizons they saw; a horizon outside them is clamped to the nearest one seen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from amhs_assets.contract import REGRESSION_TARGETS
from amhs_assets.modeling import (
    N_CLASSES,
    REGRESSION_OBJECTIVE,
    TRAIN,
    VAL,
    ModelDataset,
    XgbConfig,
    _predict,
    baseline,
    class_weights,
    fit_booster,
    ordered,
)

HORIZON_FEATURE = "horizon_min"


def with_horizon(X: np.ndarray, h: float) -> np.ndarray:
    """Feature rows with the horizon appended as the last column."""
    return np.hstack([X, np.full((len(X), 1), h, dtype=X.dtype)])


def _stacked(ds: ModelDataset, rows: np.ndarray, name: str, base: np.ndarray, share: float,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows x horizons stacked: features + horizon, and the target (residual for regressions).

    Each horizon keeps a random `share` of the rows (neighbouring minutes are nearly
    duplicates), so the stack need not be len(horizons) times the cost of one horizon."""
    xs, ys = [], []
    keep = np.random.default_rng(seed).random((len(ds.horizons), len(rows))) < share
    for i, h in enumerate(ds.horizons):
        y = ds.target(name, h).astype(float)
        y = y - base if name != "state" else np.where(y < 0, np.nan, y)
        ok = rows & ~np.isnan(y) & keep[i]
        xs.append(with_horizon(ds.X[ok], h))
        ys.append(y[ok])
    return np.vstack(xs), np.concatenate(ys)


@dataclass
class UnifiedModel:
    """Three regressors and one classifier over (features, horizon)."""

    regressors: dict[str, xgb.Booster]
    classifier: xgb.Booster
    fallback: float
    persistence_index: int
    horizons_seen: tuple[int, ...]
    feature_names: tuple[str, ...]

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.horizons_seen

    def predict(self, X: np.ndarray, h: int) -> dict[str, np.ndarray]:
        """min/max/avg and state probabilities at horizon h (minutes)."""
        h = float(np.clip(h, min(self.horizons_seen), max(self.horizons_seen)))
        Xh = with_horizon(X, h)
        base = baseline(X[:, self.persistence_index], self.fallback)
        pred = {t: base + _predict(b, Xh) for t, b in self.regressors.items()}
        return ordered(pred) | {"proba": _predict(self.classifier, Xh).reshape(len(X), N_CLASSES)}


def fit_unified_model(ds: ModelDataset, config: XgbConfig, row_share: float = 0.5
                      ) -> UnifiedModel:
    """Fit the unified model on every horizon's training rows, early-stopped on validation."""
    tr, va = ds.mask(TRAIN), ds.mask(VAL)
    stack = lambda rows, name: _stacked(ds, rows, name, base, row_share, config.seed)  # noqa: E731
    fallback = float(np.nanmedian(ds.target("avg", ds.horizons[0])[tr]))
    base = baseline(ds.persistence, fallback)
    regressors = {}
    for name in REGRESSION_TARGETS:
        X_tr, y_tr = stack(tr, name)
        X_va, y_va = stack(va, name)
        regressors[name] = fit_booster(config, REGRESSION_OBJECTIVE, X_tr, y_tr, X_va, y_va)
    X_tr, y_tr = stack(tr, "state")
    X_va, y_va = stack(va, "state")
    y_tr, y_va = y_tr.astype(int), y_va.astype(int)
    classifier = fit_booster(
        config, "multi:softprob", X_tr, y_tr, X_va, y_va,
        weight=class_weights(y_tr, config.class_weight_power),
        weight_val=class_weights(y_va, config.class_weight_power),
    )
    return UnifiedModel(regressors, classifier, fallback, ds.persistence_index, tuple(ds.horizons),
                        (*ds.feature_names, HORIZON_FEATURE))
