"""The per-horizon XGBoost models (the original V8 design), no Dagster.

Regressors learn the *change* from the persistence value (the last known target value), not
the level: tree models cannot extrapolate, and a regime with higher transfer times (drift)
then shifts the baseline instead of pushing predictions off the edge of the trees.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from amhs_assets.config import setting
from amhs_assets.contract import (
    REGRESSION_TARGETS,
)
from amhs_assets.models.dask_backend import DaskMatrices
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
from amhs_assets.models.operating import AlarmConfig, HorizonPolicy, decide, fit_policy
from amhs_assets.models.splits import VAL
from amhs_assets.progress import Progress, advance

TRAINING_BACKENDS = ("local", "dask")

# The figures that matter are MAEs and transfer times are heavy-tailed: fit the median.
REGRESSION_OBJECTIVE = "reg:absoluteerror"


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

    max_depth: int = setting(6, "deepest tree")
    learning_rate: float = setting(0.08, "shrinkage per boosting round (eta)")
    subsample: float = setting(0.8, "share of rows each tree sees")
    colsample_bytree: float = setting(0.5, "share of features each tree sees")
    min_child_weight: float = setting(5.0, "least hessian weight in a leaf")
    max_bin: int = setting(64, "histogram bins per feature")
    num_boost_round: int = setting(400, "most boosting rounds per model")
    early_stopping_rounds: int = setting(20, "rounds without validation gain before stopping")
    class_weight_power: float = setting(
        0.5, "state classes weighed (n / (k * count)) ** power: 0 none, 1 fully balanced")
    train_stride: int = setting(
        2, "models learn from every n-th training minute (neighbouring minutes are near "
           "duplicates; 1 = every minute, ~1.6x the time)")
    device: str = setting("auto", "XGBoost device: auto (a GPU when one answers), cpu or cuda")
    seed: int = setting(42, "seed of every fit")
    training_backend: str = setting(
        "local", "where the boosters train: local (this process, every core) or dask "
                 "(xgboost.dask on the cluster at dask_address)")
    dask_address: str = setting(
        "", "Dask scheduler of the dask backend (tcp://host:8786); empty: a LocalCluster on "
            "this machine")

    def __post_init__(self) -> None:
        if self.training_backend not in TRAINING_BACKENDS:
            raise ValueError(f"xgb.training_backend={self.training_backend!r}: expected one of "
                             f"{', '.join(TRAINING_BACKENDS)}")

    def params(self) -> dict:
        device = detect_device() if self.device == "auto" else self.device
        return {
            "tree_method": "hist", "device": device, "max_depth": self.max_depth,
            "eta": self.learning_rate, "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree, "min_child_weight": self.min_child_weight,
            "max_bin": self.max_bin, "seed": self.seed, "nthread": os.cpu_count() or 1,
        }


BATCH_ROWS = 65_536  # rows per batch fed to XGBoost: the peak copy is one batch, not every row


class RowBatches(xgb.DataIter):
    """Feature rows fed to XGBoost batch by batch (a QuantileDMatrix built from an iterator):
    each batch is made when XGBoost asks for it, so the training rows are never concatenated
    into one copy. XGBoost walks the batches more than once; `reset` starts over."""

    def __init__(self, batches: list[Callable[[], np.ndarray]]):
        self.batches, self.position = batches, 0
        super().__init__()

    @classmethod
    def of_rows(cls, X: np.ndarray, rows: np.ndarray, batch_rows: int = BATCH_ROWS
                ) -> "RowBatches":
        """The rows of X at the given indices, in batches of at most batch_rows."""
        return cls([functools.partial(_take, X, rows[i:i + batch_rows])
                    for i in range(0, len(rows), batch_rows)])

    def next(self, input_data: Callable) -> bool:
        if self.position >= len(self.batches):
            return False
        input_data(data=self.batches[self.position]())
        self.position += 1
        return True

    def reset(self) -> None:
        self.position = 0


def _take(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return X[rows]


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
    def build(cls, train_rows: RowBatches, val_rows: RowBatches, config: XgbConfig,
              rows: tuple[np.ndarray, np.ndarray] | None = None) -> "Matrices | DaskMatrices":
        """Quantise the training batches, and the validation batches on the training cuts
        (with the dask backend: the rows sent to the cluster, quantised there per booster)."""
        if config.training_backend == "dask":
            return DaskMatrices.build(train_rows, val_rows, config.dask_address, config.max_bin,
                                      rows)
        threads = config.params()["nthread"]
        train = xgb.QuantileDMatrix(train_rows, max_bin=config.max_bin, nthread=threads)
        val = xgb.QuantileDMatrix(val_rows, ref=train, max_bin=config.max_bin, nthread=threads)
        return cls(train, val, rows)


def _label(matrix: xgb.DMatrix, y: np.ndarray, weight: np.ndarray | None) -> None:
    """Set labels and weights of a shared matrix; unlabelled (NaN) rows weigh nothing."""
    known = ~np.isnan(y)
    w = known.astype(np.float32) if weight is None else np.where(known, weight, 0.0)
    matrix.set_info(label=np.where(known, y, 0.0), weight=w)


def fit_booster(config: XgbConfig, objective: str, matrices: Matrices | DaskMatrices,
                y: np.ndarray, y_val: np.ndarray, weight: np.ndarray | None = None,
                weight_val: np.ndarray | None = None, rounds: int | None = None
                ) -> xgb.Booster:
    """One XGBoost model with early stopping on the validation rows (NaN labels are ignored);
    with `rounds`, exactly that many rounds and no early stopping (a refit)."""
    params = config.params() | {"objective": objective}
    if objective == "multi:softprob":
        params |= {"num_class": N_CLASSES, "eval_metric": "mlogloss"}
    else:
        params |= {"eval_metric": "mae"}
    stopping = None if rounds else config.early_stopping_rounds
    if isinstance(matrices, DaskMatrices):
        booster = matrices.fit(params, rounds or config.num_boost_round, stopping, y, y_val,
                               weight, weight_val)
    else:
        _label(matrices.train, y, weight)
        _label(matrices.val, y_val, weight_val)
        booster = xgb.train(params, matrices.train,
                            num_boost_round=rounds or config.num_boost_round,
                            evals=[(matrices.val, "val")], early_stopping_rounds=stopping,
                            verbose_eval=False)
    if rounds:
        booster.set_attr(best_iteration=str(rounds - 1))
    return booster


@dataclass
class HorizonModels:
    """One horizon's original design: XGBoost regressors for min/max/avg and a state classifier,
    the operating point of its alarms and, after a refit, the early-stopped regressors (kept for
    the evaluation's with/without comparison, not stored with the model)."""

    horizon: int
    regressors: dict[str, xgb.Booster]
    classifier: xgb.Booster
    fallback: float  # level used where persistence is unknown
    persistence_index: int
    feature_names: tuple[str, ...]
    best_iterations: dict[str, int]
    policy: HorizonPolicy | None = None
    early: dict[str, xgb.Booster] | None = None  # the regressors before the refit

    def predict(self, X: np.ndarray, early: bool = False) -> dict[str, np.ndarray]:
        """min/max/avg in seconds, calibrated state probabilities (rows, 3), the state per the
        operating point and the CRITICAL alarm, for feature rows X (`early`: the regressors
        before the refit, if there was one)."""
        base = baseline(X[:, self.persistence_index], self.fallback)
        regressors = self.early if early and self.early else self.regressors
        pred = {t: base + predict_booster(b, X) for t, b in regressors.items()}
        proba = predict_booster(self.classifier, X).reshape(len(X), N_CLASSES)
        return decide(ordered(pred) | {"proba": proba}, self.policy)

    def gain(self) -> np.ndarray:
        """Total gain of each feature over the four models."""
        gain = np.zeros(len(self.feature_names))
        for booster in (*self.regressors.values(), self.classifier):
            for key, value in booster.get_score(importance_type="total_gain").items():
                gain[int(key[1:])] += value  # unnamed features are keyed f0, f1, ...
        return gain


def predict_booster(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    """Predictions with the early-stopped number of trees (in place: no DMatrix per call)."""
    best = getattr(booster, "best_iteration", None)
    rng = (0, best + 1) if best is not None else (0, 0)
    return booster.inplace_predict(X, iteration_range=rng)


def blend_boosters(members: list[tuple[xgb.Booster, float]]) -> xgb.Booster:
    """One booster whose forecast is the weighted sum of the members' (each with the trees its
    predict_booster uses): their trees side by side, leaf values scaled by the member's weight,
    the intercept the weighted intercepts. Same-objective regressors only. One booster serves
    a blend at the cost of one prediction call, and its exact contributions (pred_contribs)
    are the weighted contributions of the members."""
    docs = [json.loads(booster.save_raw("json")) for booster, _ in members]
    trees, intercept = [], 0.0
    for (booster, weight), doc in zip(members, docs):
        best = getattr(booster, "best_iteration", None)
        model = doc["learner"]["gradient_booster"]["model"]
        count = len(model["trees"]) if best is None else int(model["iteration_indptr"][best + 1])
        for tree in model["trees"][:count]:
            leaf = np.asarray(tree["left_children"]) == -1
            values = np.asarray(tree["split_conditions"], dtype=np.float64)
            values[leaf] *= weight  # a leaf's split condition holds its value
            tree["split_conditions"] = values.tolist()
            tree["base_weights"] = (np.asarray(tree["base_weights"], np.float64) * weight).tolist()
            trees.append(tree)
        intercept += weight * float(str(doc["learner"]["learner_model_param"]["base_score"])
                                    .strip("[]"))
    out = docs[0]
    model = out["learner"]["gradient_booster"]["model"]
    for number, tree in enumerate(trees):
        tree["id"] = number
    model["trees"], model["tree_info"] = trees, [0] * len(trees)
    model["gbtree_model_param"]["num_trees"] = str(len(trees))
    model["iteration_indptr"] = list(range(len(trees) + 1))  # one tree per round
    param = out["learner"]["learner_model_param"]
    param["base_score"] = (f"[{intercept:.9E}]" if str(param["base_score"]).startswith("[")
                           else f"{intercept:.9E}")
    blended = xgb.Booster()
    blended.load_model(bytearray(json.dumps(out).encode()))
    blended.set_attr(best_iteration=str(len(trees) - 1))
    return blended


def served_regressors(refitted: dict[str, xgb.Booster], early: dict[str, xgb.Booster],
                      refit_weight: float) -> dict[str, xgb.Booster]:
    """What is served after a refit: refit_weight x refitted + (1 - refit_weight) x
    early-stopped, per target, as one booster each (the refit alone at 1, early at 0)."""
    if refit_weight >= 1.0:
        return dict(refitted)
    if refit_weight <= 0.0:
        return dict(early)
    return {name: blend_boosters([(refitted[name], refit_weight),
                                  (early[name], 1.0 - refit_weight)]) for name in refitted}


def shared_matrices(ds: ModelDataset, config: XgbConfig, refit: bool = False) -> Matrices:
    """The quantised training (strided) and validation rows every horizon's models share;
    `refit`: training and validation rows (both strided) to learn from, for a refit."""
    tr, va = training_rows(ds, config.train_stride), np.flatnonzero(ds.mask(VAL))
    if refit:
        tr = np.concatenate([tr, va[::config.train_stride]])
    return Matrices.build(RowBatches.of_rows(ds.X, tr), RowBatches.of_rows(ds.X, va), config,
                          rows=(tr, va))


def validation_policy(ds: ModelDataset, h: int, proba: np.ndarray, alarms: AlarmConfig
                      ) -> HorizonPolicy:
    """The operating point of horizon h from a model's raw probabilities on the validation rows."""
    va = ds.mask(VAL)
    return fit_policy(h, proba, ds.target("state", h)[va].astype(int), ds.line_id[va],
                      ds.timestamp[va], alarms)


def refit_regressors(ds: ModelDataset, h: int, config: XgbConfig, matrices: Matrices,
                     best: dict[str, int], progress: Progress | None = None
                     ) -> dict[str, xgb.Booster]:
    """Horizon h's regressors again on training + validation rows (`matrices` from
    shared_matrices(refit=True)), each with the rounds early stopping chose."""
    tr, va = matrices.rows
    base = baseline(ds.persistence, fallback_level(ds, h))
    out = {}
    for name in REGRESSION_TARGETS:
        y = ds.target(name, h) - base
        out[name] = fit_booster(config, REGRESSION_OBJECTIVE, matrices, y[tr], y[va],
                                rounds=best[name] + 1)
        advance(progress, note=f"h{h} {name}: refit with {best[name] + 1} trees")
    return out


def fit_horizon_models(ds: ModelDataset, h: int, config: XgbConfig,
                       matrices: Matrices | None = None, progress: Progress | None = None,
                       alarms: AlarmConfig | None = None, refit: Matrices | None = None
                       ) -> HorizonModels:
    """Fit the four XGBoost models of one horizon on the training rows, early-stopped on val;
    choose the operating point on val; refit the regressors on train + val (when
    alarms.refit) with the chosen rounds, keeping the early-stopped ones as `early`.

    `matrices` (shared_matrices of ds) and `refit` (shared_matrices(refit=True)) may be shared
    across horizons; labels are taken from the dataset rows they were built from."""
    alarms = alarms or AlarmConfig()
    matrices = matrices or shared_matrices(ds, config)
    tr, va = matrices.rows
    fallback = fallback_level(ds, h)
    base = baseline(ds.persistence, fallback)
    regressors, best = {}, {}
    for name in REGRESSION_TARGETS:
        y = ds.target(name, h) - base
        regressors[name] = fit_booster(config, REGRESSION_OBJECTIVE, matrices, y[tr], y[va])
        best[name] = int(regressors[name].best_iteration)
        advance(progress, note=f"h{h} {name}: {best[name] + 1} trees")
    state = state_labels(ds.target("state", h))
    classifier = fit_booster(
        config, "multi:softprob", matrices, state[tr], state[va],
        weight=state_weights(state[tr], config.class_weight_power),
        weight_val=state_weights(state[va], config.class_weight_power),
    )
    best["state"] = int(classifier.best_iteration)
    advance(progress, note=f"h{h} state: {best['state'] + 1} trees")
    models = HorizonModels(h, regressors, classifier, fallback, ds.persistence_index,
                           ds.feature_names, best)
    proba = models.predict(ds.X[ds.mask(VAL)])["proba"]  # raw: no policy yet
    models.policy = validation_policy(ds, h, proba, alarms)
    if alarms.refit:
        refit = refit or shared_matrices(ds, config, refit=True)
        models.early = regressors
        models.regressors = served_regressors(
            refit_regressors(ds, h, config, refit, best, progress), regressors,
            alarms.refit_weight)
    return models


def model_steps(horizons: int, alarms: AlarmConfig) -> int:
    """The boosters fit_horizon_models reports per horizon: 4, and 3 more with a refit."""
    return horizons * (7 if alarms.refit else 4)


def fit_xgb_model(ds: ModelDataset, config: XgbConfig, horizons: tuple[int, ...] | None = None,
                  progress: Progress | None = None, alarms: AlarmConfig | None = None
                  ) -> "XgbModel":
    """Every horizon's models, on one pair of quantised matrices (and one more for a refit)."""
    alarms = alarms or AlarmConfig()
    matrices = shared_matrices(ds, config)
    refit = shared_matrices(ds, config, refit=True) if alarms.refit else None
    return XgbModel({h: fit_horizon_models(ds, h, config, matrices, progress, alarms, refit)
                     for h in (horizons or ds.horizons)})


@dataclass
class XgbModel:
    """The original design across horizons: one HorizonModels per horizon."""

    horizon_models: dict[int, HorizonModels]

    @property
    def horizons(self) -> tuple[int, ...]:
        return tuple(sorted(self.horizon_models))

    def predict(self, X: np.ndarray, h: int, early: bool = False) -> dict[str, np.ndarray]:
        return self.horizon_models[h].predict(X, early)

    def policy(self, h: int) -> HorizonPolicy | None:
        return self.horizon_models[h].policy


