"""Predictions to monitor and their delayed actuals, no Dagster.

Two sources, one long frame (one row per line, minute, horizon and model version):
- the REST API's prediction log (``serve/prediction_log.py``): what was really served;
- a rolling backtest of a model over the newest cleaned data, for the minutes the log does not
  cover yet (a new deployment, a line nobody queried).
Actual outcomes come from the cleaned logs through ``features.build_targets``: a prediction
made at minute t is scored once the minutes t+1..t+h have arrived.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import orjson
import pandas as pd

from amhs_assets.contract import LOOKBACK_MIN, REGISTERED_MODEL_NAME, REGRESSION_TARGETS, STATES
from amhs_assets.features.compute import build_features, feature_rows_usable
from amhs_assets.features.spec import FEATURE_NAMES
from amhs_assets.features.targets import build_targets

API, BACKTEST = "api", "backtest"
PREDICTED = tuple(f"pred_{t}" for t in REGRESSION_TARGETS)
ACTUAL = tuple(f"actual_{t}" for t in REGRESSION_TARGETS)
PROBA = tuple(f"proba_{s}" for s in STATES)
PREDICTION_COLUMNS = ("line_id", "timestamp", "horizon", "model_version", "source",
                      *PREDICTED, "pred_state", *PROBA)
SCORED_COLUMNS = (*PREDICTION_COLUMNS, *ACTUAL, "actual_state")
UNKNOWN_STATE = -1


class Forecaster(Protocol):
    """A trained model: min/max/avg and state probabilities at a horizon from feature rows."""

    horizons: tuple[int, ...]

    def predict(self, X: np.ndarray, h: int) -> dict[str, np.ndarray]: ...


def empty_predictions() -> pd.DataFrame:
    """A prediction frame without rows, with every column typed."""
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in PREDICTION_COLUMNS})
    return frame.astype({"line_id": str, "model_version": str, "source": str, "horizon": int,
                         "pred_state": int, "timestamp": "datetime64[ns, UTC]"})


def window_start(end: pd.Timestamp, hours: float, timezone: str) -> pd.Timestamp:
    """Local midnight at or before end - hours (UTC): windows start on whole local days, so
    every hour and day they cover is complete on its left edge."""
    local = (end - pd.Timedelta(hours=hours)).tz_convert(timezone)
    return local.normalize().tz_convert("UTC")


# --- the prediction log -------------------------------------------------------------------------
def _read_jsonl(path: Path) -> tuple[list[dict], int]:
    """The JSON objects of one log file, and how many lines could not be read (a torn write)."""
    records, bad = [], 0
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            bad += 1
    return records, bad


def log_files(directory: Path, since: pd.Timestamp | None = None) -> list[Path]:
    """The log's part files, from the date partition of `since` (UTC) on."""
    first = since.strftime("%Y-%m-%d") if since is not None else ""
    return sorted(p for p in Path(directory).glob("date=*/*.jsonl")
                  if p.parent.name.removeprefix("date=") >= first)


def read_prediction_log(directory: Path, since: pd.Timestamp | None = None
                        ) -> tuple[pd.DataFrame, dict]:
    """Logged predictions of amhs-predictor as a long frame (source 'api'), the newest answer
    kept per line, minute, horizon and version; and what was read (files, records, bad lines)."""
    files = log_files(directory, since)
    records, bad = [], 0
    for path in files:
        got, torn = _read_jsonl(path)
        records += got
        bad += torn
    stats = {"files": len(files), "records": len(records), "unreadable_lines": bad}
    if not records:
        return empty_predictions(), stats
    frame = pd.DataFrame.from_records(records)
    if "model_name" in frame:
        frame = frame[frame["model_name"] == REGISTERED_MODEL_NAME]
    flat = pd.json_normalize(frame["horizons"].tolist(), sep=".")
    flat.index = frame.index
    parts = []
    for h in sorted({int(c.split(".")[0]) for c in flat.columns}):
        cols = {f"{h}.{t}": f"pred_{t}" for t in REGRESSION_TARGETS}
        cols |= {f"{h}.proba.{s}": f"proba_{s}" for s in STATES}
        part = flat.reindex(columns=[*cols, f"{h}.state"]).rename(columns=cols)
        part["pred_state"] = part.pop(f"{h}.state").map({s: i for i, s in enumerate(STATES)})
        part = part.assign(horizon=h, line_id=frame["line_id"].astype(str),
                           model_version=frame["model_version"].astype(str),
                           timestamp=pd.to_datetime(frame["as_of"], utc=True),
                           logged_at=pd.to_datetime(frame["logged_at"], utc=True), source=API)
        parts.append(part.dropna(subset=["pred_avg", "pred_state"]))
    long = pd.concat(parts, ignore_index=True).sort_values("logged_at", kind="stable")
    long = long.drop_duplicates(["line_id", "timestamp", "horizon", "model_version"], keep="last")
    if since is not None:
        long = long[long["timestamp"] >= since]
    out = long.reindex(columns=list(PREDICTION_COLUMNS)).astype({"pred_state": int})
    stats["predictions"] = int(len(out))
    return out.reset_index(drop=True), stats


# --- the rolling backtest ------------------------------------------------------------------------
def recent_rows(cleaned: pd.DataFrame, since: pd.Timestamp) -> pd.DataFrame:
    """The cleaned rows from `since` on, with each line's lookback before it (features need it)."""
    first = since - pd.Timedelta(minutes=LOOKBACK_MIN - 1)
    return cleaned[cleaned["timestamp"] >= first]


def backtest_predictions(cleaned: pd.DataFrame, model: Forecaster, version: str,
                         since: pd.Timestamp, horizons: tuple[int, ...],
                         feature_names: tuple[str, ...] = FEATURE_NAMES) -> pd.DataFrame:
    """The model's forecasts at every usable minute from `since` on (source 'backtest'), computed
    from the cleaned logs as the API would have computed them."""
    recent = recent_rows(cleaned, since)
    if recent.empty:
        return empty_predictions()
    features = build_features(recent)
    rows = feature_rows_usable(recent) & (recent["timestamp"] >= since).to_numpy()
    if not rows.any():
        return empty_predictions()
    X = features.loc[rows, list(feature_names)].to_numpy(np.float32)
    keys = features.loc[rows, ["line_id", "timestamp"]].reset_index(drop=True)
    parts = []
    for h in horizons:
        pred = model.predict(X, h)
        parts.append(keys.assign(horizon=int(h), model_version=str(version), source=BACKTEST,
                                 **{f"pred_{t}": np.asarray(pred[t], float) for t in REGRESSION_TARGETS},
                                 pred_state=pred["state"] if "state" in pred
                                 else pred["proba"].argmax(axis=1),
                                 **{f"proba_{s}": pred["proba"][:, i] for i, s in enumerate(STATES)}))
    return pd.concat(parts, ignore_index=True).reindex(columns=list(PREDICTION_COLUMNS))


def combine(logged: pd.DataFrame, backtest: pd.DataFrame) -> pd.DataFrame:
    """Logged predictions, and backtest ones only for the (line, minute, horizon) the log lacks."""
    keys = ["line_id", "timestamp", "horizon"]
    if logged.empty:
        return backtest.reset_index(drop=True)
    covered = pd.MultiIndex.from_frame(logged[keys])
    fill = backtest[~pd.MultiIndex.from_frame(backtest[keys]).isin(covered)]
    return pd.concat([logged, fill], ignore_index=True)


# --- actual outcomes -----------------------------------------------------------------------------
def actual_outcomes(cleaned: pd.DataFrame, since: pd.Timestamp, horizons: tuple[int, ...],
                    thresholds: dict) -> pd.DataFrame:
    """Long frame of each line, minute and horizon's actual min/max/avg/state from `since` on;
    NaN and -1 where the window t+1..t+h has not arrived yet or touches a long gap."""
    recent = cleaned[cleaned["timestamp"] >= since]
    targets = build_targets(recent, horizons, thresholds["target_column"],
                            thresholds["warning_s"], thresholds["critical_s"])
    parts = [targets[["line_id", "timestamp"]].assign(
        horizon=int(h), **{f"actual_{t}": targets[f"{t}_{h}"] for t in REGRESSION_TARGETS},
        actual_state=targets[f"state_{h}"].astype(int)) for h in horizons]
    return pd.concat(parts, ignore_index=True)


def score(predictions: pd.DataFrame, actuals: pd.DataFrame) -> pd.DataFrame:
    """Predictions with their actual outcomes (NaN and -1 while still unknown)."""
    actuals = actuals.astype({"line_id": str})
    out = predictions.astype({"line_id": str}).merge(
        actuals, on=["line_id", "timestamp", "horizon"], how="left")
    out["actual_state"] = out["actual_state"].fillna(UNKNOWN_STATE).astype(int)
    return out.reindex(columns=list(SCORED_COLUMNS))


def known(scored: pd.DataFrame) -> pd.Series:
    """Rows whose actual outcome has arrived."""
    return scored["actual_avg"].notna() & (scored["actual_state"] >= 0)
