"""Why a forecast says what it says: XGBoost's exact per-prediction contributions (TreeSHAP,
`pred_contribs`) rolled up from the 222 features to the raw columns an operator knows, no Dagster.

Two outputs are explained per horizon, each as its *margin* (the raw score before the link):
- `CRITICAL`: the state classifier's raw score of the CRITICAL class (softmax over the three
  classes' margins gives the raw probabilities, which the operating point may then calibrate;
  up means more likely CRITICAL);
- `avg`: the avg regressor's output, the predicted change of the avg transfer time from the
  persistence `baseline` in seconds (avg forecast = baseline + margin, before min <= avg <= max).

Contributions plus the bias equal the margin the prediction uses (TreeSHAP is exact), over the
same trees (0 .. best_iteration); the margin reported is that sum, which equals the booster's
own margin within 1e-3 (XGBoost sums in float32; the tests and the benchmark check it), so no
second prediction is made. The ensemble is explained through its XGBoost member: the blend
with the scikit-learn members has no exact per-column decomposition, so an ensemble's
explanation says `"model": "ensemble: xgb member"`.

Nothing here runs unless asked: the default prediction path (`model.predict`) is untouched.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

from amhs_assets.contract import RAW_COLUMNS, STATES
from amhs_assets.features.spec import feature_catalog
from amhs_assets.models.dataset import baseline
from amhs_assets.models.ensemble import EnsembleModel
from amhs_assets.models.unified import HORIZON_FEATURE, UnifiedModel, with_horizon
from amhs_assets.models.xgb import HorizonModels, XgbModel

CRITICAL = "CRITICAL"
OUTPUTS = (CRITICAL, "avg")  # what each explanation covers, in this order
HORIZON_COLUMN = "horizon"  # the unified model's horizon input, as a column of its own
TOP = 5  # contributions listed per output; the rest are summed into "other"
DECIMALS = 5
MAX_GLOBAL_ROWS = 5_000  # rows the global summary reads (evenly spaced): TreeSHAP is per row
PHRASE_NAMES = {"timestamp": "time of day / shift", HORIZON_COLUMN: "the horizon"}


@functools.cache
def rollup(feature_names: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """The raw columns the features are read from, and the (features, columns) matrix that
    maps feature contributions onto them: a feature of one column gives it all, a derived ratio
    splits equally over its source columns, calendar features go to `timestamp` and the unified
    model's horizon input to `horizon`. Every row sums to 1, so no contribution is lost."""
    catalog = feature_catalog()
    sources = dict(zip(catalog["name"], catalog["source_columns"]))
    sources[HORIZON_FEATURE] = HORIZON_COLUMN
    unknown = [f for f in feature_names if f not in sources]
    if unknown:
        raise ValueError(f"features {unknown[:5]} are not in the feature catalog: a model of "
                         "another feature version; retrain it or explain it with its catalog")
    per_feature = [sources[f].split(",") for f in feature_names]
    used = {c for cols in per_feature for c in cols}
    columns = tuple(c for c in (*RAW_COLUMNS, HORIZON_COLUMN) if c in used)
    index = {c: j for j, c in enumerate(columns)}
    matrix = np.zeros((len(feature_names), len(columns)))
    for i, cols in enumerate(per_feature):  # once per feature list, not per request
        matrix[i, [index[c] for c in cols]] = 1.0 / len(cols)
    matrix.setflags(write=False)
    return columns, matrix


@dataclass(frozen=True)
class Contributions:
    """Signed contributions of one output per row and raw column, with bias and margin."""

    columns: tuple[str, ...]
    values: np.ndarray  # (rows, columns)
    bias: np.ndarray  # (rows,)
    margin: np.ndarray  # (rows,) values.sum(axis=1) + bias: the model's margin
    baseline: np.ndarray | None = None  # (rows,) persistence level added to the avg margin


@dataclass(frozen=True)
class _Explained:
    """What explains one model at one horizon: its boosters, their input rows and names."""

    label: str
    classifier: xgb.Booster
    avg: xgb.Booster
    X: np.ndarray
    feature_names: tuple[str, ...]
    baseline: np.ndarray


def _explained(model, X: np.ndarray, h: int) -> _Explained:
    """The XGBoost boosters behind a model's forecast at horizon h and the rows they read."""
    if isinstance(model, UnifiedModel):
        hh = float(np.clip(h, min(model.horizons_seen), max(model.horizons_seen)))
        return _Explained("unified", model.classifier, model.regressors["avg"],
                          with_horizon(X, hh), tuple(model.feature_names),
                          baseline(X[:, model.persistence_index], model.fallback))
    if isinstance(model, XgbModel):
        hm, label = model.horizon_models[h], "xgb"
    elif isinstance(model, EnsembleModel):
        hm, label = model.xgb[h], "ensemble: xgb member"
    elif isinstance(model, HorizonModels):
        hm, label = model, "xgb"
    else:
        raise TypeError(f"cannot explain a {type(model).__name__}: expected an XgbModel, "
                        "UnifiedModel, EnsembleModel or HorizonModels")
    return _Explained(label, hm.classifier, hm.regressors["avg"], X, tuple(hm.feature_names),
                      baseline(X[:, hm.persistence_index], hm.fallback))


def iteration_range(booster: xgb.Booster) -> tuple[int, int]:
    """The trees a prediction uses: up to the early-stopping best iteration, as predict_booster."""
    best = getattr(booster, "best_iteration", None)
    return (0, best + 1) if best is not None else (0, 0)


def _booster_contributions(booster: xgb.Booster, dm: xgb.DMatrix, matrix: np.ndarray,
                           cls: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Rolled-up contributions and bias of one booster (one class of a classifier)."""
    contribs = booster.predict(dm, pred_contribs=True, iteration_range=iteration_range(booster))
    if cls is not None:
        contribs = contribs[:, cls, :]
    contribs = contribs.astype(np.float64)
    return contribs[:, :-1] @ matrix, contribs[:, -1]


def contributions(model, X: np.ndarray, h: int) -> dict[str, Contributions]:
    """Per output (CRITICAL margin, avg margin): every row's signed contribution per raw column."""
    return _contributions(_explained(model, X, h))


def margins(model, X: np.ndarray, h: int) -> dict[str, np.ndarray]:
    """The boosters' own margins of the explained outputs at horizon h (a second prediction,
    to check the contributions against)."""
    part = _explained(model, X, h)
    out = {}
    for name, booster, cls in _outputs(part):
        margin = booster.inplace_predict(part.X, predict_type="margin",
                                         iteration_range=iteration_range(booster))
        out[name] = (margin if cls is None else margin.reshape(len(X), -1)[:, cls]).astype(float)
    return out


def _outputs(part: _Explained) -> tuple[tuple[str, xgb.Booster, int | None], ...]:
    """Each explained output: its name, booster and class (None for a regressor)."""
    return ((CRITICAL, part.classifier, STATES.index(CRITICAL)), ("avg", part.avg, None))


def _contributions(part: _Explained) -> dict[str, Contributions]:
    if part.X.shape[1] != len(part.feature_names):
        raise ValueError(f"X has {part.X.shape[1]} columns, the model reads "
                         f"{len(part.feature_names)} features")
    columns, matrix = rollup(part.feature_names)
    dm = xgb.DMatrix(part.X, missing=np.nan)
    out = {}
    for name, booster, cls in _outputs(part):
        values, bias = _booster_contributions(booster, dm, matrix, cls)
        out[name] = Contributions(columns, values, bias, values.sum(axis=1) + bias,
                                  part.baseline if name == "avg" else None)
    return out


def _phrase(output: str, column: str, value: float) -> str:
    """A few words an operator reads: what the column did to this output."""
    name = PHRASE_NAMES.get(column, column)
    if output == CRITICAL:
        return f"{name} pushes CRITICAL {'up' if value > 0 else 'down'}"
    return f"{name} {'raises' if value > 0 else 'lowers'} avg by {abs(value):.1f} s"


def _json_rows(output: str, c: Contributions, top: int) -> list[dict]:
    """Per row: margin, bias, the `top` largest contributions by size and the rest summed."""
    order = np.argsort(-np.abs(c.values), axis=1, kind="stable")[:, :top]
    chosen = np.take_along_axis(c.values, order, axis=1)
    other = c.values.sum(axis=1) - chosen.sum(axis=1)
    names = np.asarray(c.columns)[order]
    rows = []
    for i in range(len(c.values)):  # building the answer's dicts; the arithmetic is above
        entry = {"margin": round(float(c.margin[i]), DECIMALS),
                 "bias": round(float(c.bias[i]), DECIMALS)}
        if c.baseline is not None:
            entry["baseline"] = round(float(c.baseline[i]), DECIMALS)
        entry["top"] = [{"column": str(col), "contribution": round(float(v), DECIMALS),
                         "text": _phrase(output, str(col), float(v))}
                        for col, v in zip(names[i], chosen[i]) if v != 0.0]
        entry["other"] = round(float(other[i]), DECIMALS)
        rows.append(entry)
    return rows


def explain(model, X: np.ndarray, h: int, top: int = TOP) -> list[dict]:
    """Per row of X, JSON-ready: the columns that pushed the forecast at horizon h most.

    `{"model": "xgb" | "unified" | "ensemble: xgb member",
      "CRITICAL": {"margin", "bias", "top": [{"column", "contribution", "text"}], "other"},
      "avg": {"margin", "bias", "baseline", "top": [...], "other"}}`
    with `top` sorted by |contribution| (zero ones left out) and, per output,
    sum(top contributions) + other + bias == margin (up to the rounding to 5 decimals), the
    margin being the booster's own within 1e-3."""
    part = _explained(model, X, h)
    parts = _contributions(part)
    per_output = {name: _json_rows(name, parts[name], top) for name in OUTPUTS}
    return [{"model": part.label, **{name: per_output[name][i] for name in OUTPUTS}}
            for i in range(len(X))]


def global_importance(model, X: np.ndarray, h: int, max_rows: int = MAX_GLOBAL_ROWS
                      ) -> pd.DataFrame:
    """Mean |contribution| per raw column of the CRITICAL and avg margins at horizon h, over
    (at most max_rows evenly spaced) rows X: columns horizon, column, CRITICAL, avg; the
    largest CRITICAL first."""
    if len(X) > max_rows:
        X = X[np.linspace(0, len(X) - 1, max_rows).astype(int)]
    parts = contributions(model, X, h)
    columns = parts[CRITICAL].columns
    frame = pd.DataFrame({"horizon": int(h), "column": list(columns),
                          **{name: np.abs(parts[name].values).mean(axis=0) for name in OUTPUTS}})
    return frame.sort_values(CRITICAL, ascending=False, kind="stable").reset_index(drop=True)
