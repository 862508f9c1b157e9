"""The acceptance policy (evaluation/acceptance.py): each bar's decision, the verdict in words,
and the version tags and rejection reason registration writes from it."""

from __future__ import annotations

import pytest

from amhs_assets.defs.resources import AmhsSettings
from amhs_assets.evaluation.acceptance import (
    AcceptanceConfig,
    accepted,
    failures,
    judge,
    verdict,
)
from amhs_assets.registry.tags import REJECTED, acceptance_tags, version_tags

# what the defaults must let through: a good model on a simulated fab (`amhs run` on 2 lines x
# 14 days) and the small models of the tests (2 lines x 4 days, 10 boosting rounds; seed 21 as
# test_registry_assets, seed 11 as test_training_job: its xgb model's accuracy is 0.66 at 15 min)
GOOD = {10: (24.3, 12.9, 0.95, 0.90, 0.91), 15: (29.6, 17.0, 0.91, 0.89, 0.82),
        25: (39.0, 25.9, 0.79, 0.88, 0.74)}
SMALL = {10: (33.7, 27.8, 0.70, 0.87, 0.94), 15: (42.4, 35.5, 0.58, 0.81, 0.92),
         25: (56.5, 48.2, 0.37, 0.78, 0.77)}
SMALL_SEED11 = {10: (36.0, 30.6, 0.94, 0.74, 0.88), 15: (45.3, 39.8, 0.88, 0.66, 0.83),
                25: (62.5, 55.8, 0.71, 0.76, 0.74)}


def records(figures: dict[int, tuple], model: str = "xgb") -> list[dict]:
    """Evaluation records: per horizon (persistence MAE, MAE, R2, accuracy, CRITICAL recall)."""
    out = []
    for h, (pers, mae, r2, acc, recall) in figures.items():
        out += [{"model": "persistence", "horizon": h, "target": "avg", "mae": pers, "r2": 0.5},
                {"model": model, "horizon": h, "target": "avg", "mae": mae, "r2": r2},
                {"model": model, "horizon": h, "target": "state", "accuracy": acc,
                 "critical_recall": recall, "recall": {"CRITICAL": recall}}]
    return out


@pytest.mark.parametrize("figures", [GOOD, SMALL, SMALL_SEED11],
                         ids=["fab_14_days", "test_models", "test_models_seed_11"])
def test_the_default_bars_accept_a_good_model(figures):
    rows = judge(records(figures), "xgb", AcceptanceConfig())
    assert accepted(rows) and not failures(rows)
    assert len(rows) == 4 * len(figures)  # MAE vs persistence, R2, accuracy, recall per horizon
    assert verdict(rows) == "meets every acceptance bar (12 of 12)"


def test_a_model_no_better_than_persistence_fails_the_mae_bar_with_value_and_bar():
    bad = {h: (pers, pers * 0.98, r2, acc, rec) for h, (pers, _, r2, acc, rec) in GOOD.items()}
    rows = judge(records(bad), "xgb", AcceptanceConfig())
    assert not accepted(rows)
    failed = {r["name"]: r for r in rows if r["passed"] is False}
    assert set(failed) == {"avg_mae_h10", "avg_mae_h15", "avg_mae_h25"}
    assert failed["avg_mae_h10"]["bar"] == pytest.approx(24.3 * 0.95)
    assert failed["avg_mae_h10"]["value"] == pytest.approx(24.3 * 0.98)
    assert failures(rows)[0] == "avg_mae_h10 23.81 > bar 23.09 (<= persistence 24.3 s - 5%)"
    assert verdict(rows).startswith("fails 3 of 12 acceptance bars: avg_mae_h10 23.81 > bar")


@pytest.mark.parametrize("config, failing", [
    (AcceptanceConfig(min_avg_r2=0.8), {"avg_r2_h25"}),
    (AcceptanceConfig(min_state_accuracy=0.9), {"state_accuracy_h15", "state_accuracy_h25"}),
    (AcceptanceConfig(min_critical_recall=0.8), {"critical_recall_h25"}),
    (AcceptanceConfig(max_avg_mae_s=20.0), {"avg_mae_max_h25"}),
    (AcceptanceConfig(mae_vs_persistence=0.45), {"avg_mae_h15", "avg_mae_h25"}),
])
def test_each_bar_is_a_setting_and_names_what_fails(config, failing):
    rows = judge(records(GOOD), "xgb", config)
    assert {r["name"] for r in rows if r["passed"] is False} == failing
    assert not accepted(rows)


def test_a_metric_the_window_cannot_measure_is_recorded_but_does_not_fail():
    data = records({10: (24.3, 12.9, 0.95, 0.90, None)})
    rows = judge(data, "xgb", AcceptanceConfig())
    recall = next(r for r in rows if r["metric"] == "critical_recall")
    assert recall["value"] is None and recall["passed"] is None
    assert accepted(rows) and "not measurable on this window: critical_recall_h10" in verdict(rows)
    assert not accepted(judge(data, "missing", AcceptanceConfig()))  # nothing judged


def test_the_settings_section_sets_the_bars():
    settings = AmhsSettings.from_values({"acceptance": {"min_avg_r2": 0.6, "max_avg_mae_s": 30}})
    assert settings.acceptance.pure() == AcceptanceConfig(min_avg_r2=0.6, max_avg_mae_s=30.0)
    assert AmhsSettings().acceptance.pure() == AcceptanceConfig()


def test_failed_bars_become_tags_and_the_rejections_reason():
    rows = judge(records(GOOD), "xgb", AcceptanceConfig(min_avg_r2=0.8))
    tags = acceptance_tags(rows, accepted(rows))
    assert tags["accepted"] == "false"
    assert tags["acceptance_avg_r2_h25"] == "FAIL 0.79 (>= 0.8)"
    assert tags["acceptance_avg_r2_h10"] == "pass 0.95 (>= 0.8)"
    version = version_tags(kind="xgb", metrics={}, window={}, fingerprint="f", feature_version="1",
                           code_version="c", dagster_run_id="r", baseline=None,
                           checks={"xgb_beats_persistence": True, "meets_acceptance_bars": False},
                           why={"meets_acceptance_bars": "; ".join(failures(rows))})
    assert version["passed_checks"] == "false" and version["promotion_decision"] == REJECTED
    assert ("failed the asset checks (meets_acceptance_bars: avg_r2_h25 0.79 < bar 0.8 (>= 0.8))"
            in version["promotion_reason"])
