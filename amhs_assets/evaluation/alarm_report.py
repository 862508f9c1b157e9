"""The alarm sections of the evaluation report: the operating points and the figures operators
live by (CRITICAL precision/recall at the threshold, false alarms per line and shift, lead
time), PR curves of P(CRITICAL) with the chosen point marked, reliability diagrams, and the
refit's test MAE with and without it. Pure functions over evaluation.json and prediction frames.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from amhs_assets.html import esc, note

RELIABILITY_BINS = 10
PR_POINTS = 200  # points kept per PR curve (the curve has one per distinct probability)


def _fmt(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "<td>—</td>"
    return f"<td>{value:{fmt}}</td>"


def alarm_table(results: pd.DataFrame, table: Callable, name_cell: Callable,
                sort: Callable) -> str:
    """Per horizon and model: the operating point and the alarm figures of evaluation.json."""
    rows = results[results["target"] == "state"] if "target" in results else results
    if rows.empty or "critical_recall" not in rows:
        return note("No alarm figures were recorded (models without operating points).")
    body = []
    for h in sorted(rows["horizon"].unique()):
        for rec in sort(rows[rows["horizon"] == h]).to_dict("records"):
            body.append([name_cell(f"{int(h)} min"), name_cell(rec["model"]),
                         _fmt(rec.get("critical_threshold"), ".3f"),
                         _fmt(rec.get("critical_precision"), ".1%"),
                         _fmt(rec.get("critical_recall"), ".1%"),
                         _fmt(rec.get("false_alarms_per_shift"), ".2f"),
                         _fmt(rec.get("lead_time_median_min"), ".0f"),
                         _fmt(rec.get("caught_5min_share"), ".1%"),
                         _fmt(rec.get("critical_episodes"), ".0f"),
                         _fmt(rec.get("brier"), ".4f")])
    return table(["horizon", "model", "CRITICAL threshold", "precision", "recall",
                  "false alarms / line / shift", "median lead time (min)",
                  "episodes caught ≥ 5 min ahead", "CRITICAL episodes", "Brier"], 2, body)


def operating_point_table(points: list[dict], table: Callable, name_cell: Callable) -> str:
    """How each model's operating points were chosen on the validation rows."""
    if not points:
        return ""
    body = [[name_cell(p["model"]), name_cell(f"{p['horizon']} min"),
             name_cell(f"{p['target']} {p['target_value']:g}"), name_cell(p["calibration"]),
             _fmt(p.get("critical_threshold"), ".3f"), _fmt(p.get("warning_threshold"), ".3f"),
             _fmt(p.get("val_brier_raw"), ".4f"), _fmt(p.get("val_brier"), ".4f")]
            for p in points]
    return table(["model", "horizon", "target", "calibration", "CRITICAL threshold",
                  "WARNING threshold", "val Brier raw", "val Brier calibrated"], 4, body)


def refit_table(rows: list[dict], table: Callable, name_cell: Callable) -> str:
    """Test MAE of the early-stopped regressors and of the served ones (after the refit: the
    blend of refitted and early-stopped)."""
    if not rows:
        return note("No model was refitted (alarms.refit is off).")
    frame = pd.DataFrame(rows)
    worse = frame["mae_refit"] > frame["mae_early_stopped"] + 1e-9
    body = [[name_cell(r["model"]), name_cell(f"{r['horizon']} min"), name_cell(r["target"]),
             _fmt(r["mae_early_stopped"], ".3f"), _fmt(r["mae_refit"], ".3f"),
             _fmt(100 * (1 - r["mae_refit"] / r["mae_early_stopped"])
                  if r["mae_early_stopped"] else None, "+.1f")]
            for r in frame.to_dict("records")]
    verdict = (f'<p class="pass">The refit lowers or keeps the test MAE in all {len(frame)} '
               "cells.</p>" if not worse.any() else
               f'<p class="fail">The refit raises the test MAE in {int(worse.sum())} of '
               f"{len(frame)} cells.</p>")
    return verdict + table(["model", "horizon", "target", "MAE early-stopped (s)",
                            "MAE served, with the refit (s)", "gain %"], 3, body)


def _pr_curve(p: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and threshold at each distinct probability (highest first), thinned."""
    known = ~np.isnan(p)
    p, y = p[known], positive[known]
    if not y.any():
        return np.array([]), np.array([]), np.array([])
    order = np.argsort(-p, kind="stable")
    ps, hits = p[order], np.cumsum(y[order])
    last = np.r_[ps[1:] != ps[:-1], True]
    precision = hits[last] / (np.flatnonzero(last) + 1)
    recall = hits[last] / y.sum()
    keep = np.unique(np.linspace(0, last.sum() - 1, min(PR_POINTS, last.sum())).astype(int))
    return precision[keep], recall[keep], ps[last][keep]


def pr_figure(frame: pd.DataFrame, points: dict[tuple[str, int], float | None], h: int,
              colours: dict[str, str], title: str) -> str:
    """PR curves of P(CRITICAL) per model at horizon h, each with its operating point."""
    part = frame[frame["horizon"] == h]
    if part.empty:
        return note(f"Horizon {h} min: no predictions.")
    fig = go.Figure()
    for model, rows in part.groupby("model", sort=False):
        p = rows["proba_CRITICAL"].to_numpy(float)
        y = rows["actual_state"].to_numpy() == 2
        labelled = rows["actual_state"].to_numpy() >= 0
        precision, recall, cut = _pr_curve(np.where(labelled, p, np.nan), y)
        if not len(precision):
            continue
        colour = colours.get(model)
        fig.add_trace(go.Scatter(x=recall.round(4), y=precision.round(4), mode="lines",
                                 name=model, line={"color": colour}, customdata=cut.round(4),
                                 hovertemplate="threshold %{customdata:.3f}<br>recall %{x:.2f}"
                                               "<br>precision %{y:.2f}<extra>" + esc(model)
                                               + "</extra>"))
        t = points.get((model, h))
        if t is not None:
            alarm = (p >= t) & labelled
            tp = float((alarm & y).sum())
            fig.add_trace(go.Scatter(
                x=[tp / max(y.sum(), 1)], y=[tp / max(alarm.sum(), 1)], mode="markers",
                marker={"color": colour, "size": 11, "symbol": "star"},
                name=f"{model} operating point", showlegend=False,
                hovertemplate=f"{esc(model)} operating point (threshold {t:.3f})<br>"
                              "recall %{x:.2f}<br>precision %{y:.2f}<extra></extra>"))
    fig.update_layout(title=f"Horizon {h} min · {title} · ★ operating point", height=360,
                      xaxis={"title": "CRITICAL recall", "range": [0, 1]},
                      yaxis={"title": "CRITICAL precision", "range": [0, 1.02]})
    return fig.to_html(full_html=False, include_plotlyjs=False)


def reliability_figure(frame: pd.DataFrame, h: int, colours: dict[str, str]) -> str:
    """Per model: the observed CRITICAL share against the predicted P(CRITICAL), in bins of
    predicted probability (a calibrated model lies on the diagonal), on the validation rows."""
    part = frame[(frame["horizon"] == h) & (frame["actual_state"] >= 0)]
    if part.empty:
        return note(f"Horizon {h} min: no labelled validation rows.")
    fig = make_subplots(rows=1, cols=1)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect",
                             line={"color": "#999", "dash": "dot"}))
    edges = np.linspace(0, 1, RELIABILITY_BINS + 1)
    for model, rows in part.groupby("model", sort=False):
        p = rows["proba_CRITICAL"].to_numpy(float)
        y = (rows["actual_state"].to_numpy() == 2).astype(float)
        bins = np.clip(np.digitize(p, edges[1:-1]), 0, RELIABILITY_BINS - 1)
        count = np.bincount(bins, minlength=RELIABILITY_BINS)
        seen = count > 0
        mean_p = np.bincount(bins, p, RELIABILITY_BINS)[seen] / count[seen]
        share = np.bincount(bins, y, RELIABILITY_BINS)[seen] / count[seen]
        fig.add_trace(go.Scatter(x=mean_p, y=share, mode="lines+markers", name=model,
                                 line={"color": colours.get(model)}, customdata=count[seen],
                                 hovertemplate="predicted %{x:.2f}<br>observed %{y:.2f}"
                                               "<br>%{customdata} rows<extra>" + esc(model)
                                               + "</extra>"))
    fig.update_layout(title=f"Horizon {h} min · reliability of P(CRITICAL), validation rows",
                      height=340, xaxis={"title": "predicted P(CRITICAL)", "range": [0, 1]},
                      yaxis={"title": "observed CRITICAL share", "range": [0, 1.02]})
    return fig.to_html(full_html=False, include_plotlyjs=False)
