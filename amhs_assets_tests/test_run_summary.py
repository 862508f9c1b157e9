"""What `amhs run` prints at its end (runner.run_summary): one table, every row labelled with
its target and horizon, and one line on whether the champion meets the acceptance bars."""

from __future__ import annotations

from amhs_assets.contract import HORIZONS
from amhs_assets.evaluation.acceptance import AcceptanceConfig, accepted, judge
from amhs_assets.runner import champion_column, run_summary

MODELS = {"persistence": (30.0, 0.5), "xgb": (20.0, 0.8), "ensemble": (18.0, 0.7)}


def document(champion_version: str | None = "3", candidate: str = "ensemble") -> dict:
    """evaluation.json with three models; the registry champion's rows are xgb's figures."""
    results = []
    for model, (mae, r2) in (MODELS | {"champion": MODELS["xgb"]}).items():
        for h in HORIZONS:
            results += [{"model": model, "horizon": h, "target": "avg", "mae": mae + h, "r2": r2},
                        {"model": model, "horizon": h, "target": "state", "accuracy": 0.9,
                         "critical_recall": 0.8, "recall": {"CRITICAL": 0.8}}]
    rows = judge(results, candidate, AcceptanceConfig())
    return {"test_window": {"rows": 500}, "results": results, "candidate": {"source": candidate},
            "champion": {"version": champion_version}, "acceptance": rows,
            "accepted": accepted(rows)}


def test_run_ends_with_one_table_whose_rows_name_target_and_horizon():
    lines = run_summary(document(), AcceptanceConfig(), "3", "4")
    text = "\n".join(lines)
    header = lines[1].splitlines()[0].split()
    assert header == ["persistence", "xgb", "ensemble", "champion", "acceptance_bar"]
    labels = [row.split()[0] for row in lines[1].splitlines()[2:]]
    assert labels == [f"{m}_h{h}" for m in ("avg_mae", "avg_mae_vs_persistence_pct", "avg_r2",
                                              "state_accuracy", "critical_recall")
                      for h in HORIZONS]
    assert " mae " not in f" {text} " and text.count("avg_mae_h10") == 1  # no unlabelled column
    avg_mae_h10 = next(r for r in lines[1].splitlines() if r.startswith("avg_mae_h10 "))
    cells = avg_mae_h10.split()
    assert [float(c) for c in cells[1:5]] == [40.0, 30.0, 28.0, 30.0]
    assert cells[5:] == ["<=", "38"]  # persistence's 40 s less 5 %
    assert len(lines) == 3  # the caption, the table, the verdict line


def test_an_absolute_mae_bar_shows_beside_the_persistence_one_in_the_table():
    lines = run_summary(document(), AcceptanceConfig(max_avg_mae_s=29.0), "3", "4")
    row = next(r for r in lines[1].splitlines() if r.startswith("avg_mae_h10 "))
    assert row.split()[5:] == ["<=", "38", "and", "<=", "29"]
    assert "avg_mae_max_h10 30 > bar 29" in lines[-1]  # the champion's 30 s fails it


def test_the_last_line_says_whether_the_champion_meets_the_bars_and_which_fail():
    ok = run_summary(document(), AcceptanceConfig(), "3", "4")[-1]
    assert ok == f"champion v3 (champion): meets every acceptance bar ({4 * len(HORIZONS)} of " \
                 f"{4 * len(HORIZONS)})"
    strict = run_summary(document(), AcceptanceConfig(min_avg_r2=0.75), "3", "4")[-1]
    # the champion's rows are xgb's (R2 0.8): the ensemble candidate's 0.7 is not what is judged
    assert strict.startswith("champion v3 (champion): meets every acceptance bar")
    failing = run_summary(document(), AcceptanceConfig(min_avg_r2=0.9), "3", "4")[-1]
    assert failing.startswith(f"champion v3 (champion): fails {len(HORIZONS)} of ")
    assert "avg_r2_h10 0.8 < bar 0.9 (>= 0.9)" in failing


def test_the_champion_is_found_where_the_gate_left_it():
    doc = document(champion_version="3")
    assert champion_column(doc, "3", "4") == "champion"  # kept: the evaluated champion
    assert champion_column(doc, "4", "4") == "ensemble"  # promoted: this run's candidate
    assert champion_column(doc, "2", "4") is None  # another version: not evaluated here
    assert "was not evaluated on this test window" in run_summary(
        doc, AcceptanceConfig(), "2", "4")[-1]
    first = document(champion_version=None)
    assert run_summary(first, AcceptanceConfig(), "1", "1")[-1].startswith(
        "champion v1 (ensemble): meets every acceptance bar")


def test_without_a_champion_the_line_names_the_candidates_failed_bars():
    doc = document(champion_version=None)
    doc["acceptance"] = judge(doc["results"], "ensemble", AcceptanceConfig(min_avg_r2=0.9))
    line = run_summary(doc, AcceptanceConfig(), None, "1")[-1]
    assert line.startswith("no champion: the candidate ensemble (v1) fails 3 of 12 acceptance "
                           "bars: avg_r2_h10 0.7 < bar 0.9")
