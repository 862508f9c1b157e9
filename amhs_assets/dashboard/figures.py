"""The plotly figures of the monitoring dashboard, no Dagster: each takes plain frames and
returns a figure, or None when there is nothing to draw (the page then says why).

Colours are Okabe-Ito (report.OKABE_ITO) and every series also differs by dash or marker
shape, so no reading depends on telling colours apart; times are the fab's wall clock.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from amhs_assets.contract import CRITICAL_THRESHOLD_S, WARNING_THRESHOLD_S
from amhs_assets.html import OKABE_ITO, on_grid

MAX_LINES = 12  # lines offered in the predicted-vs-actual menu (page weight grows with each)
TOP_COLUMNS = 10
HORIZON_COLOURS = (OKABE_ITO["blue"], OKABE_ITO["orange"], OKABE_ITO["green"], OKABE_ITO["purple"])
EVENT_MARKERS = {  # event -> (marker symbol, colour, label)
    "registered": ("circle-open", OKABE_ITO["black"], "registered"),
    "promoted": ("star", OKABE_ITO["green"], "promoted by the gate"),
    "manual_promote": ("diamond", OKABE_ITO["blue"], "promoted by hand"),
    "rollback": ("triangle-down", OKABE_ITO["orange"], "restored by rollback"),
    "rolled_back": ("x", OKABE_ITO["vermillion"], "rolled back"),
    "kept_champion": ("circle", OKABE_ITO["sky"], "gate: kept the champion"),
    "refused": ("square-open", OKABE_ITO["purple"], "gate: refused"),
    "rejected": ("x-open", OKABE_ITO["vermillion"], "failed the checks"),
}


def local(stamps: pd.Series, tz: str) -> pd.Series:
    """UTC timestamps as the fab's wall clock (naive), which plotly shows as they are, to the
    microsecond (plotly's datetimes hold no nanoseconds and would warn on each)."""
    stamps = pd.to_datetime(stamps, utc=True)
    return stamps.dt.tz_convert(tz).dt.tz_localize(None).dt.floor("us")


def _readable_span(fig: go.Figure, x: pd.Series) -> None:
    """At least two hours on a time axis: points of one run otherwise get sub-second ticks."""
    if len(x) and x.max() - x.min() < pd.Timedelta(hours=2):
        fig.update_xaxes(range=[x.min() - pd.Timedelta(hours=1), x.max() + pd.Timedelta(hours=1)])


def _wrap(text: str, width: int = 70) -> str:
    """Hover text in lines of at most `width` characters."""
    return "<br>".join(textwrap.wrap(str(text), width)) or "—"


def predicted_vs_actual(scored: pd.DataFrame, tz: str, hours: float = 24.0) -> go.Figure | None:
    """Per horizon (rows): actual avg over the next h minutes, predicted avg and the predicted
    min–max band over the last `hours`, one line at a time (menu)."""
    if scored.empty:
        return None
    end = scored["timestamp"].max()
    rows = scored[scored["timestamp"] > end - pd.Timedelta(hours=hours)]
    rows = rows.sort_values(["source", "model_version"]).drop_duplicates(
        ["line_id", "timestamp", "horizon"]).sort_values("timestamp")
    horizons = sorted(int(h) for h in rows["horizon"].unique())
    lines = sorted(rows["line_id"].unique())[:MAX_LINES]
    fig = make_subplots(rows=len(horizons), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[f"next {h} min" for h in horizons])
    for i, line in enumerate(lines):
        for j, h in enumerate(horizons):
            part = rows[(rows["line_id"] == line) & (rows["horizon"] == h)]
            x, y = on_grid(local(part["timestamp"], tz),  # whole seconds: the page's weight
                           part[["pred_min", "pred_max", "pred_avg", "actual_avg"]])
            first = j == 0
            for trace in (
                go.Scatter(**x, y=y["pred_max"], mode="lines", line_width=0, hoverinfo="skip",
                           showlegend=False, legendgroup="band"),
                go.Scatter(**x, y=y["pred_min"], mode="lines", line_width=0, fill="tonexty",
                           fillcolor="rgba(0,114,178,0.18)", name="predicted min–max",
                           legendgroup="band", showlegend=first),
                go.Scatter(**x, y=y["actual_avg"], mode="lines", name="actual avg",
                           line={"color": OKABE_ITO["black"], "width": 1.5},
                           legendgroup="actual", showlegend=first),
                go.Scatter(**x, y=y["pred_avg"], mode="lines", name="predicted avg",
                           line={"color": OKABE_ITO["blue"], "width": 1.5, "dash": "dot"},
                           legendgroup="pred", showlegend=first)):
                trace.visible = i == 0
                fig.add_trace(trace, row=j + 1, col=1)
        fig.update_yaxes(title_text="s", row=len(horizons), col=1)
    for j in range(len(horizons)):
        for level, colour in ((WARNING_THRESHOLD_S, "orange"), (CRITICAL_THRESHOLD_S, "vermillion")):
            fig.add_hline(y=level, line_dash="dash", line_width=1, line_color=OKABE_ITO[colour],
                          row=j + 1, col=1)
    per_line = 4 * len(horizons)
    buttons = [{"label": f"line {line}", "method": "update",
                "args": [{"visible": [k // per_line == i for k in range(per_line * len(lines))]}]}
               for i, line in enumerate(lines)]
    fig.update_layout(height=190 + 210 * len(horizons), hovermode="x unified",
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
                      updatemenus=[{"buttons": buttons, "x": 1, "xanchor": "right", "y": 1.08,
                                    "yanchor": "bottom"}] if len(lines) > 1 else [],
                      margin={"t": 90})
    fig.update_xaxes(title_text=f"time of the forecast ({tz})", row=len(horizons), col=1)
    return fig


def live_error(hourly: pd.DataFrame, margin: float, tz: str) -> go.Figure | None:
    """Per horizon (rows): hourly live avg MAE, the evaluated level and the check's limit."""
    if hourly.empty:
        return None
    horizons = sorted(int(h) for h in hourly["horizon"].unique())
    fig = make_subplots(rows=len(horizons), cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=[f"next {h} min" for h in horizons])
    for j, h in enumerate(horizons):
        part = hourly[hourly["horizon"] == h].sort_values("period_start")
        x, first = local(part["period_start"], tz), j == 0
        colour = HORIZON_COLOURS[j % len(HORIZON_COLOURS)]
        fig.add_trace(go.Scatter(x=x, y=part["mae_avg"].round(2), mode="lines+markers",
                                 marker={"size": 4}, line={"color": colour},
                                 name=f"live avg MAE, {h} min", customdata=part["rows"],
                                 hovertemplate="%{y:.1f} s (%{customdata} rows)<extra></extra>"),
                      row=j + 1, col=1)
        evaluated = part["evaluated_mae_avg"]
        fig.add_trace(go.Scatter(x=x, y=evaluated.round(2), mode="lines", name="evaluated level",
                                 line={"color": OKABE_ITO["black"], "dash": "dot"},
                                 legendgroup="evaluated", showlegend=first), row=j + 1, col=1)
        fig.add_trace(go.Scatter(x=x, y=(evaluated * (1 + margin)).round(2), mode="lines",
                                 name=f"check limit (evaluated +{100 * margin:g} %)",
                                 line={"color": OKABE_ITO["vermillion"], "dash": "dash", "width": 1},
                                 legendgroup="limit", showlegend=first), row=j + 1, col=1)
        fig.update_yaxes(title_text="MAE (s)", rangemode="tozero", row=j + 1, col=1)
    fig.update_layout(height=170 + 190 * len(horizons),
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
                      margin={"t": 90})
    fig.update_xaxes(title_text=f"hour ({tz})", row=len(horizons), col=1)
    return fig


def drift_share(history: pd.DataFrame, threshold: float | None, tz: str) -> go.Figure | None:
    """Share of drifted (line, column) pairs at each drift report, with the drift threshold."""
    if history.empty:
        return None
    history = history.sort_values("measured_at")
    detected = history["drift_detected"].astype(bool)
    x = local(history["measured_at"], tz)
    fig = go.Figure(go.Scatter(
        x=x, y=history["share_drifted"].round(3),
        mode="lines+markers", line={"color": OKABE_ITO["blue"]},
        marker={"size": 9, "symbol": np.where(detected, "x", "circle").tolist(),
                "color": np.where(detected, OKABE_ITO["vermillion"], OKABE_ITO["blue"]).tolist()},
        text=np.where(detected, "drift", "no drift"), name="share drifted",
        hovertemplate="%{y:.2f}: %{text}<extra></extra>"))
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dash", line_color=OKABE_ITO["vermillion"],
                      annotation_text=f"drift at {threshold:g}", annotation_position="top left")
    top = max(float(history["share_drifted"].max()), threshold or 0.0) * 1.25 or 1.0
    fig.update_layout(height=340, xaxis_title=f"report time ({tz})",
                      yaxis={"title": "share of drifted pairs", "range": [-0.03 * top, top]},
                      title="Drift share per report (✕ = drift)")
    _readable_span(fig, x)
    return fig


def drifted_columns(drift: dict, top: int = TOP_COLUMNS) -> go.Figure | None:
    """The columns closest to (or over) their drift threshold in the latest report."""
    columns = (drift or {}).get("columns") or {}
    rows = [{"column": name, "ratio": c["score"] / c["threshold"] if c.get("threshold") else np.nan,
             "drifted": bool(c.get("drifted")), "lines": ", ".join(c.get("lines_drifted") or [])}
            for name, c in columns.items()]
    frame = pd.DataFrame(rows).dropna(subset=["ratio"]) if rows else pd.DataFrame()
    if frame.empty:
        return None
    frame = frame.nlargest(top, "ratio").iloc[::-1]
    label = np.where(frame["drifted"], "drifted", "ok")
    fig = go.Figure(go.Bar(
        x=frame["ratio"].round(3), y=frame["column"], orientation="h", text=label,
        textposition="outside", marker_color=np.where(frame["drifted"], OKABE_ITO["vermillion"],
                                                      OKABE_ITO["sky"]).tolist(),
        marker_pattern_shape=np.where(frame["drifted"], "/", "").tolist(),
        customdata=frame["lines"], hovertemplate="%{y}: %{x:.2f} × threshold, %{text} "
                                                 "%{customdata}<extra></extra>"))
    fig.add_vline(x=1.0, line_dash="dash", line_color=OKABE_ITO["black"],
                  annotation_text="threshold", annotation_position="top")
    fig.update_layout(height=340, title=f"Most drifted columns (top {len(frame)})",
                      xaxis_title="score / threshold (worst line)", yaxis={"automargin": True})
    return fig


def version_timeline(events: pd.DataFrame, tz: str) -> go.Figure | None:
    """Registrations, gate decisions, manual moves and rollbacks per version over time."""
    if events.empty:
        return None
    fig = go.Figure()
    order = sorted(events["version"].unique(), key=lambda v: int(v) if str(v).isdigit() else 0)
    for event, (symbol, colour, label) in EVENT_MARKERS.items():
        part = events[events["event"] == event]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=local(part["at"], tz), y=[f"v{v}" for v in part["version"]], mode="markers",
            name=label, marker={"symbol": symbol, "size": 13, "color": colour,
                                "line": {"width": 2, "color": colour}},
            text=[_wrap(f"{r.kind} · {r.reason}") for r in part.itertuples()],
            hovertemplate="%{y} " + label + "<br>%{x}<br>%{text}<extra></extra>"))
    fig.update_layout(height=200 + 28 * len(order), xaxis_title=f"time ({tz})",
                      yaxis={"categoryorder": "array", "categoryarray": [f"v{v}" for v in order]},
                      legend={"orientation": "h", "y": -0.35}, margin={"t": 30})
    _readable_span(fig, local(events["at"], tz))
    return fig


def quarantine_per_day(per_day: pd.DataFrame, tz: str) -> go.Figure | None:
    """Rows quarantined per fab-local day (by the timestamp the row carried)."""
    if per_day.empty:
        return None
    fig = go.Figure(go.Bar(x=per_day["day"], y=per_day["rows"], marker_color=OKABE_ITO["orange"],
                           hovertemplate="%{x}: %{y} rows<extra></extra>", name="quarantined"))
    fig.update_layout(height=320, title="Rows quarantined per day",
                      xaxis={"title": f"day ({tz})", "type": "category"},
                      yaxis={"title": "rows", "rangemode": "tozero"})
    return fig


HORIZON_PATTERNS = ("", "/", "x", ".")
EXPLAINED = {"CRITICAL": "CRITICAL score (log-odds)", "avg": "avg change (s)"}


def explanation_figure(importance: pd.DataFrame, top: int = TOP_COLUMNS) -> go.Figure | None:
    """The raw columns that move the forecasts most (mean |contribution| over the rows,
    models.explain.global_importance of each horizon concatenated): the CRITICAL score and
    the avg change side by side, one bar per horizon."""
    if importance.empty:
        return None
    share = importance.groupby("column")[list(EXPLAINED)].mean()
    share = share / share.sum().where(share.sum() > 0, 1.0)  # each output's share, then both
    order = share.sum(axis=1).nlargest(top).index[::-1].tolist()  # the largest at the top
    horizons = sorted(importance["horizon"].unique())
    fig = make_subplots(rows=1, cols=len(EXPLAINED), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[f"mean |contribution| to the {t}" for t in EXPLAINED.values()])
    for i, h in enumerate(horizons):
        part = importance[importance["horizon"] == h].set_index("column").reindex(order)
        for col, output in enumerate(EXPLAINED, start=1):
            fig.add_trace(go.Bar(
                x=part[output].round(4), y=order, orientation="h", name=f"next {h} min",
                legendgroup=str(h), showlegend=col == 1,
                marker_color=HORIZON_COLOURS[i % len(HORIZON_COLOURS)],
                marker_pattern_shape=HORIZON_PATTERNS[i % len(HORIZON_PATTERNS)],
                hovertemplate=f"%{{y}}, next {h} min: %{{x:.3g}}<extra></extra>"), row=1, col=col)
    fig.update_layout(height=160 + 26 * len(order) * max(1, len(horizons)) // 2,
                      title=f"What moves the forecasts: top {len(order)} raw columns",
                      barmode="group", legend={"orientation": "h", "y": -0.12},
                      yaxis={"automargin": True})
    return fig
