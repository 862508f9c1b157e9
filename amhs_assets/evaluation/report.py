"""The human-readable evaluation report: one HTML page with plotly figures that loads the reports
folder's shared plotly.js (html.write_page puts it beside the page).

Pure functions, no Dagster: the evaluation asset hands over evaluation.json (SPEC section 4),
the test-window predictions and the feature importances, and writes the string this returns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from amhs_assets.contract import (
    CRITICAL_THRESHOLD_S,
    REGRESSION_TARGETS,
    STATES,
    WARNING_THRESHOLD_S,
)
from amhs_assets.dashboard.figures import explanation_figure
from amhs_assets.evaluation.alarm_report import (
    alarm_table,
    operating_point_table,
    pr_figure,
    refit_table,
    reliability_figure,
)
from amhs_assets.evaluation.acceptance_report import CSS as ACCEPTANCE_CSS
from amhs_assets.evaluation.acceptance_report import acceptance_html
from amhs_assets.evaluation.evaluate import MODEL_ORDER, V8_BARS
from amhs_assets.html import (
    NO_FAVICON,
    OKABE_ITO,
    check_timezone,
    esc,
    local_time,
    note,
    num,
    on_grid,
    plotly_script,
)

MODEL_COLOURS = {"persistence": OKABE_ITO["black"], "xgb": OKABE_ITO["blue"],
                 "unified": OKABE_ITO["orange"], "ensemble": OKABE_ITO["green"],
                 "champion": OKABE_ITO["purple"]}
SECTION_TITLES: dict[str, str] = {
    "acceptance": "Acceptance", "summary": "Summary of metrics",
    "day": "Predicted vs actual over one test day",
    "residuals": "Residual distribution", "confusion": "Confusion matrices",
    "importance": "Feature importance", "alarms": "CRITICAL alarms at the operating points",
    "pr": "Precision-recall of P(CRITICAL), test window",
    "reliability": "Calibration: reliability of P(CRITICAL)",
    "refit": "Refit on training + validation rows",
    "explain": "What moves the forecasts (the champion's explanations, test window)",
    "howto": "How to read this report"}
MAX_LINES_IN_DAY_PLOT = 20
TOP_FEATURES = 20
# the fab's V8 figures, shown as a reference beside ours (their metric is the fab's own)
REFERENCE_CELLS = {"mae": "&lt; {v:g}", "r2": "&gt; {v:g}", "accuracy": "&gt; {v:.0%}"}
REFERENCE_LABELS = {"mae": "MAE < {v:g} s", "r2": "R² > {v:g}", "accuracy": "accuracy > {v:.0%}"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1a1a1a}
.page{max-width:1200px;margin:0 auto;padding:16px 24px}h1{font-size:1.6em}
h2{border-bottom:2px solid #0072B2;padding-bottom:4px;margin-top:2em}.muted{color:#666;font-size:.9em}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eef3f8}
td.name,th.name{text-align:left}tr.reference td{color:#555;background:#f4f4f4;font-style:italic}
.best{text-decoration:underline}.note{background:#fff8e1;border-left:4px solid #E69F00;padding:6px 10px}
"""


def _model_sort_key(model: str) -> tuple[int, str]:
    """Known models in their usual order, others after them alphabetically."""
    return (MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER), model)


def _horizons(values: pd.Series) -> list[int]:
    """The distinct horizons of a column, sorted, as ints."""
    return sorted({int(h) for h in values.dropna()})


def _figure_html(fig: go.Figure) -> str:
    """A figure as a div that relies on the shared plotly.js."""
    fig.update_layout(template="plotly_white", margin={"l": 60, "r": 20, "t": 60, "b": 50})
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def improvement_pct(mae: Any, baseline_mae: Any) -> float | None:
    """MAE improvement over the baseline in percent (positive = better); None if undefined."""
    mae, baseline_mae = num(mae), num(baseline_mae)
    if mae is None or baseline_mae is None or baseline_mae == 0:
        return None
    return (baseline_mae - mae) / baseline_mae * 100.0


def _metric_cell(value: Any, fmt: str, best: bool = False) -> str:
    """A table cell with the value (underlined when best); '—' without one."""
    number = num(value)
    if number is None:
        return "<td>—</td>"
    text = format(number, fmt)
    return f'<td class="best">{text}</td>' if best else f"<td>{text}</td>"


def _reference_row(columns: list[str], reference: dict[str, float]) -> list[str] | None:
    """The fab's V8 figures under our metrics, neutral grey: a reference, not a verdict."""
    if not reference:
        return None
    cells = [f"<td>{REFERENCE_CELLS[c].format(v=reference[c])}</td>"
             if c in reference and c in REFERENCE_CELLS else "<td></td>" for c in columns]
    return ['<td class="name" colspan="2">fab V8 (reference, fab metric)</td>', *cells]


def _champion_label(champion: dict | None) -> str:
    """Registered name, version and the model it serves, as far as known."""
    if not champion:
        return "none"
    label = esc(champion.get("name") or "unnamed")
    version = champion.get("version")
    label += f" v{esc(version)}" if version is not None else " (not registered)"
    return label + (f" · serves {esc(champion['source'])}" if champion.get("source") else "")


def _header_html(evaluation: dict, timezone: str) -> str:
    """Generation time, test window, champion and split sizes."""
    window = evaluation.get("test_window") or {}
    rows = ["<h1>AMHS model evaluation</h1>",
            f"<p>Generated {local_time(evaluation.get('generated_at'), timezone)} · times in "
            f"<b>{esc(timezone)}</b></p>",
            f"<p>Test window: {local_time(window.get('start'), timezone)} → "
            f"{local_time(window.get('end'), timezone)} ({esc(window.get('rows', '—'))} rows) · "
            f"champion: <b>{_champion_label(evaluation.get('champion'))}</b></p>"]
    splits = evaluation.get("splits") or {}
    if splits:
        rows.append(_table(["split", "rows", "start", "end"], 1, [
            [_name_cell(name), f"<td>{esc(s.get('rows', '—'))}</td>",
             f"<td>{local_time(s.get('start'), timezone)}</td>",
             f"<td>{local_time(s.get('end'), timezone)}</td>"] for name, s in splits.items()]))
    return "\n".join(rows)


def _results_frame(evaluation: dict) -> pd.DataFrame:
    """The result records as a frame, one row per model, horizon and target."""
    frame = pd.DataFrame(evaluation.get("results") or [])
    if frame.empty or not {"model", "horizon", "target"} <= set(frame.columns):
        return pd.DataFrame(columns=["model", "horizon", "target"])
    return frame


def _name_cell(text: Any) -> str:
    """A left-aligned text cell."""
    return f'<td class="name">{esc(text)}</td>'


def _table(headers: list[str], n_names: int, rows: list[list[str]],
           reference: list[str] | None = None) -> str:
    """An HTML table (the first n_names columns are text) in a scrollable box, with a grey
    reference row under it when given; '' without rows."""
    head = "".join(f'<th class="name">{h}</th>' if i < n_names else f"<th>{h}</th>"
                   for i, h in enumerate(headers))
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    if rows and reference:
        body += f'<tr class="reference">{"".join(reference)}</tr>'
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>' if rows else ""


def _by_model(rows: pd.DataFrame) -> pd.DataFrame:
    """Result rows in the usual model order."""
    return rows.sort_values("model", key=lambda s: s.map(_model_sort_key))


def _regression_table(rows: pd.DataFrame, reference: dict[str, float]) -> str:
    """Per target and model: MAE, RMSE, R², improvement vs persistence; the V8 reference under."""
    body = []
    for target in [t for t in REGRESSION_TARGETS if t in set(rows["target"])]:
        part = _by_model(rows[rows["target"] == target])
        base = part.loc[part["model"] == "persistence", "mae"]
        base_mae = base.iloc[0] if len(base) else None
        best_mae = min((m for m in map(num, part["mae"]) if m is not None), default=None)
        for rec in part.to_dict("records"):
            mae = num(rec.get("mae"))
            gain = None if rec["model"] == "persistence" else improvement_pct(mae, base_mae)
            body.append([_name_cell(target), _name_cell(rec["model"]),
                         _metric_cell(mae, ".2f", mae is not None and mae == best_mae),
                         _metric_cell(rec.get("rmse"), ".2f"), _metric_cell(rec.get("r2"), ".3f"),
                         f"<td>{gain:+.1f} %</td>" if gain is not None else "<td>—</td>",
                         f"<td>{esc(rec.get('n', '—'))}</td>"])
    return _table(["target", "model", "MAE (s)", "RMSE (s)", "R²", "MAE vs persistence", "n"], 2,
                  body, _reference_row(["mae", "rmse", "r2", "gain", "n"], reference))


def _state_table(rows: pd.DataFrame, reference: dict[str, float]) -> str:
    """Per model: accuracy, macro-F1 and CRITICAL recall at its operating point, and the
    accuracy of the most probable class beside them; the V8 reference under."""
    body = []
    for rec in _by_model(rows[rows["target"] == "state"]).to_dict("records"):
        recall = rec.get("recall") if isinstance(rec.get("recall"), dict) else {}
        body.append([_name_cell("state"), _name_cell(rec["model"]),
                     _metric_cell(rec.get("accuracy"), ".1%"),
                     _metric_cell(rec.get("macro_f1"), ".3f"),
                     _metric_cell(recall.get("CRITICAL"), ".1%"),
                     _metric_cell(rec.get("argmax_accuracy"), ".1%"),
                     f"<td>{esc(rec.get('n', '—'))}</td>"])
    return _table(["target", "model", "accuracy", "macro-F1", "CRITICAL recall",
                   "accuracy, most probable class", "n"], 2, body,
                  _reference_row(["accuracy", "macro_f1", "recall", "argmax", "n"], reference))


def reference_note(reference: dict[str, float]) -> str:
    """What the fab's V8 figures are, and why they are a reference here and not a bar."""
    figures = ", ".join(REFERENCE_LABELS[k].format(v=v) for k, v in reference.items()
                        if k in REFERENCE_LABELS)
    return (f'<p class="muted" id="v8-reference">Reference, not a verdict: the fab\'s V8 model '
            f"reached {esc(figures)} (grey rows), measured on the fab's own metric, lines and "
            "data. Our figures are on the simulated metric, which differs, so the two are not "
            "comparable one to one: nothing here is marked pass or fail against V8. Underlined: "
            "the lowest MAE of its target.</p>")


def _summary_html(results: pd.DataFrame, reference: dict[str, float]) -> str:
    """One regression table and one state table per horizon, under the V8 reference note."""
    parts = [f"<h2>{SECTION_TITLES['summary']}</h2>", reference_note(reference)]
    if results.empty:
        return "\n".join([*parts, note("No evaluation results were recorded.")])
    for horizon in _horizons(results["horizon"]):
        rows = results[results["horizon"] == horizon]
        parts += [f"<h3>Horizon {horizon} min</h3>", _regression_table(rows, reference),
                  _state_table(rows, reference)]
    return "\n".join(parts)


def last_full_day(timestamps: pd.Series) -> pd.Timestamp | None:
    """Midnight of the last calendar day the timestamps cover from start to end, if any."""
    stamps = pd.Series(pd.to_datetime(timestamps).dropna().unique()).sort_values()
    if len(stamps) < 2:
        return None
    step = stamps.diff().dropna().min()
    first, last = stamps.iloc[0], stamps.iloc[-1]
    for day in sorted(stamps.dt.normalize().unique(), reverse=True):
        if first <= day and last >= day + pd.Timedelta(days=1) - step:
            return pd.Timestamp(day)
    return None


def _plotted_model(preds: pd.DataFrame, results: pd.DataFrame, horizon: int) -> str | None:
    """The champion if it has predictions, else the available model with the lowest avg MAE."""
    available = set(preds["model"])
    if "champion" in available:
        return "champion"
    ranked: list[str] = []
    if "mae" in results.columns:
        rows = results[(results["horizon"] == horizon) & (results["target"] == "avg")]
        ranked = [m for m in rows.sort_values("mae")["model"] if m in available and m != "persistence"]
    others = sorted(available, key=lambda m: (m == "persistence", _model_sort_key(m)))
    return ([*ranked, *others] or [None])[0]


def _day_traces(part: pd.DataFrame, model: str, visible: bool) -> list[go.Scatter]:
    """Band, actual and predicted traces of one line."""
    x, part = on_grid(part["local"], part[["pred_min", "pred_max", "actual_avg", "pred_avg"]])
    return [go.Scatter(**x, y=part["pred_max"], mode="lines", line_width=0, showlegend=False,
                       hoverinfo="skip", visible=visible),
            go.Scatter(**x, y=part["pred_min"], mode="lines", line_width=0, fill="tonexty",
                       fillcolor="rgba(0,114,178,0.2)", name=f"{model} predicted min–max",
                       visible=visible),
            go.Scatter(**x, y=part["actual_avg"], mode="lines", line_color=OKABE_ITO["black"],
                       name="actual avg", visible=visible),
            go.Scatter(**x, y=part["pred_avg"], mode="lines", line_color=OKABE_ITO["blue"],
                       line_dash="dot", name=f"{model} predicted avg", visible=visible)]


def _line_menu(lines: list[str], title: str) -> list[dict]:
    """A dropdown that shows one line's four traces at a time."""
    if len(lines) < 2:
        return []
    buttons = [{"label": str(line), "method": "update",
                "args": [{"visible": [j // 4 == i for j in range(4 * len(lines))]},
                         {"title": f"{title} · line {line}"}]} for i, line in enumerate(lines)]
    return [{"buttons": buttons, "x": 1, "xanchor": "right", "y": 1.15}]


def _one_day(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows of the last full local day (else the last 24 h) and a label for it."""
    day = last_full_day(rows["local"])
    start = day if day is not None else rows["local"].max() - pd.Timedelta(days=1)
    rows = rows[(rows["local"] >= start) & (rows["local"] < start + pd.Timedelta(days=1))]
    return rows, f"{start:%Y-%m-%d}" if day is not None else "last 24 h (no full day in the window)"


def _day_figure(preds: pd.DataFrame, results: pd.DataFrame, horizon: int, timezone: str) -> str:
    """Actual avg, predicted avg and min–max band over the last full test day, line selectable."""
    preds = preds[preds["horizon"] == horizon]
    model = _plotted_model(preds, results, horizon)
    if model is None:
        return note(f"Horizon {horizon} min: no predictions to plot.")
    local = preds["timestamp"].dt.tz_convert(timezone).dt.tz_localize(None)  # wall clock for plotly
    rows, label = _one_day(preds.assign(local=local)[preds["model"] == model])
    lines = sorted(rows["line_id"].unique())[:MAX_LINES_IN_DAY_PLOT]
    if not lines:
        return note(f"Horizon {horizon} min: no {model} predictions with a timestamp.")
    fig = go.Figure()
    for i, line in enumerate(lines):
        fig.add_traces(_day_traces(rows[rows["line_id"] == line].sort_values("local"), model, i == 0))
    for level, colour in ((WARNING_THRESHOLD_S, "orange"), (CRITICAL_THRESHOLD_S, "vermillion")):
        fig.add_hline(y=level, line_dash="dash", line_color=OKABE_ITO[colour], line_width=1)
    title = f"Horizon {horizon} min · {label}"
    fig.update_layout(title=f"{title} · line {lines[0]}", height=420, xaxis_title=f"time ({timezone})",
                      yaxis_title="transfer time avg (s)", legend={"orientation": "h", "y": -0.2},
                      updatemenus=_line_menu(lines, title))
    return _figure_html(fig)


def _residual_figure(preds: pd.DataFrame, horizon: int) -> str:
    """Step histograms of pred_avg − actual_avg, one per model, on shared bins."""
    preds = preds[preds["horizon"] == horizon]
    residuals = {m: r for m, g in preds.groupby("model")
                 if len(r := (g["pred_avg"] - g["actual_avg"]).dropna().to_numpy())}
    if not residuals:
        return note(f"Horizon {horizon} min: no residuals (no predictions with a known actual).")
    low, high = np.quantile(np.concatenate(list(residuals.values())), [0.005, 0.995])
    edges = np.linspace(low, high if high > low else low + 1.0, 61)
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    for model in sorted(residuals, key=_model_sort_key):
        values = residuals[model]
        counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
        fig.add_trace(go.Scatter(x=centres, y=counts / len(values) * 100, mode="lines",
                                 line_shape="hvh", line_color=MODEL_COLOURS.get(model, OKABE_ITO["sky"]),
                                 name=f"{model} (median {np.median(values):+.1f} s, n={len(values)})"))
    fig.add_vline(x=0, line_color="#999", line_width=1)
    fig.update_layout(title=f"Horizon {horizon} min · residual = predicted − actual avg",
                      height=380, xaxis_title="residual (s); tails clipped into the end bins",
                      yaxis_title="% of rows")
    return _figure_html(fig)


def _confusion_matrices(results: pd.DataFrame, horizon: int) -> dict[str, np.ndarray]:
    """The 3×3 count matrices of evaluation.json per model, in the usual model order."""
    if "confusion_matrix" not in results:
        return {}
    rows = _by_model(results[(results["horizon"] == horizon) & (results["target"] == "state")])
    return {model: np.asarray(matrix, dtype=float)
            for model, matrix in zip(rows["model"], rows["confusion_matrix"])
            if np.shape(matrix) == (len(STATES), len(STATES))}


def _confusion_figure(matrices: dict[str, np.ndarray], horizon: int) -> str:
    """Heatmaps side by side: colour and % by actual row, with the raw count."""
    if not matrices:
        return note(f"Horizon {horizon} min: no state results to show.")
    fig = make_subplots(rows=1, cols=len(matrices), subplot_titles=list(matrices),
                        horizontal_spacing=0.04)
    for i, (model, counts) in enumerate(matrices.items(), start=1):
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0) * 100
        fig.add_trace(go.Heatmap(z=share, x=list(STATES), y=list(STATES), text=counts.astype(int),
                                 texttemplate="%{text}<br>%{z:.0f}%", coloraxis="coloraxis",
                                 hovertemplate="actual %{y}<br>predicted %{x}<br>%{text} rows, %{z:.1f}%"
                                               "<extra></extra>"), row=1, col=i)
        fig.update_yaxes(autorange="reversed", showticklabels=i == 1, row=1, col=i)
    fig.update_layout(title=f"Horizon {horizon} min · rows actual, columns predicted", height=340,
                      coloraxis={"colorscale": "Cividis", "cmin": 0, "cmax": 100,
                                 "colorbar": {"title": "% of row"}})
    return _figure_html(fig)


def _importance_figure(importances: pd.DataFrame, horizon: int) -> str:
    """The top features by share of the horizon's total gain."""
    part = importances[importances["horizon"] == horizon].groupby("feature")["gain"].sum().dropna()
    total = part.sum()
    if part.empty or not total > 0:
        return note(f"Horizon {horizon} min: no feature importances.")
    top = (part.nlargest(TOP_FEATURES) / total * 100).sort_values()
    fig = go.Figure(go.Bar(x=top.to_numpy(), y=top.index.astype(str), orientation="h",
                           marker_color=OKABE_ITO["blue"], hovertemplate="%{y}: %{x:.1f}%<extra></extra>"))
    fig.update_layout(title=f"Horizon {horizon} min · top {len(top)} features",
                      height=140 + 22 * len(top), xaxis_title="share of total gain (%)",
                      yaxis={"automargin": True})
    return _figure_html(fig)


HOW_TO_READ = """<ul>
<li><b>Summary</b>: lower MAE/RMSE and higher R² and accuracy are better. <i>MAE vs persistence</i>:
how much smaller the model's MAE is than carrying the current value forward (+30 % = 30 % smaller
error). The grey row is the fab's V8 model on the fab's own metric: a reference point, not a bar
our simulated figures pass or fail. CRITICAL recall: share of real CRITICAL minutes caught.</li>
<li><b>Predicted vs actual</b>: black = what happened, dotted = predicted avg, shaded band = predicted
min–max; dashed lines mark the WARNING and CRITICAL thresholds. Pick a line in the top-right menu.</li>
<li><b>Residuals</b>: narrow and centred on 0 is good; a shift right (left) means systematic over- (under-)
prediction.</li>
<li><b>Confusion matrices</b>: rows are the actual state; colour and % are shares of the row, so the diagonal
is each state's recall; the first number is the row count.</li>
<li><b>CRITICAL alarms</b>: an alarm is P(CRITICAL) at or above the model's threshold, chosen on the
validation rows for the configured target (alarms.target). Precision: share of alarm minutes that were
CRITICAL; recall: share of CRITICAL minutes alarmed; false alarms: alarm episodes with no CRITICAL
minute, per line per 12-hour shift; lead time: minutes from the first alarm to the onset of each
CRITICAL episode it caught. The ★ on each PR curve is the operating point.</li>
<li><b>Reliability</b>: predicted P(CRITICAL) against the observed share on the validation rows; a
calibrated model lies on the diagonal. The Brier score (0 best) is in the alarm table.</li>
<li><b>Refit</b>: the regressors are refitted on training + validation rows with the number of
rounds early stopping chose, and the served forecast blends the refit with the early-stopped
regressor (alarms.refit_weight); the table compares its test MAE with the early-stopped one
alone, what would be served without the refit.</li>
<li><b>What moves the forecasts</b>: the champion's exact per-forecast contributions (TreeSHAP)
rolled up to the raw columns, averaged in size over the test rows: to its CRITICAL score and to its
avg change from the last value. The API gives them per forecast with <code>?explain=true</code>.</li>
<li><b>Feature importance</b>: share of the XGBoost models' total gain: what drives the forecast, not
cause and effect.</li></ul>"""


def _section(key: str, blocks: list[str], empty_note: str) -> str:
    """A titled section, or the note when it has no blocks."""
    return "\n".join([f"<h2>{SECTION_TITLES[key]}</h2>", *(blocks or [note(empty_note)])])


def _clean_predictions(predictions: pd.DataFrame | None) -> pd.DataFrame:
    """Predictions with UTC timestamps, or an empty frame when absent or incomplete."""
    needed = {"model", "horizon", "line_id", "timestamp", "actual_avg", "pred_avg"}
    if predictions is None or predictions.empty or not needed <= set(predictions.columns):
        return pd.DataFrame(columns=[*needed, "actual_state", "pred_state", "pred_min", "pred_max"])
    frame = predictions.copy()
    stamps = pd.to_datetime(frame["timestamp"])
    frame["timestamp"] = (stamps.dt.tz_localize("UTC") if stamps.dt.tz is None
                          else stamps.dt.tz_convert("UTC"))
    for column in ("actual_state", "pred_state"):
        frame[column] = frame[column] if column in frame else -1
    for column in ("pred_min", "pred_max"):
        frame[column] = frame[column] if column in frame else np.nan
    return frame


def _alarm_sections(evaluation: dict, results: pd.DataFrame, preds: pd.DataFrame,
                    validation: pd.DataFrame | None) -> list[str]:
    """The operating points, alarm figures, PR curves, reliability diagrams and the refit."""
    points = evaluation.get("operating_points") or []
    thresholds = {(r["model"], int(r["horizon"])): r.get("critical_threshold")
                  for r in results.to_dict("records") if r.get("target") == "state"}
    has_proba = "proba_CRITICAL" in preds
    val = validation if validation is not None and "proba_CRITICAL" in validation \
        else pd.DataFrame(columns=["horizon"])
    return [
        _section("alarms", [alarm_table(results, _table, _name_cell, _by_model),
                            operating_point_table(points, _table, _name_cell)], ""),
        _section("pr", [pr_figure(preds, thresholds, h, MODEL_COLOURS, "test window")
                        for h in _horizons(preds["horizon"])] if has_proba else [],
                 "No class probabilities over the test window."),
        _section("reliability", [reliability_figure(val, h, MODEL_COLOURS)
                                 for h in _horizons(val["horizon"])],
                 "No validation predictions were handed to the report."),
        _section("refit", [refit_table(evaluation.get("refit") or [], _table, _name_cell)], ""),
    ]


def _explanation_section(explanations: pd.DataFrame | None) -> str:
    """The champion's mean |contribution| per raw column (models.explain.global_importance)."""
    fig = explanation_figure(explanations) if explanations is not None else None
    return _section("explain", [_figure_html(fig)] if fig is not None else [],
                    "No explanations were computed (no XGBoost model to explain).")


def render_evaluation_html(evaluation: dict, predictions: pd.DataFrame, importances: pd.DataFrame,
                           reference: dict | None = None, timezone: str = "UTC",
                           validation: pd.DataFrame | None = None,
                           explanations: pd.DataFrame | None = None) -> str:
    """The evaluation report as one HTML page (plotly.js from the shared assets/ beside it);
    reference: the fab's figures shown beside ours (V8's by default), never as pass/fail."""
    check_timezone(timezone)
    reference = {**V8_BARS, **(reference or {})}
    evaluation = evaluation or {}
    results, preds = _results_frame(evaluation), _clean_predictions(predictions)
    imps = importances if importances is not None and {"feature", "horizon", "gain"} <= set(importances) \
        else pd.DataFrame(columns=["feature", "horizon", "gain"])
    pred_horizons = _horizons(preds["horizon"])
    no_preds = "No predictions over the test window."
    body = [_header_html(evaluation, timezone),
            _section("acceptance", [acceptance_html(evaluation, _table, _name_cell)], ""),
            _summary_html(results, reference),
            _section("day", [_day_figure(preds, results, h, timezone) for h in pred_horizons], no_preds),
            _section("residuals", [_residual_figure(preds, h) for h in pred_horizons], no_preds),
            _section("confusion", [_confusion_figure(_confusion_matrices(results, h), h)
                                   for h in _horizons(results["horizon"])],
                     "No state results."),
            *_alarm_sections(evaluation, results, preds, validation),
            _explanation_section(explanations),
            _section("importance", [_importance_figure(imps, h) for h in _horizons(imps["horizon"])],
                     "No feature importances."),
            _section("howto", [HOW_TO_READ], "")]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"{NO_FAVICON}<title>AMHS model evaluation</title><style>{CSS}{ACCEPTANCE_CSS}</style>"
            f"{plotly_script()}</head>"
            f'<body><div class="page">{"".join(body)}</div></body></html>')
