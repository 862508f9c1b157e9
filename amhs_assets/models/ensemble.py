"""A blend of XGBoost, scikit-learn's HistGradientBoosting and a neural network (MLP).

Per horizon and target, the blend weights are chosen on the validation rows only, over a grid
of the simplex (steps of 0.1): lowest MAE for min/max/avg, lowest log-loss for the state
probabilities. The XGBoost member is the per-horizon model itself, not a second copy.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor

from amhs_assets.config import setting
from amhs_assets.contract import REGRESSION_TARGETS
from amhs_assets.models.dataset import (
    N_CLASSES,
    ModelDataset,
    baseline,
    class_weights,
    fallback_level,
    ordered,
    training_rows,
)
from amhs_assets.models.operating import AlarmConfig, HorizonPolicy, decide
from amhs_assets.models.splits import TRAIN, VAL
from amhs_assets.models.xgb import HorizonModels, validation_policy
from amhs_assets.progress import Progress, advance

MEMBERS = ("xgb", "hgb", "mlp")
WEIGHT_GRID = np.array([w for w in itertools.product(np.arange(11), repeat=3) if sum(w) == 10]) / 10


@dataclass(frozen=True)
class EnsembleConfig:
    """Sizes of the scikit-learn members; rows are subsampled for the MLP to bound its time."""

    top_features: int = setting(64, "the members see the features XGBoost found most useful")
    hgb_max_iter: int = setting(150, "most iterations of the HistGradientBoosting members")
    hgb_learning_rate: float = setting(0.2, "learning rate of the HistGradientBoosting members")
    hgb_max_rows: int = setting(30_000, "most training rows of a HistGradientBoosting member")
    mlp_hidden: tuple[int, ...] = setting((64, 32), "hidden layer sizes of the MLP")
    mlp_epochs: int = setting(30, "most epochs of the MLP")
    mlp_patience: int = setting(4, "MLP epochs without validation gain before stopping")
    mlp_max_rows: int = setting(30_000, "most training rows of the MLP")
    class_weight_power: float = setting(0.5, "state class weights, as for XGBoost")
    train_stride: int = setting(2, "every n-th training minute, as for XGBoost")
    seed: int = setting(42, "seed of every member")


@dataclass
class Scaler:
    """Standardisation that maps missing values to the mean and clips outliers."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> "Scaler":
        mean = np.nanmean(X, axis=0)
        std = np.nanstd(X, axis=0)
        return cls(np.nan_to_num(mean), np.where(np.nan_to_num(std) > 1e-9, std, 1.0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.clip(np.nan_to_num((X - self.mean) / self.std), -10, 10).astype(np.float32)


@dataclass
class EnsembleModel:
    """Per horizon: the XGBoost models, HistGB and MLP members, and the blend weights."""

    xgb: dict[int, HorizonModels]
    hgb_regressors: dict[tuple[int, str], HistGradientBoostingRegressor]
    hgb_classifiers: dict[int, HistGradientBoostingClassifier]
    mlp_regressor: MLPRegressor  # every (horizon, target) residual at once, scaled
    mlp_classifiers: dict[int, MLPClassifier]
    columns: np.ndarray  # feature columns the HistGB and MLP members read
    scaler: Scaler
    target_scale: np.ndarray
    weights: dict[tuple[int, str], np.ndarray]  # (h, target or "state") -> weights of MEMBERS
    fallback: float
    persistence_index: int
    horizons: tuple[int, ...]
    policies: dict[int, HorizonPolicy] = field(default_factory=dict)

    def policy(self, h: int) -> HorizonPolicy | None:
        return self.policies.get(h)

    def members(self, X: np.ndarray, h: int, early: bool = False) -> dict[str, dict]:
        """Each member's predictions at horizon h (regressions in seconds, state probabilities;
        `early`: the XGBoost member's regressors before its refit)."""
        base = baseline(X[:, self.persistence_index], self.fallback)
        out = {"xgb": self.xgb[h].predict(X, early)}
        X = X[:, self.columns]
        Xs = self.scaler.transform(X)
        mlp_all = self.mlp_regressor.predict(Xs).reshape(len(X), -1) * self.target_scale
        out["hgb"] = {t: base + self.hgb_regressors[h, t].predict(X) for t in REGRESSION_TARGETS}
        out["hgb"]["proba"] = _proba(self.hgb_classifiers[h], X)
        cols = _output_index(self.horizons)
        out["mlp"] = {t: base + mlp_all[:, cols[h, t]] for t in REGRESSION_TARGETS}
        out["mlp"]["proba"] = _proba(self.mlp_classifiers[h], Xs)
        return out

    def predict(self, X: np.ndarray, h: int, early: bool = False) -> dict[str, np.ndarray]:
        """The blended min/max/avg, calibrated state probabilities, state and alarm at h."""
        parts = self.members(X, h, early)
        raw = blend(parts, {k: w for (hh, k), w in self.weights.items() if hh == h})
        return decide(raw, self.policy(h))


def blend(parts: dict[str, dict], weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Weighted sums of the members' outputs, then min <= avg <= max."""
    out = {t: sum(w * parts[m][t] for m, w in zip(MEMBERS, weights[t])) for t in REGRESSION_TARGETS}
    out = ordered(out)
    proba = sum(w * parts[m]["proba"] for m, w in zip(MEMBERS, weights["state"]))
    return out | {"proba": proba / proba.sum(axis=1, keepdims=True)}


def _output_index(horizons: tuple[int, ...]) -> dict[tuple[int, str], int]:
    """Column of each (horizon, target) in the MLP's multi-output."""
    pairs = [(h, t) for h in horizons for t in REGRESSION_TARGETS]
    return {p: i for i, p in enumerate(pairs)}


def _proba(model, X: np.ndarray) -> np.ndarray:
    """Class probabilities over all three states, even if a class never occurred in training."""
    out = np.zeros((len(X), N_CLASSES))
    out[:, model.classes_.astype(int)] = model.predict_proba(X)
    return out


def top_features(models: dict[int, HorizonModels], k: int) -> np.ndarray:
    """Indices of the k features with the highest total XGBoost gain over every horizon's models."""
    gain = sum(m.gain() for m in models.values())
    return np.sort(np.argsort(-gain, kind="stable")[:k])


def _training_mask(ds: ModelDataset, cfg: EnsembleConfig) -> np.ndarray:
    """The training rows the members learn from (every train_stride-th training minute)."""
    mask = np.zeros(len(ds.split), dtype=bool)
    mask[training_rows(ds, cfg.train_stride)] = True
    return mask


def _fit_hgb(ds: ModelDataset, X: np.ndarray, h: int, base: np.ndarray, cfg: EnsembleConfig
             ) -> tuple[dict, object]:
    """HistGradientBoosting regressors (residuals, median loss) and classifier of one horizon."""
    tr, va = _training_mask(ds, cfg), ds.mask(VAL)
    hgb = dict(max_iter=cfg.hgb_max_iter, learning_rate=cfg.hgb_learning_rate, max_bins=63,
               early_stopping=True, n_iter_no_change=15, random_state=cfg.seed)
    regs = {}
    for t in REGRESSION_TARGETS:
        y = ds.target(t, h) - base
        a = _subsample(tr & ~np.isnan(y), cfg.hgb_max_rows, cfg.seed)
        b = _subsample(va & ~np.isnan(y), cfg.hgb_max_rows, cfg.seed)
        regs[t] = HistGradientBoostingRegressor(loss="absolute_error", **hgb).fit(
            X[a], y[a], X_val=X[b], y_val=y[b])
    s = ds.target("state", h).astype(int)
    a = _subsample(tr & (s >= 0), cfg.hgb_max_rows, cfg.seed)
    b = _subsample(va & (s >= 0), cfg.hgb_max_rows, cfg.seed)
    clf = HistGradientBoostingClassifier(**hgb).fit(
        X[a], s[a], sample_weight=class_weights(s[a], cfg.class_weight_power),
        X_val=X[b], y_val=s[b], sample_weight_val=class_weights(s[b], cfg.class_weight_power))
    return regs, clf


def _train_epochs(model, X, y, X_val, y_val, loss, cfg: EnsembleConfig, **first) -> object:
    """partial_fit epoch by epoch; keep the weights of the best validation loss (early stopping)."""
    best, best_loss, stale = None, np.inf, 0
    for epoch in range(cfg.mlp_epochs):
        model.partial_fit(X, y, **(first if epoch == 0 else {}))
        current = loss(model, X_val, y_val)
        if current < best_loss - 1e-6:
            best, best_loss, stale = copy.deepcopy(model), current, 0
        else:
            stale += 1
            if stale >= cfg.mlp_patience:
                break
    return best or model


def _subsample(mask: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most `limit` of the rows in mask, chosen at random but reproducibly, in time order."""
    rows = np.flatnonzero(mask)
    if len(rows) <= limit:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))


def _fit_mlps(ds: ModelDataset, X: np.ndarray, base: np.ndarray, scaler: Scaler,
              cfg: EnsembleConfig):
    """One multi-output MLP for every (horizon, target) residual and one classifier per horizon."""
    cols = _output_index(ds.horizons)
    Y = np.column_stack([ds.target(t, h) - base for (h, t) in cols])
    complete = ~np.isnan(Y).any(axis=1)
    scale = np.nanstd(Y[ds.mask(TRAIN)], axis=0) + 1e-6
    train = _training_mask(ds, cfg)
    tr = _subsample(train & complete, cfg.mlp_max_rows, cfg.seed)
    va = _subsample(ds.mask(VAL) & complete, cfg.mlp_max_rows, cfg.seed)
    Xtr, Xva = scaler.transform(X[tr]), scaler.transform(X[va])
    mse = lambda m, X, y: float(np.mean((m.predict(X).reshape(len(X), -1) - y) ** 2))  # noqa: E731
    reg = _train_epochs(
        MLPRegressor(hidden_layer_sizes=cfg.mlp_hidden, alpha=1e-3, learning_rate_init=1e-3,
                     random_state=cfg.seed),
        Xtr, Y[tr] / scale, Xva, Y[va] / scale, mse, cfg)
    clfs = {}
    for h in ds.horizons:
        s = ds.target("state", h).astype(int)
        a = _subsample(train & (s >= 0), cfg.mlp_max_rows, cfg.seed)
        b = _subsample(ds.mask(VAL) & (s >= 0), cfg.mlp_max_rows, cfg.seed)
        logloss = lambda m, X, y: -float(np.mean(np.log(_proba(m, X)[np.arange(len(y)), y] + 1e-9)))  # noqa: E731
        clfs[h] = _train_epochs(
            MLPClassifier(hidden_layer_sizes=cfg.mlp_hidden, alpha=1e-3, random_state=cfg.seed),
            scaler.transform(X[a]), s[a], scaler.transform(X[b]), s[b], logloss, cfg,
            classes=np.arange(N_CLASSES))
    return reg, clfs, scale


def choose_weights(parts: dict[str, dict], y: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Blend weights per target on validation: min MAE (regressions), min log-loss (state)."""
    out = {}
    for t in REGRESSION_TARGETS:
        ok = ~np.isnan(y[t])
        stack = np.stack([parts[m][t][ok] for m in MEMBERS])  # (members, rows)
        mae = np.abs(WEIGHT_GRID @ stack - y[t][ok]).mean(axis=1)
        out[t] = WEIGHT_GRID[int(np.argmin(mae))]
    ok = y["state"] >= 0
    probs = np.stack([parts[m]["proba"][ok, y["state"][ok]] for m in MEMBERS])
    logloss = -np.log(WEIGHT_GRID @ probs + 1e-9).mean(axis=1)
    out["state"] = WEIGHT_GRID[int(np.argmin(logloss))]
    return out


def ensemble_steps(ds: ModelDataset) -> int:
    """The steps fit_ensemble_model reports: HistGB per horizon, the MLPs, weights per horizon."""
    return 2 * len(ds.horizons) + 1


def fit_ensemble_model(ds: ModelDataset, xgb_models: dict[int, HorizonModels],
                       cfg: EnsembleConfig, progress: Progress | None = None,
                       alarms: AlarmConfig | None = None) -> EnsembleModel:
    """Fit the HistGB and MLP members, then choose blend weights and the operating points on
    validation rows (with the XGBoost member as it was before its refit: the validation rows
    must be new to every member). The scikit-learn members are not refitted."""
    fallback = fallback_level(ds)
    base = baseline(ds.persistence, fallback)
    columns = top_features(xgb_models, cfg.top_features)
    X = ds.X[:, columns]
    hgb = {}
    for h in ds.horizons:
        hgb[h] = _fit_hgb(ds, X, h, base, cfg)
        advance(progress, note=f"HistGB h{h}")
    scaler = Scaler.fit(X[ds.mask(TRAIN)])
    mlp, mlp_clfs, scale = _fit_mlps(ds, X, base, scaler, cfg)
    advance(progress, note="MLPs")
    model = EnsembleModel(
        xgb={h: xgb_models[h] for h in ds.horizons},
        hgb_regressors={(h, t): hgb[h][0][t] for h in ds.horizons for t in REGRESSION_TARGETS},
        hgb_classifiers={h: hgb[h][1] for h in ds.horizons},
        mlp_regressor=mlp, mlp_classifiers=mlp_clfs, columns=columns, scaler=scaler,
        target_scale=scale,
        weights={}, fallback=fallback, persistence_index=ds.persistence_index,
        horizons=tuple(ds.horizons),
    )
    va = ds.mask(VAL)
    for h in ds.horizons:
        parts = model.members(ds.X[va], h, early=True)
        truth = {t: ds.target(t, h)[va] for t in (*REGRESSION_TARGETS, "state")}
        truth["state"] = truth["state"].astype(int)
        weights = choose_weights(parts, truth)
        for key, w in weights.items():
            model.weights[h, key] = w
        raw = blend(parts, weights)["proba"]
        model.policies[h] = validation_policy(ds, h, raw, alarms or AlarmConfig())
        advance(progress, note=f"weights h{h}")
    return model
