"""Evaluation metrics in numpy: regression (MAE, RMSE, R2) and 3-class state metrics."""

from __future__ import annotations

import numpy as np

from amhs_assets.contract import STATES


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R2 over the pairs where both sides are known."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ok = ~(np.isnan(y_true) | np.isnan(y_pred))
    t, p = y_true[ok], y_pred[ok]
    if len(t) == 0:
        return {"mae": float("nan"), "rmse": float("nan"), "r2": float("nan"), "n": 0}
    err = p - t
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(ss_res / len(t))),
            "r2": r2, "n": int(len(t))}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(STATES)) -> np.ndarray:
    """Confusion matrix, rows = actual class, columns = predicted class; -1 codes are skipped."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    ok = (y_true >= 0) & (y_pred >= 0)
    flat = y_true[ok] * n_classes + y_pred[ok]
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def macro_f1(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Macro-F1 over the classes present in truth or prediction (NaN when none is), from counts
    per class on the last axis: true positives, predicted and actual rows of each class. The one
    definition of the evaluation and of live monitoring (one group or many groups at once)."""
    tp, predicted, actual = (np.asarray(a, float) for a in (tp, predicted, actual))
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.nan_to_num(np.where(actual > 0, tp / actual, np.nan))
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (actual > 0) | (predicted > 0)
    counted = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, (f1 * present).sum(axis=-1) / counted, np.nan)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, macro-F1 (over classes present in truth or prediction), recall per state."""
    cm = confusion(y_true, y_pred)
    total = cm.sum()
    tp = np.diag(cm).astype(float)
    actual, predicted = cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(actual > 0, tp / actual, np.nan)
    return {
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "macro_f1": float(macro_f1(tp, predicted, actual)),
        "recall": {s: (None if np.isnan(r) else float(r)) for s, r in zip(STATES, recall)},
        "confusion_matrix": cm.tolist(),
        "n": int(total),
    }
