"""Evaluation on the test window: every model x horizon x target (SPEC section 4), no Dagster."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol

import numpy as np
import pandas as pd

from amhs_assets.contract import REGISTERED_MODEL_NAME, REGRESSION_TARGETS, STATES
from amhs_assets.evaluation.alarms import alarm_metrics
from amhs_assets.evaluation.metrics import classification_metrics, regression_metrics
from amhs_assets.models.dataset import ModelDataset, split_summary
from amhs_assets.models.kinds import KIND_NAMES
from amhs_assets.models.operating import CRITICAL, HorizonPolicy, brier_score, decide
from amhs_assets.models.splits import TEST, VAL
from amhs_assets.models.xgb import XgbModel
from amhs_assets.progress import Progress, advance

MODEL_ORDER = ("persistence", *KIND_NAMES, "champion")
# the fab's V8 bars (SEED.md): MAE below, R2 above, accuracy above
V8_BARS = {"mae": 10.0, "r2": 0.65, "accuracy": 0.70}


class Predictor(Protocol):
    """Anything that predicts min/max/avg and state probabilities at a horizon from features
    (and, with an operating point, the state and alarm it decides)."""

    horizons: tuple[int, ...]

    def predict(self, X: np.ndarray, h: int) -> dict[str, np.ndarray]: ...


def operating_point(model: Predictor, h: int) -> HorizonPolicy | None:
    """A model's operating point at horizon h; None for a model without one (persistence)."""
    policy = getattr(model, "policy", None)
    return policy(h) if callable(policy) else None


def predictions_frame(models: dict[str, Predictor], ds: ModelDataset, split: str = TEST,
                      progress: Progress | None = None) -> pd.DataFrame:
    """Long frame of every model's predictions and the actuals over one split; progress counts
    (model, horizon) pairs."""
    rows = ds.mask(split)
    X = ds.X[rows]
    parts = []
    for name, model in models.items():
        for h in ds.horizons:
            pred = decide(model.predict(X, h), None) if operating_point(model, h) is None \
                else model.predict(X, h)
            frame = pd.DataFrame({
                "model": name, "horizon": h, "line_id": ds.line_id[rows],
                "timestamp": ds.timestamp[rows],
                **{f"actual_{t}": ds.target(t, h)[rows] for t in REGRESSION_TARGETS},
                "actual_state": ds.target("state", h)[rows].astype(int),
                **{f"pred_{t}": pred[t] for t in REGRESSION_TARGETS},
                "pred_state": pred["state"], "alarm": pred["alarm"],
                **{f"proba_{s}": pred["proba"][:, i] for i, s in enumerate(STATES)},
            })
            parts.append(frame)
            advance(progress, note=f"{name} h{h}")
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def state_alarm_figures(group: pd.DataFrame, h: int, threshold: float | None) -> dict:
    """The alarm figures of one model and horizon at its operating point (SPEC section 4):
    precision/recall of CRITICAL, false alarms per line per shift, lead time, Brier score."""
    alarm = group["alarm"] if "alarm" in group else group["pred_state"] == CRITICAL
    out = alarm_metrics(alarm.to_numpy(float), group["actual_state"].to_numpy(),
                        group["line_id"].to_numpy(), group["timestamp"].to_numpy(), h, 0.5)
    out["critical_threshold"] = threshold
    columns = [f"proba_{s}" for s in STATES]
    if not set(columns) <= set(group):
        return out | {"brier": None, "argmax_accuracy": None}
    proba, actual = group[columns].to_numpy(), group["actual_state"].to_numpy()
    # what taking the most probable class would score: the operating point trades it for recall
    argmax = classification_metrics(actual, proba.argmax(axis=1))["accuracy"]
    return out | {"brier": brier_score(proba, actual), "argmax_accuracy": argmax}


def evaluation_records(predictions: pd.DataFrame,
                       thresholds: dict[tuple[str, int], float | None] | None = None
                       ) -> list[dict]:
    """One record per model, horizon and target, in the SPEC's shape; state records carry the
    alarm figures at the model's operating point (`thresholds`: its CRITICAL threshold per
    model and horizon; None for the most probable class)."""
    records = []
    thresholds = thresholds or {}
    for (model, h), group in predictions.groupby(["model", "horizon"], sort=False):
        for t in REGRESSION_TARGETS:
            m = regression_metrics(group[f"actual_{t}"].to_numpy(), group[f"pred_{t}"].to_numpy())
            records.append({"model": model, "horizon": int(h), "target": t, **m})
        c = classification_metrics(group["actual_state"].to_numpy(), group["pred_state"].to_numpy())
        c |= state_alarm_figures(group, int(h), thresholds.get((model, int(h))))
        records.append({"model": model, "horizon": int(h), "target": "state", **c})
    order = {m: i for i, m in enumerate(MODEL_ORDER)}
    return sorted(records, key=lambda r: (order.get(r["model"], 99), r["horizon"],
                                          (*REGRESSION_TARGETS, "state").index(r["target"])))


def model_thresholds(models: dict[str, Predictor], horizons: tuple[int, ...]
                     ) -> dict[tuple[str, int], float | None]:
    """Each model's CRITICAL threshold per horizon (None without an operating point)."""
    return {(name, h): (p.critical_threshold if (p := operating_point(m, h)) else None)
            for name, m in models.items() for h in horizons}


def operating_points(models: dict[str, Predictor], horizons: tuple[int, ...]) -> list[dict]:
    """One row per model and horizon with an operating point: thresholds, calibration, the
    validation Brier score before and after calibration."""
    return [{"model": name, "horizon": h, **p.summary()}
            for name, m in models.items() for h in horizons
            if (p := operating_point(m, h)) is not None]


def refit_comparison(models: dict[str, Predictor], ds: ModelDataset) -> list[dict]:
    """Test MAE per model, horizon and target of the served regressors (after the refit: the
    blend of refitted and early-stopped, `mae_refit`) and of the early-stopped ones alone,
    what would be served without the refit (`mae_early_stopped`)."""
    rows = ds.mask(TEST)
    X = ds.X[rows]
    out = []
    for name, model in models.items():
        if not has_refit(model):
            continue
        for h in ds.horizons:
            early, served = model.predict(X, h, early=True), model.predict(X, h)
            for t in REGRESSION_TARGETS:
                y = ds.target(t, h)[rows]
                out.append({"model": name, "horizon": int(h), "target": t,
                            "mae_early_stopped": regression_metrics(y, early[t])["mae"],
                            "mae_refit": regression_metrics(y, served[t])["mae"]})
    return out


def has_refit(model: Predictor) -> bool:
    """Whether the model's served regressors were refitted (it keeps the early-stopped ones)."""
    if getattr(model, "early", None):
        return True
    members = getattr(model, "horizon_models", None) or getattr(model, "xgb", None) or {}
    return any(getattr(m, "early", None) for m in members.values())


def validation_score(model: Predictor, ds: ModelDataset) -> float:
    """Mean avg-MAE over horizons on the validation rows (lower is better), with the
    early-stopped regressors of a refitted model (the refit learnt from these rows)."""
    rows = ds.mask(VAL)
    early = {"early": True} if has_refit(model) else {}
    scores = [regression_metrics(ds.target("avg", h)[rows],
                                 model.predict(ds.X[rows], h, **early)["avg"])["mae"]
              for h in ds.horizons]
    return float(np.mean(scores))


def serving_latency_ms(model: Predictor, ds: ModelDataset, rows: int = 2, repeats: int = 7
                       ) -> float:
    """Median milliseconds to predict every horizon for `rows` lines: one typical API request."""
    X = ds.X[ds.mask(VAL)][:rows]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for h in ds.horizons:
            model.predict(X, h)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def best_on_validation(models: dict[str, Predictor], ds: ModelDataset,
                       latency_ms: dict[str, float] | None = None,
                       budget_ms: float | None = None) -> tuple[str, dict]:
    """The candidate with the lowest validation score among those whose serving latency is
    within budget (all of them when none is), and every candidate's score."""
    scores = {name: validation_score(m, ds) for name, m in models.items()}
    eligible = scores
    if latency_ms is not None and budget_ms is not None:
        eligible = {n: v for n, v in scores.items() if latency_ms[n] <= budget_ms} or scores
    return min(eligible, key=eligible.get), scores


def evaluation_document(ds: ModelDataset, records: list[dict], champion: dict) -> dict:
    """The evaluation.json document."""
    test = ds.mask(TEST)
    ts = ds.timestamp[test]
    return {
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "test_window": {"start": ts.min().isoformat() if test.any() else None,
                        "end": ts.max().isoformat() if test.any() else None,
                        "rows": int(test.sum())},
        "champion": {"name": champion.get("name", REGISTERED_MODEL_NAME),
                     "version": champion.get("version"), **{k: v for k, v in champion.items()
                                                             if k not in ("name", "version")}},
        "splits": split_summary(ds),
        "boundaries": ds.boundaries.astype(str).to_dict(orient="records"),
        "bars": V8_BARS,
        "results": records,
    }


def feature_importances(model: XgbModel) -> pd.DataFrame:
    """Total gain of each feature over each horizon's XGBoost models."""
    return pd.concat([pd.DataFrame({"feature": m.feature_names, "horizon": h, "gain": m.gain()})
                      for h, m in model.horizon_models.items()], ignore_index=True)


def summary_table(records: list[dict]) -> pd.DataFrame:
    """avg MAE / R2 and state accuracy / CRITICAL recall per model and horizon, plus the
    improvement of avg MAE over persistence in percent."""
    frame = pd.DataFrame(records)
    avg = frame[frame["target"] == "avg"].set_index(["model", "horizon"])[["mae", "r2"]]
    state = frame[frame["target"] == "state"].set_index(["model", "horizon"])
    out = avg.join(state[["accuracy"]])
    out["critical_recall"] = (state["critical_recall"] if "critical_recall" in state
                              else state["recall"].map(lambda r: r.get("CRITICAL")))
    pers = out.xs("persistence", level="model")["mae"] if "persistence" in out.index.levels[0] else None
    if pers is not None:
        out["vs_persistence_pct"] = [
            100.0 * (1 - row.mae / pers.get(h, np.nan)) for (m, h), row in out.iterrows()]
    return out.reset_index()


# the labelled table's rows: (label, evaluation target, column of summary_table)
LABELLED_METRICS = (("avg_mae", "mae"), ("avg_mae_vs_persistence_pct", "vs_persistence_pct"),
                    ("avg_r2", "r2"), ("state_accuracy", "accuracy"),
                    ("critical_recall", "critical_recall"))


def metrics_by_horizon(records: list[dict]) -> pd.DataFrame:
    """The key test metrics, one row per metric and horizon labelled with its target and horizon
    (avg_mae_h10: MAE in s of the avg target 10 minutes ahead), one column per model."""
    summary = summary_table(records)
    rows = {}
    for label, column in LABELLED_METRICS:
        if column not in summary:
            continue
        wide = summary.pivot(index="horizon", columns="model", values=column)
        for h in sorted(wide.index):
            rows[f"{label}_h{h}"] = wide.loc[h]
    frame = pd.DataFrame(rows).T
    order = [m for m in MODEL_ORDER if m in frame.columns]
    frame = frame[order + sorted(set(frame.columns) - set(order))]
    frame.columns.name = None
    return frame.rename_axis("metric")
