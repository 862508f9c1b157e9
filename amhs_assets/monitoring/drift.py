"""Data drift of the cleaned AMHS logs against a reference window, with Evidently; no Dagster.

Evidently's defaults do not suit minute-level AMHS data, which is autocorrelated, periodic
(shifts, weekdays), wanders from day to day and has heavy incident tails: its default for large
samples (Wasserstein distance over the reference's std, threshold 0.1) flags 45-95% of the
(line, column) pairs of an ordinary day, and p-value tests are worse (1,440 autocorrelated
minutes are not 1,440 independent draws). Instead:

1. Statistic, per column: ``amhs_trimmed_wasserstein``, registered with Evidently as a method of
   its own: the mean gap between the reference's and the current window's quantile functions
   over the 10th-60th percentiles, over the reference's inter-quartile range (its std where the
   IQR is 0). Incidents fill the upper tail of times, queues and utilisation, and ordinary days
   differ most in their incidents; a regime change (more demand, fewer vehicles) moves the
   typical minutes too. Rare-event counts (EVENT_COLUMNS) drift by their rate, which lives in
   the tail: they keep Evidently's own ``wasserstein``. Neither score grows with the row count.
2. Thresholds, per column, from the reference itself: it is cut into windows as long as the
   current one (``current_hours``); each window of each line is scored against the rest of that
   line's reference (leave one window out); the threshold is the ``threshold_quantile`` of these
   scores, pooled over lines (the scores are scale-free), times ``threshold_margin``, and at
   least ``min_threshold``.
3. Per line: each line is compared with its own reference (lines differ in fleet and demand).
   Evidently sees one column per line and contract column, named ``LINE/column``.
4. Decision: a (line, column) pair drifts when its score exceeds its column's threshold; drift is
   detected when the share of drifted pairs reaches ``drift_share``, the rule and numbers of
   Evidently's DriftedColumnsCount in the HTML report. A column drifts when it drifts on any line.

Not monitored: ``vehicles_total`` (fleet size is configuration: it changes in steps) and
``pm_active`` (a maintenance calendar). Measured figures: benchmarks/bench_drift.py.

Here: the comparison, the drift document and Evidently's report, and the windows the asset
compares; the statistic, DriftConfig and the calibration live in drift_calibration, the page
(drift.html) in drift_page.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.legacy.core import ColumnType
from evidently.metrics import DriftedColumnsCount, ValueDrift

from amhs_assets.contract import FLAG_MISSING, KEY_COLUMNS, TARGET_COLUMN
from amhs_assets.monitoring.drift_calibration import (
    ColumnThreshold,
    DriftConfig,
    calibrate_thresholds,
    stat_test,
    usable_rows,
)

LINE_SEPARATOR = "/"  # Evidently column of one line's column: "OHT-A/transfer_time_avg_s"
PREDICTION_LABEL = "prediction:"  # "OHT-A/prediction:avg_25"
REPORT_TITLE = "AMHS data drift"


# --- comparison -------------------------------------------------------------------------------
@dataclass
class Comparison:
    """Scores of every (line, column) pair compared, and the wide frames Evidently reports on."""

    pairs: pd.DataFrame  # line_id, column, name, method, threshold, score, drifted
    reference: pd.DataFrame  # one column per pair name, indexed by timestamp
    current: pd.DataFrame
    skipped_lines: dict[str, str]


def _wide(frame: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """One column per (line, column) pair named by the pair's name, one row per minute."""
    if pairs.empty:
        return pd.DataFrame()
    if frame.duplicated(list(KEY_COLUMNS)).any():
        raise ValueError("drift input holds several rows per line_id and timestamp: pass one row "
                         "per line and minute (e.g. one prediction column per horizon)")
    wide = frame.pivot(index="timestamp", columns="line_id", values=sorted(set(pairs["column"])))
    names = dict(zip(zip(pairs["column"], pairs["line_id"]), pairs["name"]))
    wide.columns = [names.get((column, str(line)), "") for column, line in wide.columns]
    return wide[list(pairs["name"])].reset_index(drop=True)


def compare(reference: pd.DataFrame, current: pd.DataFrame,
            thresholds: Mapping[str, ColumnThreshold], min_rows: int, label: str = ""
            ) -> Comparison:
    """Score every line's columns against the same line's reference with Evidently's methods.

    Pairs are named ``LINE/<label>column`` (the label keeps predictions apart from data columns).
    """
    ref_groups = reference.groupby("line_id", sort=True)
    cur_groups = current.groupby("line_id", sort=True)
    skipped = {str(line): "not in the reference" for line in cur_groups.groups
               if line not in ref_groups.groups}
    skipped |= {str(line): "not in the current window" for line in ref_groups.groups
                if line not in cur_groups.groups}
    rows = []
    for line, cur in cur_groups:
        if line not in ref_groups.groups:
            continue
        ref = ref_groups.get_group(line)
        for column, th in thresholds.items():
            r, c = ref[column].dropna(), cur[column].dropna()
            if len(r) < min_rows or len(c) < min_rows:
                continue
            result = stat_test(th.method)(r, c, ColumnType.Numerical, th.threshold)
            rows.append({"line_id": str(line), "column": column,
                         "name": f"{line}{LINE_SEPARATOR}{label}{column}", "method": th.method,
                         "threshold": float(th.threshold), "score": float(result.drift_score),
                         "drifted": bool(result.drifted)})
    pairs = pd.DataFrame(rows, columns=["line_id", "column", "name", "method", "threshold",
                                        "score", "drifted"])
    for line in set(ref_groups.groups) & set(cur_groups.groups):
        if str(line) not in set(pairs["line_id"]):
            skipped[str(line)] = f"fewer than {min_rows} values in every column"
    return Comparison(pairs, _wide(reference, pairs), _wide(current, pairs), skipped)


# --- the result -------------------------------------------------------------------------------
def _span(frame: pd.DataFrame) -> dict:
    """First and last minute (ISO 8601, UTC) and the number of rows of a window."""
    if frame.empty:
        return {"start": None, "end": None, "rows": 0}
    return {"start": frame["timestamp"].min().isoformat(),
            "end": frame["timestamp"].max().isoformat(), "rows": int(len(frame))}


def _summary(comparison: Comparison, drift_share: float) -> dict:
    """Share of drifted pairs, per column (drifted on any line) and per line."""
    pairs = comparison.pairs
    share = float(pairs["drifted"].mean()) if len(pairs) else 0.0
    columns = {}
    for column, g in pairs.groupby("column", sort=False):
        columns[column] = {
            "drifted": bool(g["drifted"].any()), "score": float(g["score"].max()),
            "method": str(g["method"].iat[0]), "threshold": float(g["threshold"].iat[0]),
            "lines_drifted": sorted(g.loc[g["drifted"], "line_id"]),
            "per_line": dict(zip(g["line_id"], g["score"].astype(float))),
        }
    per_line = {}
    for line, g in pairs.groupby("line_id", sort=True):
        line_share = float(g["drifted"].mean())
        per_line[line] = {"share_drifted": line_share, "drift_detected": line_share >= drift_share,
                          "drifted_columns": list(g.loc[g["drifted"], "column"])}
    return {"drift_detected": bool(len(pairs)) and share >= drift_share, "share_drifted": share,
            "pairs_compared": int(len(pairs)), "pairs_drifted": int(pairs["drifted"].sum()),
            "columns": columns, "per_line": per_line, "lines_skipped": comparison.skipped_lines}


def _target_summary(summary: dict, reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    """Drift of the target column with its level per line (median and 90th percentile)."""
    if TARGET_COLUMN not in summary["columns"]:
        return {"column": TARGET_COLUMN, "available": False}
    entry = summary["columns"][TARGET_COLUMN]
    levels = {}
    for line, score in entry["per_line"].items():
        ref = reference.loc[reference["line_id"] == line, TARGET_COLUMN].dropna()
        cur = current.loc[current["line_id"] == line, TARGET_COLUMN].dropna()
        levels[line] = {"score": score, "drifted": line in entry["lines_drifted"],
                        "reference_median": float(ref.median()),
                        "current_median": float(cur.median()),
                        "reference_p90": float(ref.quantile(0.9)),
                        "current_p90": float(cur.quantile(0.9))}
    return {"column": TARGET_COLUMN, "available": True,
            **{k: entry[k] for k in ("drifted", "score", "method", "threshold")},
            "per_line": levels}


@dataclass
class DriftResult:
    """The drift document (reports/drift.json) and, built on demand, Evidently's report of every
    pair (drift_page writes drift.html)."""

    document: dict
    data: Comparison
    predictions: Comparison | None

    @cached_property
    def snapshot(self) -> Snapshot:
        """Evidently's report: the drifted-pair count and a ValueDrift per pair, our thresholds."""
        parts = [self.data] + ([self.predictions] if self.predictions is not None else [])
        pairs = pd.concat([p.pairs for p in parts], ignore_index=True)
        data_names = list(self.data.pairs["name"])
        methods = dict(zip(self.data.pairs["name"], self.data.pairs["method"]))
        thresholds = dict(zip(self.data.pairs["name"], self.data.pairs["threshold"]))
        metrics = [DriftedColumnsCount(columns=data_names, drift_share=self.document["drift_share"],
                                       per_column_method=methods, per_column_threshold=thresholds)]
        metrics += [ValueDrift(column=n, method=m, threshold=t)
                    for n, m, t in zip(pairs["name"], pairs["method"], pairs["threshold"])]
        definition = DataDefinition(numerical_columns=list(pairs["name"]))
        reference = pd.concat([p.reference for p in parts], axis=1)
        current = pd.concat([p.current for p in parts], axis=1)
        with warnings.catch_warnings():  # correlations of a column constant in one window
            warnings.simplefilter("ignore", RuntimeWarning)
            return Report(metrics).run(Dataset.from_pandas(current, data_definition=definition),
                                       Dataset.from_pandas(reference, data_definition=definition))

    def evidently_scores(self) -> dict[str, float]:
        """Evidently's ValueDrift score of every pair, by pair name (they equal the document's)."""
        return {item["config"]["column"]: float(item["value"])
                for item in self.snapshot.dict()["metrics"]
                if item["config"]["type"].endswith(":ValueDrift")}


def _prediction_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns of a predictions frame other than its keys."""
    return [c for c in frame.columns if c not in (*KEY_COLUMNS, FLAG_MISSING)
            and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])]


def detect_drift(reference: pd.DataFrame, current: pd.DataFrame,
                 config: DriftConfig = DriftConfig(), predictions_ref: pd.DataFrame | None = None,
                 predictions_cur: pd.DataFrame | None = None,
                 thresholds: Mapping[str, ColumnThreshold] | None = None) -> DriftResult:
    """Compare the current window with the reference, line by line, on calibrated thresholds.

    reference, current: cleaned frames (line_id, timestamp, contract columns, is_missing); minutes
    of long gaps are dropped. predictions_ref/_cur: optional frames keyed by line_id and timestamp
    with one numeric column per prediction (the champion's); their thresholds are calibrated on
    predictions_ref the same way. thresholds: reuse a calibration instead of computing it.
    """
    ref, cur = usable_rows(reference, config.columns), usable_rows(current, config.columns)
    thresholds = calibrate_thresholds(ref, config) if thresholds is None else thresholds
    data = compare(ref, cur, thresholds, config.min_rows)
    if data.pairs.empty:
        raise ValueError("no line has enough values in both the reference and the current window: "
                         f"{data.skipped_lines}")
    summary = _summary(data, config.drift_share)
    document = {
        **summary, "drift_share": config.drift_share,
        "reference": _span(ref), "current": _span(cur),
        "target": _target_summary(summary, ref, cur),
        "calibration": {"window_hours": config.current_hours,
                        "threshold_quantile": config.threshold_quantile,
                        "threshold_margin": config.threshold_margin,
                        "min_threshold": config.min_threshold},
    }
    predictions = None
    if predictions_ref is not None and predictions_cur is not None:
        names = _prediction_columns(predictions_ref)
        p_ref, p_cur = usable_rows(predictions_ref, names), usable_rows(predictions_cur, names)
        predictions = compare(p_ref, p_cur, calibrate_thresholds(p_ref, config, names),
                              config.min_rows, label=PREDICTION_LABEL)
        p_summary = _summary(predictions, config.drift_share)
        document["predictions"] = {"available": True, "reference": _span(p_ref),
                                   "current": _span(p_cur), **p_summary}
    else:
        document["predictions"] = {"available": False}
    return DriftResult(document, data, predictions)


# --- windows for the asset --------------------------------------------------------------------
def training_window(cleaned: pd.DataFrame, boundaries: pd.DataFrame) -> pd.DataFrame:
    """Rows of each line in its training split (start <= t < train_end): the champion's reference.

    boundaries: ModelDataset.boundaries (line_id, start, train_end, ...); other lines are dropped.
    """
    bounds = boundaries[["line_id", "start", "train_end"]].assign(
        start=lambda b: pd.to_datetime(b["start"], utc=True),
        train_end=lambda b: pd.to_datetime(b["train_end"], utc=True))
    rows = cleaned[["line_id", "timestamp"]].merge(bounds, on="line_id", how="left")
    inside = (rows["timestamp"] >= rows["start"]) & (rows["timestamp"] < rows["train_end"])
    return cleaned[inside.to_numpy()]


def latest_window(cleaned: pd.DataFrame, hours: float) -> pd.DataFrame:
    """The last `hours` of the data, up to its last minute (all lines on one clock)."""
    end = cleaned["timestamp"].max()
    return cleaned[cleaned["timestamp"] > end - pd.Timedelta(hours=hours)]


def reference_window(cleaned: pd.DataFrame, current_bounds: pd.DataFrame,
                     champion_bounds: pd.DataFrame | None, champion: str | None
                     ) -> tuple[pd.DataFrame, dict]:
    """The reference: the champion's training window (champion_bounds, from its version tags)
    while the data still hold it, else the current models' training window; and which one."""
    if champion_bounds is not None:
        bounds = champion_bounds
        if (bounds["line_id"] == "*").all():  # only the overall span is known: every line
            lines = pd.Series(cleaned["line_id"].unique(), name="line_id")
            bounds = bounds.drop(columns="line_id").merge(lines, how="cross")
        frame = training_window(cleaned, bounds)
        if len(frame):
            return frame, {"source": "champion", "champion_version": champion}
        why = f"the data no longer hold champion v{champion}'s training window"
    elif champion is not None:
        why = f"champion v{champion} has no train_window tag"
    else:
        why = "no champion yet"
    return (training_window(cleaned, current_bounds),
            {"source": "current_training", "champion_version": champion, "why": why})
