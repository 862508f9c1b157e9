"""drift.html: our verdict first, then Evidently's detail; no Dagster.

The page leads with what an engineer asks first: drift or not, the share of drifted (line,
column) pairs against the threshold, the reference and current windows on the fab's clock, and
the columns that moved most (a small table). Evidently's own report follows, for the pairs that
moved most only: its detail weighs ~34 KB a pair, and every pair's score is in drift.json.

Evidently's page inlines its JavaScript (3.5 MB, a React app with its own plotly inside, so it
cannot use the reports' plotly.js) and its Material Icons font (130 KB as base64): both are
written once to the reports' assets/ folder, named by Evidently's version, and the page loads
them from there by a relative path like the other pages' plotly.js (a font from a subfolder of
a file:// page's own folder loads in Chromium and Firefox).
"""

from __future__ import annotations

import base64
import re
import warnings
from pathlib import Path

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently import __version__ as evidently_version
from evidently.core.report import Snapshot
from evidently.legacy.utils.dashboard import STATIC_PATH
from evidently.metrics import ValueDrift

from amhs_assets.html import (
    ASSETS_DIR,
    NO_FAVICON,
    check_timezone,
    esc,
    local_time,
    write_asset,
)
from amhs_assets.documents import write_text
from amhs_assets.monitoring.drift import REPORT_TITLE, Comparison, DriftResult

EVIDENTLY_JS = f"evidently-{evidently_version}.js"
EVIDENTLY_FONT = f"evidently-{evidently_version}-material-ui-icons.woff2"
DETAIL_PAIRS = 8  # pairs whose Evidently detail the page carries
TOP_COLUMNS = 10  # rows of the most-drifted table

CSS = """
.amhs{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;
max-width:1200px;margin:16px auto;padding:0 24px}.amhs h1{font-size:1.6em;margin:.3em 0}
.amhs h2{font-size:1.2em;border-bottom:2px solid #0072B2;padding-bottom:3px;margin:1.2em 0 .5em}
.amhs .muted{color:#555;font-size:.9em}.amhs table{border-collapse:collapse;font-size:14px}
.amhs th,.amhs td{border:1px solid #ccc;padding:4px 8px;text-align:right}
.amhs th{background:#eef3f8}.amhs .name{text-align:left}
.amhs .verdict{padding:8px 12px;border-radius:6px;font-weight:600;border-left:8px solid}
.amhs .ok{background:#e6f3fa;border-color:#0072B2}.amhs .bad{background:#fbe9df;border-color:#D55E00}
"""


def detail_pairs(result: DriftResult, limit: int = DETAIL_PAIRS) -> pd.DataFrame:
    """The pairs (data and predictions) with the highest score over threshold, highest first."""
    parts = [result.data] + ([result.predictions] if result.predictions is not None else [])
    pairs = pd.concat([p.pairs for p in parts], ignore_index=True)
    ratio = pairs["score"] / pairs["threshold"].where(pairs["threshold"] > 0)
    return pairs.assign(ratio=ratio).sort_values("ratio", ascending=False).head(limit)


def detail_snapshot(result: DriftResult, names: list[str]) -> Snapshot:
    """Evidently's ValueDrift of the named pairs, on our methods and thresholds."""
    parts: list[Comparison] = [result.data] + (
        [result.predictions] if result.predictions is not None else [])
    pairs = pd.concat([p.pairs for p in parts], ignore_index=True).set_index("name").loc[names]
    metrics = [ValueDrift(column=n, method=r.method, threshold=r.threshold)
               for n, r in pairs.iterrows()]
    definition = DataDefinition(numerical_columns=names)
    reference = pd.concat([p.reference for p in parts], axis=1)[names]
    current = pd.concat([p.current for p in parts], axis=1)[names]
    with warnings.catch_warnings():  # correlations of a column constant in one window
        warnings.simplefilter("ignore", RuntimeWarning)
        return Report(metrics).run(Dataset.from_pandas(current, data_definition=definition),
                                   Dataset.from_pandas(reference, data_definition=definition))


def _evidently_files() -> dict[str, bytes]:
    """Evidently's bundled JavaScript and font, by the names the pages load them under."""
    static = Path(STATIC_PATH)
    return {EVIDENTLY_JS: (static / "index.js").read_bytes(),
            EVIDENTLY_FONT: (static / "material-ui-icons.woff2").read_bytes()}


def share_evidently_files(page: str) -> str:
    """Evidently's page loading its JavaScript and font from assets/ instead of inlining them
    (each left inline when this Evidently inlines it differently: the page still works, only
    heavier)."""
    files = _evidently_files()
    script = f"<script>{files[EVIDENTLY_JS].decode('utf-8')}</script>"
    font = f"url(data:font/ttf;base64,{base64.b64encode(files[EVIDENTLY_FONT]).decode()})"
    page = page.replace(script, f'<script src="{ASSETS_DIR}/{EVIDENTLY_JS}"></script>', 1)
    return page.replace(font, f"url({ASSETS_DIR}/{EVIDENTLY_FONT})", 1)


def _verdict(doc: dict) -> str:
    """Drift or not, in words, with a symbol as well as a colour."""
    share, limit = doc["share_drifted"], doc["drift_share"]
    counts = f"{doc['pairs_drifted']} of {doc['pairs_compared']} (line, column) pairs drifted"
    if doc["drift_detected"]:
        return (f'<div class="verdict bad" id="verdict">✘ DRIFT DETECTED: {counts}, share '
                f"{share:.2f} ≥ threshold {limit:.2f}</div>")
    return (f'<div class="verdict ok" id="verdict">✔ NO DRIFT: {counts}, share {share:.2f} '
            f"&lt; threshold {limit:.2f}</div>")


def _windows(doc: dict, tz: str) -> str:
    """The reference and current windows on the fab's clock, and where the reference came from."""
    rows = []
    for key in ("reference", "current"):
        w = doc.get(key) or {}
        rows.append(f'<tr><td class="name">{key}</td><td class="name">'
                    f"{local_time(w.get('start'), tz)} → {local_time(w.get('end'), tz)}</td>"
                    f"<td>{esc(w.get('rows', '—'))}</td></tr>")
    source = (doc.get("reference") or {}).get("source")
    origin = {"champion": f"the champion's (v{(doc.get('reference') or {}).get('champion_version')})"
                          " training window",
              "current_training": "the current models' training window"}.get(source, "")
    why = (doc.get("reference") or {}).get("why")
    said = (f"<p class='muted'>Reference: {esc(origin)}" + (f" ({esc(why)})" if why else "")
            + ".</p>") if origin else ""
    return ('<table id="windows"><tr><th class="name">window</th>'
            f'<th class="name">from → to ({esc(tz)})</th><th>rows</th></tr>{"".join(rows)}'
            f"</table>{said}")


def top_columns(doc: dict, limit: int = TOP_COLUMNS) -> list[dict]:
    """The columns (inputs and predictions) with the highest score over threshold."""
    rows = []
    for kind, columns in (("input", doc.get("columns") or {}),
                          ("prediction", (doc.get("predictions") or {}).get("columns") or {})):
        for column, c in columns.items():
            ratio = c["score"] / c["threshold"] if c.get("threshold") else float("inf")
            rows.append({"kind": kind, "column": column, "ratio": ratio, **c})
    return sorted(rows, key=lambda r: -r["ratio"])[:limit]


def _columns_table(doc: dict) -> str:
    """The most-drifted columns: score, threshold, their ratio and the lines that drifted."""
    body = "".join(
        f'<tr><td class="name">{esc(r["column"])}</td><td class="name">{r["kind"]}</td>'
        f"<td>{r['score']:.3f}</td><td>{r['threshold']:.3f}</td><td>{r['ratio']:.2f}</td>"
        f'<td class="name">{"✘ " + esc(", ".join(r["lines_drifted"])) if r["drifted"] else "—"}'
        "</td></tr>" for r in top_columns(doc))
    return ('<table id="top-columns"><tr><th class="name">column</th><th class="name">kind</th>'
            "<th>score (max over lines)</th><th>threshold</th><th>score / threshold</th>"
            f'<th class="name">drifted on lines</th></tr>{body}</table>')


def header(result: DriftResult, tz: str, shown: int) -> str:
    """Verdict, windows, the most-drifted columns and the method, above Evidently's detail."""
    doc = result.document
    total = len(result.data.pairs) + (len(result.predictions.pairs) if result.predictions else 0)
    return (f'<div class="amhs"><h1>{esc(REPORT_TITLE)}</h1>'
            f"<p class='muted'>Times in <b>{esc(tz)}</b>.</p>{_verdict(doc)}"
            f"<h2>Windows compared</h2>{_windows(doc, tz)}"
            f"<h2>Columns that moved most</h2>{_columns_table(doc)}"
            "<p class='muted'>Score: the column's drift statistic, the largest over the lines; "
            "a (line, column) pair drifts when its score exceeds the column's threshold, "
            "calibrated on the reference's own windows against the rest × "
            f"{doc['calibration']['threshold_margin']:g}. Every pair's score: drift.json.</p>"
            f"<h2>Evidently's detail ({shown} of {total} pairs, those that moved most)</h2>"
            f"<p class='muted'>Evidently {esc(evidently_version)}</p></div>")


def render_drift_html(result: DriftResult, timezone: str = "UTC",
                      pairs: int = DETAIL_PAIRS) -> str:
    """The drift page: our header, then Evidently's report of the pairs that moved most; its
    JavaScript and font are loaded from assets/ (write_drift_html puts them there)."""
    check_timezone(timezone)
    names = list(detail_pairs(result, pairs)["name"])
    page = share_evidently_files(detail_snapshot(result, names).get_html_str(as_iframe=False))
    page = page.replace("<head>", f"<head>\n{NO_FAVICON}<title>{esc(REPORT_TITLE)}</title>"
                                  f"<style>{CSS}</style>", 1)
    top = header(result, timezone, len(names))
    return re.sub(r"<body[^>]*>", lambda m: m.group(0) + top, page, count=1)


def write_drift_html(result: DriftResult, path: Path | str, timezone: str = "UTC") -> Path:
    """Write drift.html atomically, after Evidently's JavaScript and font it loads are in
    assets/."""
    path = Path(path)
    for name, data in _evidently_files().items():
        write_asset(path.parent, name, data)
    return write_text(path, render_drift_html(result, timezone))
