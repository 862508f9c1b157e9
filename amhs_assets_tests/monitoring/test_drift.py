"""Drift detection on simulated AMHS data: ordinary days pass, a regime change is caught."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from amhs_assets.contract import FLAG_MISSING, NUMERIC_COLUMNS, RAW_COLUMNS, TARGET_COLUMN
from amhs_assets.ingest.clean import regularize
from amhs_assets.models.splits import SplitConfig, split_boundaries
from amhs_assets.monitoring.drift import detect_drift, latest_window, training_window
from amhs_assets.monitoring.drift_page import write_drift_html
from amhs_assets.monitoring.drift_calibration import (
    DRIFT_COLUMNS,
    DriftConfig,
    calibrate_thresholds,
    trimmed_wasserstein,
)
from amhs_assets.simulate.lines import simulate_lines

START = pd.Timestamp("2026-02-02", tz="UTC")
LINES = ["OHT-A", "OHT-B"]
SEEDS = (1, 2, 3)
REFERENCE_DAYS = 14
DRIFT_DAY = 14


def cleaned(seed: int, days: int, drift_day: int | None = None) -> pd.DataFrame:
    """Simulated lines as the ingest step leaves them."""
    raw = pd.concat(simulate_lines(LINES, START, days, seed, drift_day=drift_day).values())
    typed = raw.astype({c: "float64" for c in NUMERIC_COLUMNS})[list(RAW_COLUMNS)]
    return regularize(typed, 5)


def windows(frame: pd.DataFrame, day: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 14 days before `day` (reference) and `day` itself (current)."""
    t, first = frame["timestamp"], START + pd.Timedelta(days=day)
    reference = frame[(t >= first - pd.Timedelta(days=REFERENCE_DAYS)) & (t < first)]
    return reference, frame[(t >= first) & (t < first + pd.Timedelta(days=1))]


@pytest.fixture(scope="module")
def runs() -> dict[tuple[int, str], pd.DataFrame]:
    """Per seed: 15 days of one regime, and the same 15 days with the regime changing on day 14."""
    out = {}
    for seed in SEEDS:
        out[seed, "same"] = cleaned(seed, DRIFT_DAY + 1)
        out[seed, "drift"] = cleaned(seed, DRIFT_DAY + 1, drift_day=DRIFT_DAY)
    return out


@pytest.fixture(scope="module")
def documents(runs) -> dict[tuple[int, str], dict]:
    return {key: detect_drift(*windows(frame, DRIFT_DAY)).document for key, frame in runs.items()}


@pytest.mark.parametrize("seed", SEEDS)
def test_an_ordinary_day_of_the_same_regime_raises_no_drift(documents, seed):
    doc = documents[seed, "same"]
    assert doc["drift_detected"] is False
    assert doc["share_drifted"] < 0.1
    assert doc["target"]["drifted"] is False


@pytest.mark.parametrize("seed", SEEDS)
def test_more_demand_and_fewer_vehicles_is_drift_with_the_target_drifted(documents, seed):
    doc = documents[seed, "drift"]
    assert doc["drift_detected"] is True
    assert doc["share_drifted"] >= 1.5 * DriftConfig().drift_share
    assert doc["columns"][TARGET_COLUMN]["drifted"] is True
    assert doc["target"]["drifted"] is True
    for level in doc["target"]["per_line"].values():
        assert level["current_median"] > level["reference_median"] * 1.2


def test_a_week_of_days_each_against_the_fortnight_before_raises_no_drift():
    frame = cleaned(seed=11, days=REFERENCE_DAYS + 7)
    shares = []
    for day in range(REFERENCE_DAYS, REFERENCE_DAYS + 7):
        doc = detect_drift(*windows(frame, day)).document
        assert doc["drift_detected"] is False, (day, doc["share_drifted"])
        shares.append(doc["share_drifted"])
    assert max(shares) < DriftConfig().drift_share / 2


def test_the_document_has_every_required_key_and_is_json(documents):
    doc = json.loads(json.dumps(documents[1, "drift"]))
    assert isinstance(doc["drift_detected"], bool) and isinstance(doc["share_drifted"], float)
    assert set(doc["columns"]) == set(DRIFT_COLUMNS)
    for entry in doc["columns"].values():
        assert isinstance(entry["drifted"], bool)
        assert isinstance(entry["score"], float) and isinstance(entry["threshold"], float)
        assert isinstance(entry["method"], str)
    for window in ("reference", "current"):
        assert set(doc[window]) >= {"start", "end", "rows"}
    assert doc["reference"]["rows"] == REFERENCE_DAYS * 1440 * len(LINES)
    assert doc["current"]["start"] == (START + pd.Timedelta(days=DRIFT_DAY)).isoformat()
    assert set(doc["per_line"]) == set(LINES)
    for line in doc["per_line"].values():
        assert isinstance(line["share_drifted"], float) and isinstance(line["drift_detected"], bool)
    assert doc["target"]["column"] == TARGET_COLUMN
    assert {"drifted", "score", "threshold", "method"} <= set(doc["target"])
    assert doc["predictions"] == {"available": False}


def test_the_html_report_is_evidently_with_the_same_scores_and_drift_count(runs, tmp_path):
    config = DriftConfig(columns=(TARGET_COLUMN, "jobs_queued", "vehicles_idle", "alarms_minor"))
    result = detect_drift(*windows(runs[1, "drift"], DRIFT_DAY), config)
    path = write_drift_html(result, tmp_path / "reports" / "drift.html")
    html = path.read_text(encoding="utf-8")
    assert len(html) > 10_000 and "evidently" in html.lower()
    assert "Trimmed Wasserstein" in html and f"OHT-A/{TARGET_COLUMN}" in html
    pairs = result.data.pairs
    assert result.evidently_scores() == pytest.approx(dict(zip(pairs["name"], pairs["score"])))
    count = next(m for m in result.snapshot.dict()["metrics"]
                 if m["config"]["type"].endswith(":DriftedColumnsCount"))
    assert count["value"]["share"] == pytest.approx(result.document["share_drifted"])


def test_predictions_of_a_changed_regime_drift_and_are_reported_apart(runs):
    def predictions(frame: pd.DataFrame) -> pd.DataFrame:  # a smoothed level, like a forecast
        level = frame.groupby("line_id")[TARGET_COLUMN].transform(
            lambda s: s.rolling(30, min_periods=1).median())
        return frame[["line_id", "timestamp"]].assign(avg_25=level, state_25=(level > 300) * 1.0)

    config = DriftConfig(columns=(TARGET_COLUMN,))
    for kind, expected in (("same", False), ("drift", True)):
        reference, current = windows(runs[2, kind], DRIFT_DAY)
        doc = detect_drift(reference, current, config, predictions(reference),
                           predictions(current)).document
        assert doc["predictions"]["available"] is True
        assert doc["predictions"]["columns"]["avg_25"]["drifted"] is expected
        assert set(doc["predictions"]["columns"]) == {"avg_25", "state_25"}


def test_minutes_of_long_gaps_are_left_out(runs):
    reference, current = windows(runs[1, "same"], DRIFT_DAY)
    current = current.copy()
    gap = current.index[:120]
    current.loc[gap, list(NUMERIC_COLUMNS)] = 0.0  # values a gap must never contribute
    current.loc[gap, FLAG_MISSING] = True
    config = DriftConfig(columns=(TARGET_COLUMN, "jobs_requested"))
    doc = detect_drift(reference, current, config).document
    assert doc["current"]["rows"] == len(current) - len(gap)
    assert doc["drift_detected"] is False


def test_thresholds_come_from_the_reference_own_days_with_the_margin(runs):
    reference, _ = windows(runs[1, "same"], DRIFT_DAY)
    config = DriftConfig(columns=(TARGET_COLUMN, "jobs_requested"),
                         per_column_method={"jobs_requested": "wasserstein"})
    thresholds = calibrate_thresholds(reference, config)
    target, requested = thresholds[TARGET_COLUMN], thresholds["jobs_requested"]
    assert target.windows == REFERENCE_DAYS * len(LINES)
    assert target.threshold == pytest.approx(max(target.reference_score * 1.3, 0.1))
    assert requested.method == "wasserstein"  # Evidently's own, calibrated the same way
    assert requested.threshold > 0.1  # its default would flag ordinary days


def test_p_value_methods_and_a_too_short_reference_are_refused(runs):
    with pytest.raises(ValueError, match="p-values"):
        DriftConfig(method="ks")
    reference, _ = windows(runs[1, "same"], DRIFT_DAY)
    with pytest.raises(ValueError, match="at least 7 windows"):
        calibrate_thresholds(reference[reference["timestamp"] < START + pd.Timedelta(days=5)])


def test_trimmed_distance_follows_the_bulk_and_ignores_the_tails():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 20_000)
    iqr = np.subtract(*np.quantile(x, [0.75, 0.25]))
    assert trimmed_wasserstein(x, x) == 0.0
    assert trimmed_wasserstein(x, x + iqr) == pytest.approx(1.0, rel=0.01)
    assert trimmed_wasserstein(x * 100, x[:1440] * 100 + 50) == pytest.approx(
        trimmed_wasserstein(x, x[:1440] + 0.5))  # scale-free
    tails = x[:1440].copy()
    tails[:72] = 1_000.0  # 5% incident minutes
    assert trimmed_wasserstein(x, tails) < 0.1
    assert trimmed_wasserstein(np.r_[x, np.nan], x) == 0.0


def test_reference_and_current_windows_for_the_asset(runs):
    frame = runs[1, "same"]
    bounds = split_boundaries(frame["line_id"], frame["timestamp"], SplitConfig())
    reference = training_window(frame, bounds)
    assert set(reference["line_id"]) == set(LINES)
    for line, b in bounds.set_index("line_id").iterrows():
        t = reference.loc[reference["line_id"] == line, "timestamp"]
        assert t.min() == b["start"] and t.max() < b["train_end"]
    current = latest_window(frame, 24)
    assert len(current) == 1440 * len(LINES)
    assert current["timestamp"].max() == frame["timestamp"].max()
