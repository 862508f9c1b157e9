"""One model for every horizon: rows stacked per horizon, the horizon itself an input feature.

A new horizon needs no new model: ``predict`` takes any horizon in minutes (trees interpolate
between the horizons they saw; a horizon outside them is clamped to the nearest one seen).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import xgboost as xgb

from amhs_assets.contract import REGRESSION_TARGETS
from amhs_assets.models.dataset import (
    N_CLASSES,
    ModelDataset,
    baseline,
    fallback_level,
    ordered,
    state_labels,
    state_weights,
    training_rows,
)
from amhs_assets.models.operating import AlarmConfig, HorizonPolicy, decide
from amhs_assets.models.splits import VAL
from amhs_assets.models.xgb import (
    BATCH_ROWS,
    REGRESSION_OBJECTIVE,
    Matrices,
    RowBatches,
    XgbConfig,
    fit_booster,
    predict_booster,
    served_regressors,
    validation_policy,
)
from amhs_assets.progress import Progress, advance

HORIZON_FEATURE = "horizon_min"


def with_horizon(X: np.ndarray, h: float) -> np.ndarray:
    """Feature rows with the horizon appended as the last column."""
    return np.hstack([X, np.full((len(X), 1), h, dtype=X.dtype)])


def _stacked_rows(ds: ModelDataset, rows: np.ndarray, share: float, seed: int
                  ) -> list[np.ndarray]:
    """Per horizon, the rows it contributes to the stack: a random `share` of `rows`
    (neighbouring minutes are nearly duplicates), so the stack need not cost len(horizons)
    times one horizon."""
    keep = np.random.default_rng(seed).random((len(ds.horizons), len(rows))) < share
    return [rows[k] for k in keep]


def _stacked_targets(ds: ModelDataset, parts: list[np.ndarray], name: str, base: np.ndarray
                     ) -> np.ndarray:
    """The stacked labels of one target (residuals for regressions, NaN where unknown)."""
    out = []
    for h, rows in zip(ds.horizons, parts):
        y = ds.target(name, h)[rows]
        out.append(state_labels(y) if name == "state" else y - base[rows])
    return np.concatenate(out)


@dataclass
class UnifiedModel:
    """Three regressors and one classifier over (features, horizon)."""

    regressors: dict[str, xgb.Booster]
    classifier: xgb.Booster
    fallback: float
    persistence_index: int
    horizons_seen: tuple[int, ...]
    feature_names: tuple[str, ...]
    policies: dict[int, HorizonPolicy] = field(default_factory=dict)
    early: dict[str, xgb.Booster] | None = None  # the regressors before the refit

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.horizons_seen

    def policy(self, h: int) -> HorizonPolicy | None:
        """The operating point of horizon h (that of the nearest horizon seen, for another)."""
        if not self.policies:
            return None
        return self.policies[min(self.policies, key=lambda seen: (abs(seen - h), seen))]

    def predict(self, X: np.ndarray, h: int, early: bool = False) -> dict[str, np.ndarray]:
        """min/max/avg, calibrated state probabilities, state and alarm at horizon h (minutes)."""
        hh = float(np.clip(h, min(self.horizons_seen), max(self.horizons_seen)))
        Xh = with_horizon(X, hh)
        base = baseline(X[:, self.persistence_index], self.fallback)
        regressors = self.early if early and self.early else self.regressors
        pred = {t: base + predict_booster(b, Xh) for t, b in regressors.items()}
        proba = predict_booster(self.classifier, Xh).reshape(len(X), N_CLASSES)
        return decide(ordered(pred) | {"proba": proba}, self.policy(h))


def _stacked_batches(ds: ModelDataset, parts: list[np.ndarray]) -> RowBatches:
    """Every horizon's rows with the horizon as a feature, fed in batches (never stacked)."""
    return RowBatches([functools.partial(_with_horizon_rows, ds.X, chunk, h)
                       for h, rows in zip(ds.horizons, parts)
                       for chunk in np.array_split(rows, max(1, -(-len(rows) // BATCH_ROWS)))])


def _with_horizon_rows(X: np.ndarray, rows: np.ndarray, h: int) -> np.ndarray:
    return with_horizon(X[rows], h)


def unified_steps(alarms: AlarmConfig) -> int:
    """The boosters fit_unified_model reports: 4, and 3 more with a refit."""
    return 7 if alarms.refit else 4


def fit_unified_model(ds: ModelDataset, config: XgbConfig, row_share: float = 0.4,
                      progress: Progress | None = None, alarms: AlarmConfig | None = None
                      ) -> UnifiedModel:
    """Fit the unified model on every horizon's training rows, early-stopped on validation;
    choose each horizon's operating point on validation; refit the regressors on training +
    validation rows with the chosen rounds (when alarms.refit)."""
    alarms = alarms or AlarmConfig()
    tr = _stacked_rows(ds, training_rows(ds, config.train_stride), row_share, config.seed)
    va = _stacked_rows(ds, np.flatnonzero(ds.mask(VAL)), row_share, config.seed + 1)
    matrices = Matrices.build(_stacked_batches(ds, tr), _stacked_batches(ds, va), config)
    fallback = fallback_level(ds)
    base = baseline(ds.persistence, fallback)
    regressors = {}
    for name in REGRESSION_TARGETS:
        regressors[name] = fit_booster(config, REGRESSION_OBJECTIVE, matrices,
                                       _stacked_targets(ds, tr, name, base),
                                       _stacked_targets(ds, va, name, base))
        advance(progress, note=name)
    y_tr, y_va = (_stacked_targets(ds, parts, "state", base) for parts in (tr, va))
    classifier = fit_booster(
        config, "multi:softprob", matrices, y_tr, y_va,
        weight=state_weights(y_tr, config.class_weight_power),
        weight_val=state_weights(y_va, config.class_weight_power),
    )
    advance(progress, note="state")
    model = UnifiedModel(regressors, classifier, fallback, ds.persistence_index,
                         tuple(ds.horizons), (*ds.feature_names, HORIZON_FEATURE))
    X_val = ds.X[ds.mask(VAL)]
    for h in ds.horizons:
        proba = predict_booster(classifier, with_horizon(X_val, h)).reshape(len(X_val), N_CLASSES)
        model.policies[h] = validation_policy(ds, h, proba, alarms)
    if alarms.refit:
        model.early = regressors
        model.regressors = served_regressors(_refit(ds, config, tr, va, base, regressors,
                                                    progress), regressors, alarms.refit_weight)
    return model


def _refit(ds: ModelDataset, config: XgbConfig, tr: list[np.ndarray], va: list[np.ndarray],
           base: np.ndarray, early: dict[str, xgb.Booster], progress: Progress | None
           ) -> dict[str, xgb.Booster]:
    """The regressors again on the stacked training + validation rows, with the early-stopped
    number of rounds."""
    both = [np.concatenate([a, b]) for a, b in zip(tr, va)]
    matrices = Matrices.build(_stacked_batches(ds, both), _stacked_batches(ds, va), config)
    out = {}
    for name, booster in early.items():
        rounds = int(booster.best_iteration) + 1
        out[name] = fit_booster(config, REGRESSION_OBJECTIVE, matrices,
                                _stacked_targets(ds, both, name, base),
                                _stacked_targets(ds, va, name, base), rounds=rounds)
        advance(progress, note=f"{name}: refit with {rounds} trees")
    return out
