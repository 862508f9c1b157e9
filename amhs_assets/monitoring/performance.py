"""Live performance against the evaluated level, no Dagster: metrics per line, horizon, model
version and hour/day, the degradation verdict, performance.json and the Parquet history.

Input is a scored frame (``monitoring.live.score``): one row per line, minute, horizon and
model version with its predictions and, once they have arrived, the actual outcomes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from amhs_assets.config import setting
from amhs_assets.contract import REGRESSION_TARGETS, STATES
from amhs_assets.documents import finite, write_bytes
from amhs_assets.evaluation.alarms import alarm_metrics
from amhs_assets.evaluation.metrics import macro_f1
from amhs_assets.monitoring.live import known

METRICS = ("mae_min", "mae_max", "mae_avg", "accuracy", "macro_f1", "critical_recall")
EVALUATED = tuple(f"evaluated_{m}" for m in METRICS)
PERIODS = {"hour": "h", "day": "D"}
PERIOD_KEY = ("line_id", "horizon", "period", "period_start")  # what a recomputation replaces
HISTORY_KEY = (*PERIOD_KEY, "model_version", "source")  # unique in the history
CRITICAL = STATES.index("CRITICAL")


@dataclass(frozen=True)
class PerformanceConfig:
    """What performance_monitor scores and when its check fails: at any horizon, live avg MAE
    above evaluated x (1 + mae_margin), or live state accuracy or CRITICAL recall below
    evaluated x (1 - their margin), over the last window_hours of known outcomes."""

    window_hours: float = setting(
        24.0, "the check compares the live metrics over this many hours of known outcomes, up "
              "to the newest, with the evaluated ones")
    mae_margin: float = setting(
        0.25, "fails when live avg MAE is worse than evaluated by more than this share "
              "(0.25 = 25 %) at a horizon")
    accuracy_margin: float = setting(
        0.10, "fails when live state accuracy is below evaluated by more than this share "
              "(0.10 = under 90 % of the evaluated accuracy) at a horizon")
    critical_recall_margin: float = setting(
        0.50, "fails when live CRITICAL recall is below evaluated by more than this share "
              "(0.50 = under half the evaluated recall) at a horizon")
    min_rows: int = setting(60, "a horizon with fewer scored rows in the window is not judged")
    min_critical_rows: int = setting(
        30, "CRITICAL recall is judged only at a horizon whose window holds at least this many "
            "CRITICAL minutes")
    backtest_hours: float = setting(
        72.0, "scores the newest this many hours (from local midnight), backtesting the "
              "champion where the API logged no prediction")


# --- metrics of groups of scored rows, vectorised -------------------------------------------
def _indicators(scored: pd.DataFrame) -> pd.DataFrame:
    """Per row: absolute errors, hit, and per state whether predicted / actual / both."""
    pred, actual = scored["pred_state"].to_numpy(), scored["actual_state"].to_numpy()
    out = {f"abs_{t}": (scored[f"pred_{t}"] - scored[f"actual_{t}"]).abs() for t in REGRESSION_TARGETS}
    out["hit"] = (pred == actual).astype(float)
    for i in range(len(STATES)):
        out[f"pred_{i}"] = (pred == i).astype(float)
        out[f"act_{i}"] = (actual == i).astype(float)
        out[f"tp_{i}"] = ((pred == i) & (actual == i)).astype(float)
    return pd.DataFrame(out, index=scored.index)


def group_metrics(scored: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows, MAE of min/max/avg, state accuracy, macro-F1 (over the states present in truth or
    prediction, as the evaluation: metrics.macro_f1) and CRITICAL recall per group of known rows."""
    rows = scored[known(scored)]
    sums = pd.concat([rows[keys], _indicators(rows)], axis=1).groupby(keys, sort=True).sum()
    n = rows.groupby(keys, sort=True).size()
    out = pd.DataFrame({"rows": n})
    for t in REGRESSION_TARGETS:
        out[f"mae_{t}"] = sums[f"abs_{t}"] / n
    out["accuracy"] = sums["hit"] / n
    counts = {k: sums[[f"{k}_{i}" for i in range(len(STATES))]].to_numpy()
              for k in ("tp", "pred", "act")}
    out["macro_f1"] = macro_f1(counts["tp"], counts["pred"], counts["act"])
    out["critical_recall"] = sums[f"tp_{CRITICAL}"] / sums[f"act_{CRITICAL}"].where(
        sums[f"act_{CRITICAL}"] > 0)
    return out.reset_index()


def period_start(timestamps: pd.Series, period: str, tz: str) -> pd.Series:
    """The start (UTC) of the hour or the fab-local day each timestamp falls in."""
    return timestamps.dt.tz_convert(tz).dt.floor(PERIODS[period]).dt.tz_convert("UTC")


def period_metrics(scored: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Metrics per model version, source, line, horizon and hour / fab-local day."""
    parts = []
    for period in PERIODS:
        frame = scored.assign(period=period, period_start=period_start(scored["timestamp"], period, tz))
        parts.append(group_metrics(frame, ["model_version", "source", "line_id", "horizon",
                                           "period", "period_start"]))
    return pd.concat(parts, ignore_index=True)


# --- the evaluated level of a version ----------------------------------------------------------
def levels_from_records(records: list[dict], model: str) -> dict[int, dict[str, float]]:
    """A model's evaluated metrics per horizon from evaluation records (SPEC section 4)."""
    out: dict[int, dict[str, float]] = {}
    for r in records:
        if r.get("model") != model:
            continue
        level = out.setdefault(int(r["horizon"]), {})
        if r["target"] in REGRESSION_TARGETS:
            level[f"mae_{r['target']}"] = _float(r.get("mae"))
        else:
            recall = r.get("critical_recall", (r.get("recall") or {}).get("CRITICAL"))
            level |= {"accuracy": _float(r.get("accuracy")), "macro_f1": _float(r.get("macro_f1")),
                      "critical_recall": _float(recall)}
    return out


def levels_from_run_metrics(metrics: dict[str, float], model: str) -> dict[int, dict[str, float]]:
    """Evaluated metrics per horizon from the MLflow metrics test.<model>.h<h>.<target>.<metric>."""
    out: dict[int, dict[str, float]] = {}
    names = {"mae": None, "accuracy": "accuracy", "macro_f1": "macro_f1",
             "recall_CRITICAL": "critical_recall"}
    for key, value in metrics.items():
        parts = key.split(".")
        if len(parts) != 5 or parts[0] != "test" or parts[1] != model or not parts[2][1:].isdigit():
            continue
        _, _, h, target, metric = parts
        if metric not in names or (metric == "mae") != (target in REGRESSION_TARGETS):
            continue
        out.setdefault(int(h[1:]), {})[names[metric] or f"mae_{target}"] = _float(value)
    return out


def levels_from_tags(tags: dict[str, str]) -> dict[int, dict[str, float]]:
    """What version tags record (test_avg_mae_h<h>, test_state_accuracy_h<h>, ...)."""
    out: dict[int, dict[str, float]] = {}
    for tag, metric in (("test_avg_mae_h", "mae_avg"), ("test_state_accuracy_h", "accuracy"),
                        ("test_critical_recall_h", "critical_recall")):
        for key, value in tags.items():
            if key.startswith(tag) and key[len(tag):].isdigit():
                out.setdefault(int(key[len(tag):]), {})[metric] = _float(value)
    return out


def _float(value) -> float:
    """A float, NaN for None and text that is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def levels_frame(levels: dict[str, dict[int, dict[str, float]]]) -> pd.DataFrame:
    """model_version, horizon and the evaluated_* columns, from levels per version."""
    rows = [{"model_version": str(v), "horizon": int(h),
             **{f"evaluated_{m}": level.get(m, math.nan) for m in METRICS}}
            for v, per_h in levels.items() for h, level in per_h.items()]
    return pd.DataFrame(rows, columns=["model_version", "horizon", *EVALUATED])


def with_levels(metrics: pd.DataFrame, levels: pd.DataFrame) -> pd.DataFrame:
    """Metrics next to their version's evaluated values, and live / evaluated avg MAE."""
    out = metrics.merge(levels, on=["model_version", "horizon"], how="left")
    out["mae_avg_ratio"] = out["mae_avg"] / out["evaluated_mae_avg"].where(out["evaluated_mae_avg"] > 0)
    return out


# --- degradation -----------------------------------------------------------------------------
# what the check judges: (metric, live column, evaluated column, margin field, lower is better)
CHECKED = (("avg MAE", "mae_avg", "mae_margin", True),
           ("state accuracy", "accuracy", "accuracy_margin", False),
           ("CRITICAL recall", "critical_recall", "critical_recall_margin", False))


@dataclass
class Verdict:
    """Whether a live metric is worse than evaluated beyond its margin, which, and the figures."""

    degraded: bool
    reason: str
    window: dict
    horizons: dict[int, dict] = field(default_factory=dict)

    @property
    def judged(self) -> bool:
        """Whether any horizon had enough rows and an evaluated level to be judged."""
        return any(h["judged"] for h in self.horizons.values())

    @property
    def failed(self) -> list[str]:
        """The failed checks as "<metric>@h<horizon>" (e.g. "critical_recall@h25")."""
        return [f"{m}@h{h}" for h, v in sorted(self.horizons.items()) for m in v["failed"]]


def _window_table(rows: pd.DataFrame, config: PerformanceConfig) -> pd.DataFrame:
    """Per horizon: live and evaluated avg MAE, accuracy and CRITICAL recall, their ratios, and
    which of them are judged and failed."""
    live = group_metrics(rows, ["horizon"]).set_index("horizon")
    evaluated = rows.groupby("horizon")[[f"evaluated_{c}" for _, c, _, _ in CHECKED]].mean()
    critical = (rows["actual_state"] == CRITICAL).groupby(rows["horizon"]).sum()
    table = live.join(evaluated).assign(
        critical_rows=critical, versions=rows.groupby("horizon")["model_version"].agg(
            lambda v: ",".join(sorted(set(v)))))
    enough = table["rows"] >= config.min_rows
    for _, column, margin_field, lower_is_better in CHECKED:
        ratio = table[column] / table[f"evaluated_{column}"].where(table[f"evaluated_{column}"] > 0)
        judged = enough & ratio.notna()
        if column == "critical_recall":
            judged &= table["critical_rows"] >= config.min_critical_rows
        margin = getattr(config, margin_field)
        worse = ratio > 1 + margin if lower_is_better else ratio < 1 - margin
        table[f"{column}_ratio"], table[f"{column}_judged"] = ratio, judged
        table[f"{column}_failed"] = judged & worse
    return table


def degradation(scored: pd.DataFrame, levels: pd.DataFrame, config: PerformanceConfig) -> Verdict:
    """Live avg MAE, state accuracy and CRITICAL recall per horizon over the last window_hours
    of known outcomes against the evaluated levels of the versions that made them; degraded
    when any judged metric at any horizon is worse than evaluated beyond its margin."""
    rows = scored[known(scored)]
    if rows.empty:
        return Verdict(False, "no prediction has a known outcome yet: nothing to compare",
                       {"hours": config.window_hours, "start": None, "end": None, "rows": 0})
    end = rows["timestamp"].max()
    start = end - pd.Timedelta(hours=config.window_hours)
    rows = rows[rows["timestamp"] > start].merge(levels, on=["model_version", "horizon"], how="left")
    window = {"hours": config.window_hours, "start": start.isoformat(), "end": end.isoformat(),
              "rows": int(len(rows)), "margin": config.mae_margin,
              "margins": {c: getattr(config, f) for _, c, f, _ in CHECKED},
              "min_rows": config.min_rows, "min_critical_rows": config.min_critical_rows}
    table = _window_table(rows, config)
    horizons = {int(h): _horizon_verdict(r) for h, r in table.iterrows()}
    return Verdict(any(v["degraded"] for v in horizons.values()),
                   _reason(table, window, config), window, horizons)


def _horizon_verdict(r: pd.Series) -> dict:
    """One horizon's figures and verdict, as performance.json's "live" entry."""
    out = {"rows": int(r["rows"]), "live_mae_avg": _float(r["mae_avg"]),
           "evaluated_mae_avg": _float(r["evaluated_mae_avg"]),
           "ratio": finite(r["mae_avg_ratio"]), "critical_rows": int(r["critical_rows"]),
           "versions": r["versions"]}
    for _, column, _, _ in CHECKED[1:]:
        out |= {f"live_{column}": finite(r[column]),
                f"evaluated_{column}": finite(r[f"evaluated_{column}"]),
                f"{column}_ratio": finite(r[f"{column}_ratio"])}
    out["judged_metrics"] = [c for _, c, _, _ in CHECKED if r[f"{c}_judged"]]
    out["failed"] = [c for _, c, _, _ in CHECKED if r[f"{c}_failed"]]
    out["judged"], out["degraded"] = bool(out["judged_metrics"]), bool(out["failed"])
    return out


def _reason(table: pd.DataFrame, window: dict, config: PerformanceConfig) -> str:
    """One sentence naming each failed metric and horizon with its figures, or why none did."""
    span = f"over the last {window['hours']:g} h of known outcomes (to {window['end']})"
    parts = []
    for name, column, margin_field, lower_is_better in CHECKED:
        margin = getattr(config, margin_field)
        for h, r in table[table[f"{column}_failed"]].iterrows():
            live, evaluated = r[column], r[f"evaluated_{column}"]
            shown = (f"{live:.1f} s vs evaluated {evaluated:.1f} s" if lower_is_better
                     else f"{live:.1%} vs evaluated {evaluated:.1%}")
            limit = f"+{100 * margin:g} %" if lower_is_better else f"-{100 * margin:g} %"
            parts.append(f"{column}@h{h}: live {name} {shown} ({100 * (r[f'{column}_ratio'] - 1):+.0f} "
                         f"%, limit {limit}, {r['rows']} rows, v{r['versions']})")
    if parts:
        return "live performance below the evaluated level " + span + ": " + "; ".join(parts)
    judged = table[[f"{c}_judged" for _, c, _, _ in CHECKED]].any(axis=1)
    if not judged.any():
        return (f"not judged {span}: fewer than {window['min_rows']} scored rows per horizon, or "
                "no evaluated level for the version")
    worst = ", ".join(f"h{h} {100 * (r.mae_avg_ratio - 1):+.0f} %"
                      for h, r in table[table["mae_avg_judged"]].iterrows())
    recall = ("" if table["critical_recall_judged"].any() else
              f"; CRITICAL recall not judged (fewer than {config.min_critical_rows} CRITICAL "
              "minutes per horizon)")
    return (f"within the evaluated level at every judged horizon {span}: avg MAE within "
            f"+{100 * config.mae_margin:g} % (worst {worst or 'not judged'}), accuracy within "
            f"-{100 * config.accuracy_margin:g} %, CRITICAL recall within "
            f"-{100 * config.critical_recall_margin:g} %{recall}")


@dataclass
class PerformanceResult:
    """What performance_monitor hands the dashboard: the document, the scored predictions of
    the window and the whole metrics history."""

    document: dict
    scored: pd.DataFrame
    history: pd.DataFrame
    explanations: list[dict] = field(default_factory=list)  # newest minute per line, explained


# --- the document and the history ----------------------------------------------------------------
def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: ISO timestamps, None for NaN."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].map(lambda t: t.isoformat())
    out = out.astype(object).where(out.notna(), None)
    return out.to_dict(orient="records")


def latest_forecasts(scored: pd.DataFrame) -> list[dict]:
    """Per line, the newest minute forecast and every horizon's min/max/avg/state/probabilities."""
    if scored.empty:
        return []
    newest = scored.groupby("line_id")["timestamp"].transform("max")
    rows = scored[scored["timestamp"] == newest].sort_values(
        ["line_id", "horizon", "source"]).drop_duplicates(["line_id", "horizon"], keep="first")
    out = []
    for line, group in rows.groupby("line_id", sort=True):  # one small group per line
        first = group.iloc[0]
        out.append({"line_id": str(line), "as_of": first["timestamp"].isoformat(),
                    "model_version": str(first["model_version"]), "source": str(first["source"]),
                    "horizons": {str(int(r["horizon"])): {
                        **{t: round(float(r[f"pred_{t}"]), 1) for t in REGRESSION_TARGETS},
                        "state": STATES[int(r["pred_state"])],
                        "proba": {s: _round(r.get(f"proba_{s}")) for s in STATES}}
                        for _, r in group.iterrows()}})
    return out


def _round(value) -> float | None:
    value = _float(value)
    return None if math.isnan(value) else round(value, 4)


ALARM_FIGURES = ("critical_precision", "false_alarms_per_shift", "lead_time_median_min",
                 "caught_5min_share", "critical_episodes")


def live_alarm_figures(rows: pd.DataFrame) -> dict[int, dict]:
    """Per horizon, the alarms as operators lived them over these rows (an alarm is a forecast
    of CRITICAL: the state follows the served version's operating point): precision, false
    alarm episodes per line per shift, median lead time and the share caught 5 minutes ahead."""
    rows = rows[known(rows)]
    out = {}
    for h, part in rows.groupby("horizon"):
        figures = alarm_metrics((part["pred_state"] == CRITICAL).to_numpy(float),
                                part["actual_state"].to_numpy(), part["line_id"].to_numpy(),
                                part["timestamp"].to_numpy(), int(h), 0.5)
        out[int(h)] = {k: figures[k] for k in ALARM_FIGURES}
    return out


def window_metrics(scored: pd.DataFrame, window: dict) -> dict:
    """Every metric per horizon over the verdict's window (all lines, versions and sources),
    with the live alarm figures."""
    if not window.get("start"):
        return {}
    rows = scored[scored["timestamp"] > pd.Timestamp(window["start"])]
    table = group_metrics(rows, ["horizon"])
    alarms = live_alarm_figures(rows)
    return {str(int(r["horizon"])): {**{k: float(r[k]) for k in ("rows", *METRICS)},
                                     **alarms.get(int(r["horizon"]), {})}
            for _, r in table.iterrows()}


def performance_document(*, model: dict, verdict: Verdict, levels: pd.DataFrame,
                         periods: pd.DataFrame, scored: pd.DataFrame, sources: dict,
                         tz: str) -> dict:
    """performance.json: the model watched, the window verdict, evaluated levels, the newest
    forecasts and the hourly/daily metrics of this run (see README, Monitoring)."""
    current = levels[levels["model_version"] == str(model.get("version_label"))]
    return finite({
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "timezone": tz,
        "model": model,
        "sources": sources,
        "window": verdict.window,
        "degraded": verdict.degraded,
        "judged": verdict.judged,
        "degradation_reason": verdict.reason,
        "live": {str(h): v for h, v in verdict.horizons.items()},
        "window_metrics": window_metrics(scored, verdict.window),
        "evaluated": {str(int(r["horizon"])): {m: _float(r[f"evaluated_{m}"]) for m in METRICS}
                      for _, r in current.iterrows()},
        "latest": latest_forecasts(scored),
        "periods": _records(periods.sort_values(list(HISTORY_KEY))),
    })


def append_history(path: Path, periods: pd.DataFrame) -> pd.DataFrame:
    """Add this run's periods to the Parquet history: a (line, horizon, period, start) it
    recomputed replaces what was stored for it, so re-running adds no duplicate row."""
    periods = periods.assign(computed_at=pd.Timestamp.now(tz="UTC"))
    if path.exists():
        old = pd.read_parquet(path)
        redone = pd.MultiIndex.from_frame(periods[list(PERIOD_KEY)])
        old = old[~pd.MultiIndex.from_frame(old[list(PERIOD_KEY)]).isin(redone)]
        periods = pd.concat([old, periods], ignore_index=True) if len(old) else periods
    periods = periods.sort_values(list(HISTORY_KEY), ignore_index=True)
    write_bytes(path, periods.to_parquet(index=False))
    return periods


def hourly_error(history: pd.DataFrame, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Avg MAE per hour and horizon over every line and source (weighted by rows), with the
    evaluated level of the versions behind it."""
    rows = history[history["period"] == "hour"]
    if since is not None:
        rows = rows[rows["period_start"] >= since]
    if rows.empty:
        return pd.DataFrame(columns=["period_start", "horizon", "rows", "mae_avg", "evaluated_mae_avg"])
    rows = rows.assign(err=rows["mae_avg"] * rows["rows"],
                       ev=rows["evaluated_mae_avg"] * rows["rows"],
                       ev_rows=np.where(rows["evaluated_mae_avg"].notna(), rows["rows"], 0))
    g = rows.groupby(["period_start", "horizon"], sort=True)[["rows", "err", "ev", "ev_rows"]].sum()
    out = pd.DataFrame({"rows": g["rows"], "mae_avg": g["err"] / g["rows"],
                        "evaluated_mae_avg": g["ev"] / g["ev_rows"].where(g["ev_rows"] > 0)})
    return out.reset_index()
