"""The monitoring dashboard: one HTML page that loads the reports folder's shared plotly.js
(html.write_page puts it beside the page; no CDN), no Dagster. The asset gathers the inputs;
`render_dashboard` returns the page and its chart count.

Sections: verdict, forecast status per line (traffic lights that carry a shape and a word, not
colour alone, and, when given, why: the raw columns that pushed CRITICAL most), live
performance against the evaluated level, predicted vs actual over the last day, drift, model versions, data quality. Laid out for a 1366 px laptop screen without
sideways scrolling; times on the fab's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from amhs_assets.dashboard import figures as figs
from amhs_assets.html import (
    NO_FAVICON,
    OKABE_ITO,
    check_timezone,
    esc,
    local_time,
    note,
    num,
    plotly_script,
)
from amhs_assets.monitoring.performance import hourly_error

LIGHTS = {  # state -> (shape, background, text colour)
    "NORMAL": ("●", OKABE_ITO["green"], "#ffffff"),
    "WARNING": ("▲", OKABE_ITO["yellow"], "#000000"),
    "CRITICAL": ("■", OKABE_ITO["vermillion"], "#ffffff"),
}
ERROR_DAYS = 7  # days of hourly error shown
EVENTS_SHOWN = 8
WHY_SHOWN = 3  # raw columns named per forecast

CSS = """
*{box-sizing:border-box}body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
margin:0;color:#1a1a1a;background:#fafafa}.page{max-width:1320px;margin:0 auto;padding:10px 20px}
h1{font-size:1.5em;margin:.3em 0}h2{border-bottom:2px solid #0072B2;padding-bottom:3px;
margin:1.4em 0 .5em;font-size:1.2em}.muted{color:#555;font-size:.9em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:8px 0;min-width:0}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:12px}
@media (max-width:900px){.grid{grid-template-columns:minmax(0,1fr)}}
.grid>div{min-width:0}table{border-collapse:collapse;width:100%;font-size:14px;table-layout:auto}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top;overflow-wrap:anywhere}
th{background:#eef3f8}td.name,th.name{text-align:left}
.light{display:inline-block;min-width:8.5em;padding:3px 8px;border-radius:12px;font-weight:700;
text-align:left;border:1px solid #333}.fig small{color:#555}.why{color:#333;font-size:12px}
.verdict{padding:8px 12px;border-radius:6px;font-weight:600;border-left:8px solid}
.ok{background:#e6f3fa;border-color:#0072B2}.bad{background:#fbe9df;border-color:#D55E00}
.unknown{background:#f1f1f1;border-color:#666}.note{background:#fff8e1;border-left:4px solid #E69F00;
padding:6px 10px}.fig{min-width:0}
"""

# charts drawn while the page was still being parsed took the width they saw then
RESIZE = ("<script>window.addEventListener('load',function(){document.querySelectorAll("
          "'.js-plotly-plot').forEach(function(el){Plotly.Plots.resize(el);});});</script>")

HOW_TO_READ = """<ul class="muted">
<li><b>Forecast per line</b>: the state the newest forecast expects over the next 10/15/25 minutes
(● NORMAL, ▲ WARNING: max ≥ 300 s, ■ CRITICAL: max ≥ 600 s or a major alarm), with the predicted
MIN/MAX/AVG transfer time; <i>why</i>: the three raw columns that pushed that forecast's CRITICAL
score most (↑ towards CRITICAL, ↓ away from it; hover for the contributions).</li>
<li><b>Live performance</b>: forecasts scored once their minutes have passed. The check fails when
the live avg MAE over the window is worse than the version's evaluated MAE by more than the
margin; that starts one retraining per episode.</li>
<li><b>Predicted vs actual</b>: black = what happened (avg over the next h minutes), dotted = predicted
avg, band = predicted min–max; pick a line in the menu.</li>
<li><b>Drift</b>: share of (line, column) pairs whose distribution moved beyond its calibrated
threshold; bars over 1 are drifted.</li></ul>"""


@dataclass
class DashboardInputs:
    """Everything the page shows, already read from the assets, the registry and the files."""

    performance: dict
    scored: pd.DataFrame
    history: pd.DataFrame
    drift: dict = field(default_factory=dict)
    drift_history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["measured_at", "share_drifted", "drift_detected"]))
    versions: pd.DataFrame = field(default_factory=pd.DataFrame)
    champion: str | None = None
    quality: dict | None = None
    quarantined: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["day", "rows"]))
    undated_quarantined: int = 0
    timezone: str = "UTC"
    margin: float = 0.25
    # predictions in the API's shape with explanations asked for ({"line_id", "as_of",
    # "horizons": {"10": {..., "explain": models.explain.explain's row}}}): each shown beside
    # the forecast of the same line and minute
    explanations: list[dict] | None = None


def quarantined_per_day(rows_csv: Path, tz: str) -> tuple[pd.DataFrame, int]:
    """Quarantined rows per fab-local day from quarantine/rows.csv, and how many rows carried no
    readable timestamp."""
    if not Path(rows_csv).is_file():
        return pd.DataFrame(columns=["day", "rows"]), 0
    try:
        stamps = pd.read_csv(rows_csv, usecols=lambda c: c == "timestamp", dtype=str)
    except pd.errors.EmptyDataError:  # written with no column at all
        stamps = pd.DataFrame()
    if "timestamp" not in stamps:
        return pd.DataFrame(columns=["day", "rows"]), 0
    parsed = pd.to_datetime(stamps["timestamp"], utc=True, errors="coerce", format="mixed")
    days = parsed.dropna().dt.tz_convert(tz).dt.strftime("%Y-%m-%d")
    counts = days.value_counts().sort_index().rename_axis("day").reset_index(name="rows")
    return counts, int(parsed.isna().sum())


def _figure(fig: go.Figure | None, empty: str) -> tuple[str, int]:
    """A figure as a responsive div relying on the shared plotly.js, or a note; and 1 or 0."""
    if fig is None:
        return note(empty), 0
    fig.update_layout(template="plotly_white", font={"size": 12},
                      margin={"l": 60, "r": 20, "b": 50, "t": fig.layout.margin.t or 60})
    div = fig.to_html(full_html=False, include_plotlyjs=False,
                      config={"displaylogo": False, "responsive": True})
    return f'<div class="fig">{div}</div>', 1


def _light(state: str) -> str:
    """A traffic light: shape, word and colour."""
    shape, background, colour = LIGHTS.get(state, ("?", "#ddd", "#000"))
    return (f'<span class="light" style="background:{background};color:{colour}" '
            f'title="{esc(state)}">{shape} {esc(state)}</span>')


def why(explained: dict | None, top: int = WHY_SHOWN) -> str:
    """The raw columns that pushed a forecast's CRITICAL score most, as arrows and names (the
    contributions in the hover text), or nothing without an explanation."""
    pushes = ((explained or {}).get("CRITICAL") or {}).get("top") or []
    if not pushes:
        return ""
    words = " · ".join(f"{esc(p['column'])} {'↑' if p['contribution'] > 0 else '↓'}"
                       for p in pushes[:top])
    hover = "; ".join(f"{p['column']} {p['contribution']:+.2f}" for p in pushes[:top])
    return f'<br><small class="why" title="CRITICAL score: {esc(hover)}">why: {words}</small>'


def _explained_now(row: dict, explanations: list[dict] | None) -> dict:
    """Per horizon, the explanation of this line's forecast at its minute ({} if none)."""
    for answer in explanations or ():
        if (answer.get("line_id") == row["line_id"]
                and pd.Timestamp(answer.get("as_of")) == pd.Timestamp(row["as_of"])):
            return {str(h): f.get("explain") for h, f in (answer.get("horizons") or {}).items()}
    return {}


def status_board(latest: list[dict], tz: str, explanations: list[dict] | None = None) -> str:
    """One row per line: each horizon's predicted state with MIN/MAX/AVG (and why, when
    explanations are given), and the forecast time."""
    if not latest:
        return note("No forecast yet: neither the API's log nor a backtest produced one.")
    horizons = sorted({int(h) for row in latest for h in row["horizons"]})
    head = ('<tr><th class="name">line</th>' + "".join(f"<th class='name'>next {h} min</th>"
                                                      for h in horizons)
            + '<th class="name">forecast at</th><th class="name">from</th></tr>')
    body = []
    for row in latest:
        cells = [f'<td class="name"><b>{esc(row["line_id"])}</b></td>']
        explained = _explained_now(row, explanations)
        for h in horizons:
            f = row["horizons"].get(str(h))
            if f is None:
                cells.append("<td class='name'>—</td>")
                continue
            figures = f"avg {f['avg']:.0f} s · min {f['min']:.0f} · max {f['max']:.0f}"
            cells.append(f"<td class='name'>{_light(f['state'])}<br><small>{figures}</small>"
                         f"{why(explained.get(str(h)))}</td>")
        cells.append(f"<td class='name'>{local_time(row['as_of'], tz)}</td>")
        source = "API log" if row["source"] == "api" else "backtest"
        cells.append(f"<td class='name'>{source}, {esc(_version(row['model_version']))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f'<div class="card"><table>{head}{"".join(body)}</table></div>'


def _version(label: str) -> str:
    """v3 for a registered version, the label itself for a candidate."""
    return f"v{label}" if str(label).isdigit() else str(label)


def _fmt(value, spec: str) -> str:
    number = num(value)
    return "—" if number is None else format(number, spec)


def performance_table(doc: dict, margin: float) -> str:
    """Per horizon: live metrics over the window next to the evaluated ones."""
    live, window, evaluated = doc.get("live", {}), doc.get("window_metrics", {}), doc.get("evaluated", {})
    if not window:
        return note("No forecast has a known outcome yet.")
    rows = []
    for h in sorted(window, key=int):
        w, e, v = window[h], evaluated.get(h, {}), live.get(h, {})
        ratio = num(v.get("ratio"))
        verdict = ("—" if ratio is None or not v.get("judged") else
                   ("✘ over the limit" if v.get("degraded") else "✔ within"))
        rows.append("<tr>" + "".join([
            f'<td class="name">next {h} min</td>', f"<td>{_fmt(w.get('rows'), '.0f')}</td>",
            *(f"<td>{_fmt(w.get(m), '.1f')} <span class='muted'>/ {_fmt(e.get(m), '.1f')}</span></td>"
              for m in ("mae_min", "mae_max", "mae_avg")),
            f"<td>{_fmt(ratio, '.2f')} <span class='muted'>(limit {1 + margin:.2f})</span> {verdict}</td>",
            *(f"<td>{_fmt(w.get(m), '.1%')} <span class='muted'>/ {_fmt(e.get(m), '.1%')}</span></td>"
              for m in ("accuracy", "macro_f1", "critical_recall"))]) + "</tr>")
    head = ("<tr><th class='name'>horizon</th><th>rows</th><th>MAE min (s)</th><th>MAE max (s)</th>"
            "<th>MAE avg (s)</th><th>avg MAE live / evaluated</th><th>accuracy</th>"
            "<th>macro-F1</th><th>CRITICAL recall</th></tr>")
    return (f'<div class="card"><table>{head}{"".join(rows)}</table><p class="muted">'
            "live over the window / <span class='muted'>evaluated on the version's test window"
            "</span></p></div>")


def alarm_table(doc: dict) -> str:
    """Per horizon: the served version's CRITICAL alarms over the window as operators lived
    them (precision, recall, false alarm episodes per line per 12-hour shift, median lead time,
    share of CRITICAL episodes alarmed 5 minutes ahead)."""
    window = doc.get("window_metrics", {})
    if not window:
        return note("No forecast has a known outcome yet.")
    rows = []
    for h in sorted(window, key=int):
        w = window[h]
        rows.append("<tr>" + "".join([
            f'<td class="name">next {h} min</td>',
            f"<td>{_fmt(w.get('critical_precision'), '.1%')}</td>",
            f"<td>{_fmt(w.get('critical_recall'), '.1%')}</td>",
            f"<td>{_fmt(w.get('false_alarms_per_shift'), '.2f')}</td>",
            f"<td>{_fmt(w.get('lead_time_median_min'), '.0f')}</td>",
            f"<td>{_fmt(w.get('caught_5min_share'), '.1%')}</td>",
            f"<td>{_fmt(w.get('critical_episodes'), '.0f')}</td>"]) + "</tr>")
    head = ("<tr><th class='name'>horizon</th><th>precision</th><th>recall</th>"
            "<th>false alarms / line / shift</th><th>median lead time (min)</th>"
            "<th>caught ≥ 5 min ahead</th><th>CRITICAL episodes</th></tr>")
    return (f'<div class="card" id="alarms"><table>{head}{"".join(rows)}</table>'
            '<p class="muted">an alarm is a CRITICAL forecast at the version\'s operating point; '
            "a false alarm is a run of alarm minutes with no CRITICAL outcome</p></div>")


def verdict_banner(doc: dict, tz: str) -> str:
    """The degradation verdict in words, with a symbol as well as a colour."""
    reason = esc(doc.get("degradation_reason", ""))
    if not doc.get("judged"):
        return f'<div class="verdict unknown">? not judged: {reason}</div>'
    if doc.get("degraded"):
        return f'<div class="verdict bad">✘ DEGRADED: {reason}</div>'
    return f'<div class="verdict ok">✔ within the evaluated level: {reason}</div>'


def data_up_to(performance: dict) -> str | None:
    """The time of the newest forecast the page shows (its data end), or None."""
    return max((row["as_of"] for row in performance.get("latest", [])), default=None)


def header(inputs: DashboardInputs) -> str:
    """Title, times, the model watched and the served champion."""
    doc, tz = inputs.performance, inputs.timezone
    model = doc.get("model", {})
    latest = data_up_to(doc)
    champion = f"v{inputs.champion}" if inputs.champion else "none yet"
    return (f"<h1>AMHS monitoring</h1><p class='muted'>Generated "
            f"{local_time(doc.get('generated_at'), tz)} · data up to {local_time(latest, tz)} · "
            f"times in <b>{esc(tz)}</b></p><p>Champion: <b>{esc(champion)}</b> · watching "
            f"<b>{esc(_version(model.get('version_label', '—')))}</b> "
            f"<span class='muted'>({esc(model.get('selected_by', ''))})</span></p>"
            + verdict_banner(doc, tz))


def events_table(events: pd.DataFrame, tz: str) -> str:
    """The newest version events with their reasons."""
    if events.empty:
        return ""
    newest = events.sort_values("at", ascending=False).head(EVENTS_SHOWN)
    rows = "".join(
        f"<tr><td class='name'>{local_time(r.at.isoformat(), tz)}</td><td class='name'>v{esc(r.version)}"
        f"</td><td class='name'>{esc(r.event)}</td><td class='name'>{esc(str(r.reason)[:300])}</td></tr>"
        for r in newest.itertuples())
    return ("<div class='card'><table><tr><th class='name'>when</th><th class='name'>version</th>"
            f"<th class='name'>event</th><th class='name'>why</th></tr>{rows}</table></div>")


def quality_summary(quality: dict | None, undated: int) -> str:
    """The latest ingest's row accounting in one sentence."""
    if not quality:
        return note("No data_quality.json yet: materialize cleaned_amhs_logs.")
    files = quality.get("files") or []
    partial = sum(f.get("status") == "partial" for f in files)
    rejected = sum(f.get("status") == "quarantined" for f in files)
    text = (f"Latest ingest: {quality.get('rows_read', 0):,} rows read, {quality.get('rows_clean', 0):,} "
            f"clean, {quality.get('rows_quarantined', 0):,} quarantined, "
            f"{quality.get('rows_duplicate', 0):,} duplicates; {len(files)} files "
            f"({partial} partial, {rejected} rejected whole)")
    if undated:
        text += f"; {undated:,} quarantined rows carry no readable timestamp (not in the chart)"
    return f"<p>{esc(text)}.</p>"


def render_dashboard(inputs: DashboardInputs) -> tuple[str, int]:
    """The page, and how many plotly charts it holds."""
    check_timezone(inputs.timezone)
    tz, doc = inputs.timezone, inputs.performance
    history = inputs.history
    since = None
    if len(history):
        since = history["period_start"].max() - pd.Timedelta(days=ERROR_DAYS)
    hourly = hourly_error(history, since) if len(history) else pd.DataFrame()
    charts = [
        _figure(figs.live_error(hourly, inputs.margin, tz), "No scored forecast yet."),
        _figure(figs.predicted_vs_actual(inputs.scored, tz), "No forecast in the last day."),
        _figure(figs.drift_share(inputs.drift_history, num((inputs.drift or {}).get("drift_share")), tz),
                "No drift report with a drift share yet."),
        _figure(figs.drifted_columns(inputs.drift),
                "The latest drift report compared no column: "
                + str((inputs.drift or {}).get("reason", "no drift report yet"))),
        _figure(figs.version_timeline(inputs.versions, tz), "No registered version yet."),
        _figure(figs.quarantine_per_day(inputs.quarantined, tz), "No row was quarantined."),
    ]
    (error, predicted, share, columns, versions, quarantine) = (c[0] for c in charts)
    undated = inputs.undated_quarantined
    drift_line = _drift_line(inputs.drift, tz)
    body = [
        header(inputs),
        "<h2>Forecast per line, now</h2>", status_board(doc.get("latest", []), tz, inputs.explanations),
        f"<h2>Live performance (last {_fmt(doc.get('window', {}).get('hours'), 'g')} h of known "
        "outcomes)</h2>", performance_table(doc, inputs.margin),
        "<h2>CRITICAL alarms (same window)</h2>", alarm_table(doc),
        f"<div class='card'>{error}</div>",
        "<h2>Predicted vs actual transfer time, last 24 h</h2>", f"<div class='card'>{predicted}</div>",
        "<h2>Drift</h2>", drift_line,
        f"<div class='grid'><div class='card'>{share}</div><div class='card'>{columns}</div></div>",
        "<h2>Model versions</h2>", f"<div class='card'>{versions}</div>",
        events_table(inputs.versions, tz),
        "<h2>Data quality</h2>", quality_summary(inputs.quality, undated),
        f"<div class='card'>{quarantine}</div>",
        "<h2>How to read this page</h2>", HOW_TO_READ]
    page = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"{NO_FAVICON}"
            f"<title>AMHS monitoring</title><style>{CSS}</style>"
            f"{plotly_script()}</head>"
            f'<body><div class="page">{"".join(body)}</div>{RESIZE}</body></html>')
    return page, sum(c[1] for c in charts)


def _drift_line(drift: dict, tz: str) -> str:
    """The latest drift verdict in one sentence."""
    if not drift or "share_drifted" not in drift:
        return note("No drift report yet.")
    current = drift.get("current") or {}
    verdict = "✘ drift detected" if drift.get("drift_detected") else "✔ no drift"
    share = _fmt(drift.get("share_drifted"), ".2f")
    return (f"<p>Latest report: <b>{verdict}</b>, share of drifted pairs {share}"
            f" (drift at {_fmt(drift.get('drift_share'), 'g')}); current window "
            f"{local_time(current.get('start'), tz)} → {local_time(current.get('end'), tz)}."
            + (f" Status: {esc(drift['status'])}." if drift.get("status") else "") + "</p>")
