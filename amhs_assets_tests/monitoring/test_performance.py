"""Live performance figures, the degradation verdict, the prediction log reader and the history,
on small frames whose figures are computed by hand."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from amhs_assets.contract import STATES
from amhs_assets.dashboard.page import DashboardInputs, render_dashboard
from amhs_assets.documents import PerformanceDocument
from amhs_assets.html import ASSETS_DIR, PLOTLY_JS
from amhs_assets.evaluation.metrics import classification_metrics
from amhs_assets.monitoring.live import (
    SCORED_COLUMNS,
    backtest_predictions,
    combine,
    read_prediction_log,
    window_start,
)
from amhs_assets.monitoring.performance import (
    HISTORY_KEY,
    PerformanceConfig,
    append_history,
    degradation,
    group_metrics,
    levels_frame,
    levels_from_records,
    levels_from_run_metrics,
    levels_from_tags,
    performance_document,
    period_metrics,
    with_levels,
)
from amhs_assets.registry.store import evaluation_metrics
from amhs_assets.serve.prediction_log import PredictionLog
from amhs_assets_tests.support import simulated_scored, with_critical_minutes

N, W, C, UNKNOWN = 0, 1, 2, -1
TZ = "Asia/Taipei"


def hand_case() -> pd.DataFrame:
    """One line, horizon 10, version 1: four scored minutes in hour 00 UTC, one scored and one
    still pending in hour 01 (all on 2026-03-01 in Taipei)."""
    nan = np.nan
    frame = pd.DataFrame({
        "line_id": "L1",
        "timestamp": pd.to_datetime(["2026-03-01T00:10Z", "2026-03-01T00:20Z", "2026-03-01T00:30Z",
                                     "2026-03-01T00:40Z", "2026-03-01T01:05Z", "2026-03-01T01:15Z"]),
        "horizon": 10, "model_version": "1", "source": "backtest",
        "pred_min": [90, 180, 300, 390, 480, 0], "actual_min": [100, 180, 310, 370, 400, nan],
        "pred_max": [120, 220, 320, 420, 520, 0], "actual_max": [120, 260, 320, 400, 700, nan],
        "pred_avg": [100, 200, 300, 400, 500, 600], "actual_avg": [110, 190, 330, 400, 450, nan],
        "pred_state": [N, N, W, C, C, N], "actual_state": [N, W, W, C, W, UNKNOWN],
    })
    for i, s in enumerate(STATES):
        frame[f"proba_{s}"] = (frame["pred_state"] == i).astype(float)
    return frame.reindex(columns=list(SCORED_COLUMNS))


LEVELS = levels_frame({"1": {10: {"mae_avg": 16.0, "accuracy": 0.9}}})


def test_hourly_and_daily_metrics_match_the_hand_computed_figures():
    periods = with_levels(period_metrics(hand_case(), TZ), LEVELS).set_index(["period", "period_start"])
    hour0 = periods.loc[("hour", pd.Timestamp("2026-03-01T00:00Z"))]
    assert hour0["rows"] == 4
    assert (hour0["mae_min"], hour0["mae_max"], hour0["mae_avg"]) == (10.0, 15.0, 12.5)
    assert hour0["accuracy"] == 0.75
    # F1 = 2 tp / (predicted + actual): NORMAL 2/3, WARNING 2/3, CRITICAL 1
    assert hour0["macro_f1"] == pytest.approx(7 / 9)
    assert hour0["critical_recall"] == 1.0
    assert hour0["mae_avg_ratio"] == pytest.approx(12.5 / 16)
    hour1 = periods.loc[("hour", pd.Timestamp("2026-03-01T01:00Z"))]  # the pending row is left out
    assert (hour1["rows"], hour1["mae_avg"], hour1["mae_max"], hour1["accuracy"]) == (1, 50, 180, 0)
    assert hour1["macro_f1"] == 0.0 and np.isnan(hour1["critical_recall"])  # no CRITICAL happened
    day = periods.loc[("day", pd.Timestamp("2026-02-28T16:00Z"))]  # Taipei midnight, in UTC
    assert (day["rows"], day["mae_avg"], day["accuracy"]) == (5, 20.0, 0.6)
    assert day["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert day["evaluated_mae_avg"] == 16.0 and day["mae_avg_ratio"] == 1.25


def test_group_metrics_agree_with_the_evaluation_metrics():
    rng = np.random.default_rng(4)
    frame = hand_case().iloc[:0].reindex(range(500))
    frame = frame.assign(line_id=rng.choice(["A", "B"], 500), horizon=10, model_version="1",
                         source="api", timestamp=pd.Timestamp("2026-03-01", tz="UTC"),
                         pred_state=rng.integers(0, 3, 500), actual_state=rng.integers(0, 3, 500),
                         **{f"{s}_{t}": rng.uniform(100, 400, 500) for s in ("pred", "actual")
                            for t in ("min", "max", "avg")})
    ours = group_metrics(frame, ["line_id"]).set_index("line_id")
    for line, rows in frame.groupby("line_id"):
        theirs = classification_metrics(rows["actual_state"], rows["pred_state"])
        assert ours.loc[line, "accuracy"] == pytest.approx(theirs["accuracy"])
        assert ours.loc[line, "macro_f1"] == pytest.approx(theirs["macro_f1"])
        assert ours.loc[line, "critical_recall"] == pytest.approx(theirs["recall"]["CRITICAL"])


def check(**changes) -> PerformanceConfig:
    """The check's settings with some changed (accuracy and recall never fail unless asked)."""
    return PerformanceConfig(**{"accuracy_margin": 1.0, "critical_recall_margin": 1.0, **changes})


def test_the_check_limit_is_evaluated_mae_times_one_plus_the_margin():
    at_limit = degradation(hand_case(), LEVELS, check(window_hours=24, mae_margin=0.25, min_rows=1))
    assert at_limit.horizons[10]["live_mae_avg"] == 20.0 and at_limit.horizons[10]["ratio"] == 1.25
    assert not at_limit.degraded and at_limit.judged  # 25 % worse is not more than 25 %
    over = degradation(hand_case(), LEVELS, check(window_hours=24, mae_margin=0.2, min_rows=1))
    assert over.degraded and over.failed == ["mae_avg@h10"]
    assert "mae_avg@h10: live avg MAE 20.0 s vs evaluated 16.0 s (+25 %" in over.reason
    too_few = degradation(hand_case(), LEVELS, check(window_hours=24, mae_margin=0.2, min_rows=6))
    assert not too_few.degraded and not too_few.judged and "not judged" in too_few.reason
    # the 15 minutes up to the newest known outcome (01:05) hold that row only
    short = degradation(hand_case(), LEVELS, check(window_hours=0.25, mae_margin=0.2, min_rows=1))
    assert short.window["rows"] == 1 and short.horizons[10]["live_mae_avg"] == 50.0



def test_degradation_fires_on_a_shifted_model_and_not_on_a_healthy_one():
    levels = levels_frame({"3": {h: {"mae_avg": 8.0} for h in (10, 15, 25)}})  # E|N(0,10)| = 8
    healthy = degradation(simulated_scored(0.0), levels, PerformanceConfig())
    assert not healthy.degraded and healthy.judged
    assert all(0.85 < v["ratio"] < 1.15 for v in healthy.horizons.values())
    shifted = degradation(simulated_scored(150.0), levels, PerformanceConfig())
    assert shifted.degraded
    assert all(v["degraded"] and v["ratio"] > 15 for v in shifted.horizons.values())
    assert all(f"mae_avg@h{h}:" in shifted.reason for h in (10, 15, 25)) and "v3" in shifted.reason



def test_a_collapsed_critical_recall_fails_the_check_while_mae_is_fine():
    levels = levels_frame({"3": {h: {"mae_avg": 8.0, "accuracy": 0.9, "critical_recall": 0.63}
                                 for h in (10, 15, 25)}})
    healthy = degradation(with_critical_minutes(simulated_scored(0.0), 0.1, 0.6), levels,
                          PerformanceConfig())
    assert not healthy.degraded and healthy.judged, healthy.reason
    assert all(v["judged_metrics"] == ["mae_avg", "accuracy", "critical_recall"]
               for v in healthy.horizons.values())
    collapsed = degradation(with_critical_minutes(simulated_scored(0.0), 0.1, 0.2), levels,
                            PerformanceConfig())
    assert collapsed.degraded
    assert collapsed.failed == ["critical_recall@h10", "critical_recall@h15", "critical_recall@h25"]
    assert all(0.85 < v["ratio"] < 1.15 for v in collapsed.horizons.values())  # MAE is fine
    assert "critical_recall@h25: live CRITICAL recall" in collapsed.reason
    assert "vs evaluated 63.0%" in collapsed.reason
    # too few CRITICAL minutes in the window: recall is not judged, MAE and accuracy still are
    rare = degradation(with_critical_minutes(simulated_scored(0.0), 0.01, 0.0), levels,
                       PerformanceConfig(min_critical_rows=30))
    assert not rare.degraded and all("critical_recall" not in v["judged_metrics"]
                                     for v in rare.horizons.values())
    assert "CRITICAL recall not judged" in rare.reason


def test_a_fallen_state_accuracy_fails_the_check_and_says_so():
    levels = levels_frame({"3": {h: {"mae_avg": 8.0, "accuracy": 0.99} for h in (10, 15, 25)}})
    scored = with_critical_minutes(simulated_scored(0.0), 0.3, 0.0)  # 30 % of minutes missed
    verdict = degradation(scored, levels, PerformanceConfig(accuracy_margin=0.1))
    assert verdict.degraded and all(v["failed"] == ["accuracy"] for v in verdict.horizons.values())
    assert "accuracy@h10: live state accuracy" in verdict.reason


def test_evaluated_levels_read_alike_from_records_run_metrics_and_tags():
    records = [{"model": "xgb", "horizon": 10, "target": t, "mae": m, "rmse": 1.0, "r2": 0.5}
               for t, m in (("min", 11.0), ("max", 13.0), ("avg", 12.0))]
    records.append({"model": "xgb", "horizon": 10, "target": "state", "accuracy": 0.9,
                    "macro_f1": 0.7, "recall": {"NORMAL": 1.0, "WARNING": 0.5, "CRITICAL": 0.4}})
    records.append({"model": "persistence", "horizon": 10, "target": "avg", "mae": 30.0})
    expected = {10: {"mae_min": 11.0, "mae_max": 13.0, "mae_avg": 12.0, "accuracy": 0.9,
                     "macro_f1": 0.7, "critical_recall": 0.4}}
    assert levels_from_records(records, "xgb") == expected
    assert levels_from_run_metrics(evaluation_metrics(records), "xgb") == expected
    tags = {"test_avg_mae_h10": "12.0", "test_state_accuracy_h10": "0.9",
            "test_critical_recall_h10": "0.4", "test_mean_avg_mae": "12.0"}
    assert levels_from_tags(tags) == {10: {"mae_avg": 12.0, "accuracy": 0.9, "critical_recall": 0.4}}


def test_the_prediction_log_is_read_back_newest_answer_first_and_a_torn_line_skipped(tmp_path):
    log = PredictionLog(tmp_path, flush_s=60)
    log.start()
    model = {"name": "amhs-predictor", "version": "7", "alias": "champion"}

    def answer(avg: float, state: str) -> dict:
        return {str(h): {"min": avg - 5, "max": avg + 5, "avg": avg, "state": state,
                         "proba": {s: float(s == state) for s in STATES}} for h in (10, 25)}
    log.append(model, [{"line_id": "A", "as_of": "2026-03-01T00:00:00Z", "horizons": answer(100, "NORMAL")}])
    log.append(model, [{"line_id": "A", "as_of": "2026-03-01T00:00:00Z", "horizons": answer(200, "WARNING")},
                       {"line_id": "B", "as_of": "2026-03-01T00:01:00Z", "horizons": answer(700, "CRITICAL")}])
    log.close()
    part = next(tmp_path.glob("date=*/part-*.jsonl"))
    with open(part, "ab") as f:
        f.write(b'{"logged_at": "2026-')  # a write cut short by a crash
    logged, stats = read_prediction_log(tmp_path)
    assert stats == {"files": 1, "records": 3, "unreadable_lines": 1, "predictions": 4}
    a = logged[logged["line_id"] == "A"].set_index("horizon")
    assert a.loc[10, "pred_avg"] == 200 and a.loc[25, "pred_state"] == W  # the newest answer
    assert set(logged["source"]) == {"api"} and set(logged["model_version"]) == {"7"}
    assert logged["timestamp"].dt.tz is not None
    backtest = logged.assign(source="backtest", model_version="8", pred_avg=1.0)
    extra = backtest.iloc[:1].assign(line_id="C")
    both = combine(logged, pd.concat([backtest, extra]))
    assert len(both) == 5 and set(both.loc[both["line_id"] != "C", "source"]) == {"api"}


def test_windows_start_at_local_midnight():
    end = pd.Timestamp("2026-03-04T05:00Z")  # 13:00 in Taipei
    assert window_start(end, 72, TZ) == pd.Timestamp("2026-02-28T16:00Z")  # Mar 1 00:00 +08


def test_the_history_keeps_one_row_per_period_when_recomputed(tmp_path):
    path = tmp_path / "history.parquet"
    periods = with_levels(period_metrics(hand_case(), TZ), LEVELS)
    append_history(path, periods)
    later = hand_case().assign(actual_avg=lambda f: f["actual_avg"].fillna(600.0),
                               actual_state=lambda f: f["actual_state"].replace(UNKNOWN, N))
    again = with_levels(period_metrics(later, TZ), LEVELS)
    history = append_history(path, again)
    assert len(history) == len(again) == 3 and not history.duplicated(list(HISTORY_KEY)).any()
    hour1 = history[(history["period"] == "hour") & (history["period_start"].dt.hour == 1)]
    assert hour1["rows"].tolist() == [2]  # the pending minute has been scored since
    other = with_levels(period_metrics(hand_case().assign(line_id="L2"), TZ), LEVELS)
    assert len(append_history(path, other)) == 6


def test_the_document_validates_and_the_page_draws_what_it_has(tmp_path):
    scored = hand_case()
    verdict = degradation(scored, LEVELS, check(min_rows=1))
    periods = with_levels(period_metrics(scored, TZ), LEVELS)
    model = {"name": "amhs-predictor", "version": "1", "version_label": "1", "alias": "champion",
             "kind": "xgb", "selected_by": "registry alias 'champion'"}
    doc = performance_document(model=model, verdict=verdict, levels=LEVELS, periods=periods,
                               scored=scored, sources={}, tz=TZ)
    PerformanceDocument.model_validate(json.loads(json.dumps(doc, allow_nan=False)))
    assert doc["latest"][0]["as_of"] == "2026-03-01T01:15:00+00:00"
    assert doc["latest"][0]["horizons"]["10"]["state"] == "NORMAL"
    assert doc["window_metrics"]["10"]["critical_recall"] == 1.0
    # alarms at 00:40 (CRITICAL followed: caught, event 10 min later) and 01:05 (WARNING: false)
    live = doc["window_metrics"]["10"]
    assert live["critical_precision"] == 0.5 and live["lead_time_median_min"] == 10.0
    assert live["false_alarms_per_shift"] == pytest.approx(1 / (5 / 720))  # 5 scored minutes
    page, charts = render_dashboard(DashboardInputs(doc, scored, periods, timezone=TZ))
    alarms = page.split('id="alarms"', 1)[1].split("</table>", 1)[0]
    assert "<td>50.0%</td><td>100.0%</td><td>144.00</td><td>10</td>" in alarms
    assert charts == 2  # live error, predicted vs actual; no drift, versions or quarantine yet
    assert page.count('class="plotly-graph-div"') == 2
    # the reports' one plotly.js, by a relative path (opens from disk and through the API)
    assert re.findall(r'<script[^>]*\bsrc="([^"]*)"', page) == [f"{ASSETS_DIR}/{PLOTLY_JS}"]
    assert get_plotlyjs()[-200:] not in page
    body = page.split("</head>", 1)[1]
    assert body.count("Plotly.newPlot") == 2 and "No registered version yet" in body
    lights = re.findall(r'<span class="light"[^>]*>([^<]*)</span>', body)
    assert lights == ["● NORMAL"] and "2026-03-01 09:15" in body  # one line x one horizon


def test_a_backtest_predicts_every_usable_minute_from_the_window_start():
    class Constant:
        horizons = (10, 25)

        def predict(self, X, h):
            proba = np.tile([0.2, 0.7, 0.1], (len(X), 1))
            return {"min": np.full(len(X), 1.0), "max": np.full(len(X), 3.0),
                    "avg": np.full(len(X), 2.0), "proba": proba}

    from amhs_assets.models.dataset import dataset_from_raw
    from amhs_assets.simulate.lines import simulate_lines

    raw = pd.concat(simulate_lines(["A"], pd.Timestamp("2026-03-01", tz="UTC"), 0.5, 3).values())
    cleaned, _ = dataset_from_raw(raw, (10,), None)
    since = pd.Timestamp("2026-03-01T06:00Z")
    out = backtest_predictions(cleaned, Constant(), "9", since, (10, 25))
    assert out["timestamp"].min() == since and out["timestamp"].max() == cleaned["timestamp"].max()
    assert len(out) == 2 * int((cleaned["timestamp"] >= since).sum())
    assert set(out["pred_state"]) == {W} and set(out["model_version"]) == {"9"}


def test_without_a_champion_the_evaluation_candidate_is_watched_and_said_so(tmp_path):
    from amhs_assets.defs.assets.performance import evaluated_levels, watched_model
    from amhs_assets.defs.resources import MlflowTracking

    tracking = MlflowTracking.for_data_dir(tmp_path)  # an empty registry
    records = [{"model": "unified", "horizon": 10, "target": "avg", "mae": 9.5}]
    evaluation = {"candidate": {"source": "unified"}, "results": records}
    candidates = {"xgb": object(), "unified": object(), "ensemble": object()}
    model, _, info = watched_model(tracking, evaluation, candidates)
    assert model is candidates["unified"] and info["version"] is None
    assert info["version_label"] == "candidate-unified"
    assert info["selected_by"] == "evaluation candidate (no champion in the registry yet)"
    levels, sources = evaluated_levels(tracking, ["candidate-unified"], info, evaluation)
    assert levels.set_index("horizon").loc[10, "evaluated_mae_avg"] == 9.5
    assert sources == {"candidate-unified": "evaluation.json (unified)"}
