"""The evaluation report: one page on the shared plotly.js, every section, the V8 reference and
graceful gaps."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from amhs_assets.contract import HORIZONS, REGRESSION_TARGETS, STATES
from amhs_assets.evaluation.evaluate import evaluation_records
from amhs_assets.html import ASSETS_DIR, NO_FAVICON, PLOTLY_JS, plotly_script
from amhs_assets.evaluation.acceptance import AcceptanceConfig, accepted, judge, policy
from amhs_assets.evaluation.report import (
    SECTION_TITLES,
    improvement_pct,
    last_full_day,
    render_evaluation_html,
)

MODELS = ("persistence", "xgb", "unified", "ensemble", "champion")
PLOTLY_BANNER = "* plotly.js v"  # the licence header at the top of the bundle


def make_evaluation(models=MODELS, xgb_mae: float = 12.0) -> dict:
    """evaluation.json for every model, horizon and target, with hand-picked numbers."""
    results = []
    for model in models:
        for horizon in HORIZONS:
            mae = {"persistence": 20.0, "xgb": xgb_mae}.get(model, 14.0)
            for target in REGRESSION_TARGETS:
                results.append({"model": model, "horizon": horizon, "target": target,
                                "mae": mae, "rmse": mae * 1.5, "r2": 0.7, "n": 384})
            results.append({"model": model, "horizon": horizon, "target": "state", "accuracy": 0.8,
                             "macro_f1": 0.6, "recall": {"NORMAL": 0.9, "WARNING": 0.5, "CRITICAL": None},
                             "confusion_matrix": [[300, 10, 0], [20, 40, 4], [1, 3, 6]], "n": 384})
    return {"generated_at": "2026-03-02T10:00:00Z",
            "test_window": {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T23:45:00Z", "rows": 384},
            "champion": {"name": "amhs-predictor", "version": "3"},
            "splits": {name: {"rows": rows, "start": "2026-02-01T00:00:00Z", "end": "2026-02-20T00:00:00Z"}
                       for name, rows in (("train", 1000), ("val", 200), ("test", 384))},
            "results": results}


def make_predictions(models=MODELS, seed: int = 0) -> pd.DataFrame:
    """2 lines × 2 days at 15-minute steps × 3 horizons × the models, in long form."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2026-03-01", periods=2 * 96, freq="15min", tz="UTC")
    frames = []
    for model in models:
        for horizon in HORIZONS:
            for line in ("L1", "L2"):
                actual = rng.uniform(100, 700, len(stamps))
                pred = actual + rng.normal(0, 20, len(stamps))
                proba = rng.dirichlet(np.ones(3), len(stamps))
                frames.append(pd.DataFrame({
                    "model": model, "horizon": horizon, "line_id": line, "timestamp": stamps,
                    "actual_min": actual - 50, "actual_max": actual + 50, "actual_avg": actual,
                    "actual_state": np.digitize(actual, [300, 600]), "pred_min": pred - 40,
                    "pred_max": pred + 40, "pred_avg": pred, "pred_state": np.digitize(pred, [300, 600]),
                    **{f"proba_{s}": proba[:, i] for i, s in enumerate(STATES)}}))
    return pd.concat(frames, ignore_index=True)


def make_importances() -> pd.DataFrame:
    """30 features per horizon with decreasing gain."""
    return pd.DataFrame([{"feature": f"feat_{i:02d}", "horizon": h, "gain": 100.0 - i}
                         for h in HORIZONS for i in range(30)])


@pytest.fixture(scope="module")
def full_page() -> str:
    """The report over every synthetic input, rendered once for the module."""
    return render_evaluation_html(make_evaluation(), make_predictions(), make_importances())


def table_row(page: str, target: str, model: str) -> str:
    """The first summary-table row of a target and model."""
    match = re.search(rf'<tr><td class="name">{target}</td><td class="name">{model}</td>.*?</tr>', page)
    assert match, f"no summary row for {target}/{model}"
    return match.group(0)


def test_page_loads_the_shared_plotly_js_and_inlines_no_bundle(full_page):
    scripts = re.findall(r'<script[^>]*\bsrc="([^"]*)"', full_page)
    assert scripts == [f"{ASSETS_DIR}/{PLOTLY_JS}"]  # relative: opens from disk and the API
    assert re.findall(r"<link[^>]*>", full_page) == [NO_FAVICON] and PLOTLY_BANNER not in full_page
    assert full_page.count("Plotly.newPlot") >= 4 * len(HORIZONS)  # day, residual, confusion, importance


def test_page_has_every_section_title(full_page):
    for title in SECTION_TITLES.values():
        assert f"<h2>{title}</h2>" in full_page


def test_header_shows_champion_window_and_splits(full_page):
    assert "amhs-predictor v3" in full_page
    assert "2026-03-01 00:00" in full_page and "384 rows" in full_page
    assert all(f'<td class="name">{name}</td>' in full_page for name in ("train", "val", "test"))


def test_times_are_shown_in_the_requested_timezone():
    page = render_evaluation_html(make_evaluation(), make_predictions().head(0), make_importances(),
                                  timezone="Asia/Taipei")
    assert "2026-03-02 18:00" in page  # generated_at 10:00Z is 18:00 in Taipei
    assert "Asia/Taipei" in page


def test_v8_figures_are_a_neutral_reference_not_pass_or_fail(full_page):
    """(The acceptance bars' pass/fail sits in its own section: the next test.)"""
    good = render_evaluation_html(make_evaluation(xgb_mae=9.0), pd.DataFrame(), pd.DataFrame())
    bad = render_evaluation_html(make_evaluation(xgb_mae=11.0), pd.DataFrame(), pd.DataFrame())
    for page in (full_page, good, bad):
        assert not re.search(r'class="[^"]*\b(pass|fail)\b|✔|✘', page)
    assert '<td class="best">11.00</td>' in table_row(bad, "avg", "xgb")  # lowest, no verdict
    assert "<td>0.700</td>" in table_row(bad, "avg", "xgb")
    assert "<td>80.0%</td>" in table_row(bad, "state", "xgb")
    # one grey V8 row under each table, with the unit caveat
    rows = re.findall(r'<tr class="reference">(.*?)</tr>', full_page)
    assert len(rows) == 2 * len(HORIZONS)
    assert "<td>&lt; 10</td>" in rows[0] and "<td>&gt; 0.65</td>" in rows[0]
    assert "<td>&gt; 70%</td>" in rows[1]
    note = re.search(r'<p class="muted" id="v8-reference">(.*?)</p>', full_page).group(1)
    assert "MAE &lt; 10 s, R² &gt; 0.65, accuracy &gt; 70%" in note
    assert "own metric" in note and "simulated metric" in note and "not a verdict" in note
    other = render_evaluation_html(make_evaluation(), pd.DataFrame(), pd.DataFrame(),
                                   reference={"r2": 0.75})
    assert "<td>&gt; 0.75</td>" in re.findall(r'<tr class="reference">(.*?)</tr>', other)[0]


def judged(config: AcceptanceConfig) -> dict:
    """make_evaluation() with the xgb candidate judged against the bars, as evaluation_report."""
    evaluation = make_evaluation() | {"candidate": {"source": "xgb"},
                                      "acceptance_policy": policy(config)}
    evaluation["acceptance"] = judge(evaluation["results"], "xgb", config)
    evaluation["accepted"] = accepted(evaluation["acceptance"])
    return evaluation


def test_the_acceptance_section_states_the_policy_once_with_each_bar_and_its_outcome():
    page = render_evaluation_html(judged(AcceptanceConfig(min_avg_r2=0.8)), pd.DataFrame(),
                                  pd.DataFrame())
    section = page.split("<h2>Acceptance</h2>", 1)[1].split("<h2>", 1)[0]
    rest = page.replace(section, "")
    assert page.count('id="acceptance-policy"') == 1
    policy_text = html.unescape(re.search(r'<p id="acceptance-policy">(.*?)</p>', section)[1])
    assert "avg MAE at least 5% below persistence's" in policy_text
    assert "R² of avg at least 0.8" in policy_text and "not a bar" in policy_text
    assert '<span class="fail">not accepted</span>' in section
    assert "avg_r2_h10 0.7 &lt; bar 0.8 (&gt;= 0.8)" in section  # the verdict names the bar
    # one row per bar and horizon; pass/fail colours here and nowhere else on the page
    assert '<td class="name">avg_r2_h25</td><td>25 min</td><td>0.7</td><td>0.8</td>' in section
    assert section.count('<td class="fail">FAIL</td>') == len(HORIZONS)  # R2 fails at each
    assert section.count('<td class="pass">pass</td>') == 2 * len(HORIZONS)  # MAE, accuracy
    assert section.count('<td class="unmeasured">not measured</td>') == len(HORIZONS)  # recall
    assert not re.search(r'class="[^"]*\b(pass|fail)\b', rest)
    assert len(re.findall(r'<tr class="reference">', rest)) == 2 * len(HORIZONS)  # V8 still grey
    good = render_evaluation_html(judged(AcceptanceConfig()), pd.DataFrame(), pd.DataFrame())
    assert '<span class="pass">accepted</span>' in good
    assert "not judged against acceptance bars" in render_evaluation_html(
        make_evaluation(), pd.DataFrame(), pd.DataFrame())


def test_improvement_vs_persistence_is_the_relative_mae_reduction(full_page):
    assert improvement_pct(15.0, 20.0) == pytest.approx(25.0)
    assert improvement_pct(25.0, 20.0) == pytest.approx(-25.0)
    assert improvement_pct(15.0, None) is None and improvement_pct(15.0, 0.0) is None
    assert "<td>+40.0 %</td>" in table_row(full_page, "avg", "xgb")  # 12 vs 20
    assert "<td>+30.0 %</td>" in table_row(full_page, "avg", "unified")  # 14 vs 20


def test_missing_model_still_renders_and_falls_back_to_best_model():
    models = ("persistence", "xgb", "unified")
    page = render_evaluation_html(make_evaluation(models), make_predictions(models), make_importances())
    assert '<td class="name">champion</td>' not in page
    assert '<td class="name">unified</td>' in page
    assert "xgb predicted avg" in page  # lowest avg MAE among the available models


def test_empty_predictions_and_importances_render_with_notes():
    page = render_evaluation_html(make_evaluation(), pd.DataFrame(), pd.DataFrame())
    assert page.count(plotly_script()) == 1
    assert "No predictions over the test window." in page
    assert "No feature importances." in page
    assert "Horizon 10 min · rows actual" in page  # confusion matrices come from evaluation.json


def test_nothing_at_all_still_renders():
    page = render_evaluation_html({}, pd.DataFrame(), pd.DataFrame())
    assert "No evaluation results were recorded." in page
    assert all(f"<h2>{title}</h2>" in page for title in SECTION_TITLES.values())


def test_all_nan_actuals_render_dashes_and_notes_not_a_crash():
    preds = make_predictions(("persistence", "xgb")).assign(actual_avg=np.nan, actual_state=-1)
    evaluation = {"results": evaluation_records(preds)}  # NaN metrics, empty confusion matrices
    page = render_evaluation_html(evaluation, preds, make_importances())
    assert "no residuals" in page
    assert "<td>—</td>" in table_row(page, "avg", "xgb")
    assert "Horizon 10 min · rows actual" in page


def test_champion_without_registry_version_says_so():
    evaluation = {**make_evaluation(), "champion": {"name": "amhs-predictor", "version": None,
                                                    "source": "ensemble"}}
    page = render_evaluation_html(evaluation, pd.DataFrame(), pd.DataFrame())
    assert "amhs-predictor (not registered) · serves ensemble" in page


def test_unknown_timezone_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Base'"):
        render_evaluation_html({}, pd.DataFrame(), pd.DataFrame(), timezone="Mars/Base")


def test_day_plot_shows_the_champion_over_the_last_full_day_with_a_line_menu(full_page):
    assert "Horizon 10 min · 2026-03-02 · line L1" in full_page
    assert "champion predicted avg" in full_page and '"label":"L2"' in full_page


def test_last_full_day_is_the_last_day_covered_end_to_end():
    stamps = pd.Series(pd.date_range("2026-03-01 06:00", "2026-03-03 12:00", freq="min"))
    assert last_full_day(stamps) == pd.Timestamp("2026-03-02")
    assert last_full_day(pd.Series(pd.date_range("2026-03-01 06:00", periods=60, freq="min"))) is None


def test_the_alarm_sections_show_the_operating_points_pr_curves_reliability_and_refit():
    preds = make_predictions(("persistence", "xgb"))
    preds["alarm"] = preds["proba_CRITICAL"] >= 0.4
    preds["pred_state"] = np.where(preds["alarm"], 2, preds["pred_state"].clip(upper=1))
    records = evaluation_records(preds, {("xgb", h): 0.4 for h in HORIZONS})
    points = [{"model": "xgb", "horizon": h, "critical_threshold": 0.4, "warning_threshold": 0.3,
               "calibration": "isotonic", "target": "precision", "target_value": 0.5,
               "val_brier_raw": 0.2, "val_brier": 0.1} for h in HORIZONS]
    refit = [{"model": "xgb", "horizon": 10, "target": "avg", "mae_early_stopped": 10.0,
              "mae_refit": 9.0},
             {"model": "xgb", "horizon": 10, "target": "max", "mae_early_stopped": 10.0,
              "mae_refit": 10.5}]
    explanations = pd.DataFrame({"horizon": 10, "column": ["comm_errors", "vehicles_down"],
                                 "CRITICAL": [0.8, 0.2], "avg": [3.0, 1.0]})
    page = render_evaluation_html({**make_evaluation(), "results": records,
                                   "operating_points": points, "refit": refit}, preds,
                                  make_importances(), validation=preds,
                                  explanations=explanations)
    alarms = page.split("CRITICAL alarms at the operating points", 1)[1].split("<h2>", 1)[0]
    xgb10 = re.search(r'<tr><td class="name">10 min</td><td class="name">xgb</td>.*?</tr>',
                      alarms).group(0)
    record = next(r for r in records if r["model"] == "xgb" and r["horizon"] == 10
                  and r["target"] == "state")
    assert f"<td>{record['critical_recall']:.1%}</td>" in xgb10 and "<td>0.400</td>" in xgb10
    group = preds[(preds["model"] == "xgb") & (preds["horizon"] == 10)]
    known = group["actual_state"] >= 0
    most_probable = group[["proba_NORMAL", "proba_WARNING", "proba_CRITICAL"]].to_numpy().argmax(1)
    assert record["argmax_accuracy"] == pytest.approx(
        (most_probable[known] == group["actual_state"][known]).mean())
    assert record["argmax_accuracy"] != pytest.approx(record["accuracy"])  # the alarms moved it
    assert "accuracy, most probable class" in page
    assert f"<td>{record['argmax_accuracy']:.1%}</td>" in page
    assert "isotonic" in alarms and "precision 0.5" in alarms
    assert "Horizon 10 min · test window · ★ operating point" in page
    assert "Horizon 25 min · reliability of P(CRITICAL), validation rows" in page
    assert "The refit raises the test MAE in 1 of 2 cells" in page
    assert "What moves the forecasts: top 2 raw columns" in page


def test_without_explanations_or_refit_the_report_says_so():
    page = render_evaluation_html(make_evaluation(), make_predictions(), make_importances())
    assert "No explanations were computed" in page and "No model was refitted" in page
    assert "No validation predictions were handed to the report" in page
