"""The promotion gate (pure) and the registry operations against an embedded MLflow store."""

from __future__ import annotations

import math
import threading
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from amhs_assets.cli import main
from amhs_assets.contract import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    FLAG_FILLED,
    FLAG_MISSING,
    NUMERIC_COLUMNS,
    RAW_COLUMNS,
    REGISTERED_MODEL_NAME,
)
from amhs_assets.ingest.clean import regularize, type_columns
from amhs_assets.registry import store as reg
from amhs_assets.registry.gate import GateConfig, VersionRef, candidate_metrics, decide
from amhs_assets.registry.ledger import read_ledger
from amhs_assets.registry.tags import (
    KEPT_CHAMPION,
    NOTHING,
    PROMOTED,
    REFUSED,
    REJECTED,
    TAG_ACCEPTED,
    data_fingerprint,
    metric_tags,
    version_tags,
)
from amhs_assets_tests.support import champion_of, stub_store, valid_rows

FV = "1.0.0"
WINDOW = {"start": "2026-02-05T00:00:00+00:00", "end": "2026-02-05T23:59:00+00:00", "rows": 2000}


def tags_for(mae: float, window: dict = WINDOW, features: str = FV, passed: bool = True,
             recall: float = 0.5, baseline: tuple[str, dict] | None = None,
             recall_h25: float | None = None) -> dict[str, str]:
    """Version tags with a given mean avg MAE, as registered_model writes them."""
    metrics = {"mean_avg_mae": mae, "avg_mae_h10": mae * 0.8, "mean_critical_recall": recall,
               "critical_recall_h10": recall,
               "critical_recall_h25": recall if recall_h25 is None else recall_h25}
    return version_tags(kind="xgb", metrics=metrics, window=window, fingerprint="f" * 16,
                        feature_version=features, code_version="abc", dagster_run_id="run-1",
                        checks={"xgb_beats_persistence": passed}, baseline=baseline)


# --- the gate, pure -------------------------------------------------------------------------
def test_gate_promotes_the_first_validated_version_when_there_is_no_champion():
    decision = decide(VersionRef("1", tags_for(30.0)), None, FV, GateConfig())
    assert decision.outcome == PROMOTED and decision.reason == "no champion yet"


@pytest.mark.parametrize("mae,outcome", [(29.0, PROMOTED), (29.8, KEPT_CHAMPION),
                                         (30.0, KEPT_CHAMPION), (31.0, KEPT_CHAMPION)])
def test_gate_promotes_only_a_challenger_better_by_the_margin(mae, outcome):
    champion = VersionRef("1", tags_for(30.0))
    decision = decide(VersionRef("2", tags_for(mae)), champion, FV, GateConfig(margin=0.01))
    assert decision.outcome == outcome
    assert "mean_avg_mae" in decision.reason and "recorded on the same test window" in decision.reason
    assert decision.comparison[0]["required"] == pytest.approx(29.7)


def test_gate_promotes_over_a_champion_with_older_features_whatever_the_metrics():
    champion = VersionRef("1", tags_for(10.0, features="0.9.0"))
    decision = decide(VersionRef("2", tags_for(50.0)), champion, FV, GateConfig())
    assert decision.outcome == PROMOTED and "older than the current 1.0.0" in decision.reason


def test_gate_compares_other_windows_only_through_a_re_evaluated_champion():
    champion = VersionRef("1", tags_for(30.0))
    other = {**WINDOW, "end": "2026-02-06T23:59:00+00:00", "rows": 2500}
    refused = decide(VersionRef("2", tags_for(20.0, window=other)), champion, FV, GateConfig())
    assert refused.outcome == REFUSED and "test windows differ" in refused.reason
    # evaluation_report evaluated champion v1 on the new window: that is the fair comparison
    baseline = ("1", {"mean_avg_mae": 19.0})
    kept = decide(VersionRef("2", tags_for(20.0, window=other, baseline=baseline)), champion, FV,
                  GateConfig())
    assert kept.outcome == KEPT_CHAMPION and "re-evaluated" in kept.reason


def test_gate_metrics_are_configurable_and_recall_must_rise():
    config = GateConfig(metrics=("mean_avg_mae", "mean_critical_recall"), margin=0.01)
    champion = VersionRef("1", tags_for(30.0, recall=0.5))
    worse_recall = decide(VersionRef("2", tags_for(20.0, recall=0.5)), champion, FV, config)
    assert worse_recall.outcome == KEPT_CHAMPION
    both = decide(VersionRef("3", tags_for(20.0, recall=0.6)), champion, FV, config)
    assert both.outcome == PROMOTED


def test_a_challenger_that_loses_critical_recall_is_not_promoted_whatever_its_mae():
    champion = VersionRef("1", tags_for(30.0, recall=0.6))
    better_mae = VersionRef("2", tags_for(20.0, recall=0.6, recall_h25=0.5))  # h25: -0.10
    decision = decide(better_mae, champion, FV, GateConfig(critical_recall_margin=0.05))
    assert decision.outcome == KEPT_CHAMPION
    assert "lowers CRITICAL recall" in decision.reason and "h25 0.500 < 0.600 - 0.05" in decision.reason
    within = VersionRef("3", tags_for(20.0, recall=0.6, recall_h25=0.56))  # -0.04: allowed
    assert decide(within, champion, FV, GateConfig(critical_recall_margin=0.05)).promote
    assert decide(better_mae, champion, FV, GateConfig(critical_recall_margin=0.2)).promote


def test_gate_decides_a_challenger_once_and_refuses_stale_features():
    decided = {**tags_for(20.0), "promotion_decision": KEPT_CHAMPION, "decided_at": "t"}
    champion = VersionRef("1", tags_for(30.0))
    assert decide(VersionRef("2", decided), champion, FV, GateConfig()).outcome == NOTHING
    assert decide(None, champion, FV, GateConfig()).outcome == NOTHING
    stale = decide(VersionRef("2", tags_for(20.0, features="0.9.0")), champion, FV, GateConfig())
    assert stale.outcome == REFUSED


def test_gate_leaves_a_version_the_champion_was_rolled_back_from_whatever_its_tags():
    # even with its decision tags gone and better figures, only a person promotes it again
    rolled = {**tags_for(20.0), "rolled_back_at": "2026-03-01T06:10:00Z",
              "rolled_back_by": "carol", "rollback_reason": "alarms on line 2"}
    decision = decide(VersionRef("2", rolled), VersionRef("1", tags_for(30.0)), FV, GateConfig())
    assert decision.outcome == NOTHING and not decision.recorded
    assert "rolled back from" in decision.reason and "amhs registry promote 2" in decision.reason


def test_a_version_that_fails_the_checks_is_rejected_with_the_reason():
    tags = tags_for(30.0, passed=False)
    assert tags["passed_checks"] == "false" and tags["promotion_decision"] == REJECTED
    assert "xgb_beats_persistence" in tags["promotion_reason"]


def test_candidate_metrics_read_avg_mae_accuracy_and_critical_recall():
    records = [{"model": "xgb", "horizon": h, "target": "avg", "mae": float(h)} for h in (10, 20)]
    records += [{"model": "xgb", "horizon": h, "target": "state", "accuracy": 0.9,
                 "recall": {"CRITICAL": None if h == 20 else 0.4}} for h in (10, 20)]
    records += [{"model": "other", "horizon": 10, "target": "avg", "mae": 99.0}]
    m = candidate_metrics(records, "xgb")
    assert m["avg_mae_h10"] == 10.0 and m["mean_avg_mae"] == 15.0
    assert m["mean_critical_recall"] == 0.4 and math.isnan(m["critical_recall_h20"])
    assert metric_tags({"x": 0.1}, "test_") == {"test_x": "0.1"}


# --- provenance -----------------------------------------------------------------------------
def cleaned_frame(minutes: int, gap_at: int | None = None) -> pd.DataFrame:
    """A cleaned one-line series (contract columns + flags), with an optional 10-minute gap."""
    raw = valid_rows(minutes, seed=1)
    if gap_at is not None:
        raw = raw.drop(index=range(gap_at, gap_at + 10))
    typed, _ = type_columns(raw.reset_index(drop=True))
    return regularize(typed, 5)


def test_input_example_is_the_latest_window_without_a_long_gap_as_contract_rows():
    cleaned = cleaned_frame(400, gap_at=300)
    example = reg.input_example(cleaned, minutes=130)
    assert list(example.columns) == list(RAW_COLUMNS) and len(example) == 130
    assert example["timestamp"].iloc[-1] == "2026-03-01T04:59:00Z"  # the gap ends the later run
    assert example["timestamp"].iloc[0] == "2026-03-01T02:50:00Z"
    with pytest.raises(ValueError, match="consecutive minutes"):
        reg.input_example(cleaned_frame(100), minutes=130)
    assert {FLAG_FILLED, FLAG_MISSING} <= set(cleaned.columns)


def test_data_fingerprint_follows_the_data():
    a = cleaned_frame(50)
    b = a.copy()
    assert data_fingerprint(a) == data_fingerprint(b)
    b.loc[10, NUMERIC_COLUMNS[0]] += 1
    assert data_fingerprint(a) != data_fingerprint(b)


def test_an_unreachable_server_fails_fast_with_a_clear_message():
    started = time.perf_counter()
    with pytest.raises(reg.TrackingUnreachable, match="unreachable after 2 attempt.*MLFLOW_TRACKING_URI"):
        reg.connect("http://127.0.0.1:9", attempts=2, timeout_s=0.5)
    assert time.perf_counter() - started < 5


# --- registry operations on an embedded store -----------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An embedded store in a temporary data folder, and a stub model to register versions of."""
    return stub_store(tmp_path_factory.mktemp("data"))


def add_version(store, name: str, mae: float, **kwargs) -> str:
    """Register a stub version with the tags of a model of this mean avg MAE."""
    tags = tags_for(mae, **kwargs)
    aliases = (CHALLENGER_ALIAS,) if tags["passed_checks"] == "true" else ()
    return str(reg.register_version(store.client, name, store.info, tags, "stub", aliases).version)


def test_a_failed_registration_leaves_no_half_registered_version(store, monkeypatch):
    name = "amhs-half"
    add_version(store, name, 30.0)

    def broken(*args, **kwargs):
        raise RuntimeError("connection reset")

    monkeypatch.setattr(store.client, "set_registered_model_alias", broken)
    with pytest.raises(reg.RegistrationFailed, match="connection reset.*deleted again"):
        add_version(store, name, 20.0)
    monkeypatch.undo()
    versions = store.client.search_model_versions(f"name='{name}'")
    assert [str(v.version) for v in versions] == ["1"]


def test_the_gate_moves_the_champion_and_records_decision_and_history(store):
    name = "amhs-gate"
    gate = lambda: reg.apply_gate(store.client, name, GateConfig(), FV, "test")  # noqa: E731
    assert gate().outcome == NOTHING  # no model registered yet
    add_version(store, name, 30.0)
    assert gate().outcome == PROMOTED and champion_of(store, name) == "1"
    add_version(store, name, 31.0)  # worse
    assert gate().outcome == KEPT_CHAMPION and champion_of(store, name) == "1"
    v2 = store.client.get_model_version(name, "2").tags
    assert v2["promotion_decision"] == KEPT_CHAMPION and "does not beat" in v2["promotion_reason"]
    assert v2["decided_at"].endswith("Z")
    add_version(store, name, 25.0)  # better
    assert gate().outcome == PROMOTED and champion_of(store, name) == "3"
    moves = read_ledger(store.client, name).moves(CHAMPION_ALIAS)
    assert [(m.kind, m.from_version, m.to_version) for m in moves] == [
        ("gate_promotion", None, "1"), ("gate_promotion", "1", "3")]
    assert gate().outcome == NOTHING  # decided once
    add_version(store, name, 10.0, passed=False)  # fails the checks: never a challenger
    assert reg.version_ref(store.client, name, CHALLENGER_ALIAS).version == "3"


def test_manual_promote_and_rollback_record_who_when_and_why(store):
    name = "amhs-manual"
    for mae in (30.0, 29.0, 28.0):
        add_version(store, name, mae)
    reg.promote(store.client, name, "1", "first", "alice", None)
    reg.promote(store.client, name, "3", "hotfix for line 2", "bob", "1")
    v3 = store.client.get_model_version(name, "3").tags
    assert (v3["promotion_decision"], v3["promotion_reason"], v3["decided_by"]) == (
        "manual_promote", "hotfix for line 2", "bob")
    last = read_ledger(store.client, name).last_move(CHAMPION_ALIAS)
    assert (last.from_version, last.to_version, last.who, last.reason) == (
        "1", "3", "bob", "hotfix for line 2")
    with pytest.raises(ValueError, match="reason"):
        reg.promote(store.client, name, "2", "  ", "bob", "3")
    assert reg.rollback(store.client, name, "alarms on line 2", "carol") == ("3", "1")
    assert champion_of(store, name) == "1"
    v3 = store.client.get_model_version(name, "3").tags
    assert v3["rollback_reason"] == "alarms on line 2" and v3["rolled_back_by"] == "carol"
    assert store.client.get_model_version(name, "1").tags["promotion_decision"] == "rollback"
    with pytest.raises(ValueError, match="records no champion before v1"):
        reg.rollback(store.client, name, "again", "carol")


def test_rollback_takes_the_challenger_alias_and_the_gate_never_promotes_it_again(store):
    name = "amhs-rollback-gate"
    gate = lambda: reg.apply_gate(store.client, name, GateConfig(), FV, "promotion_job")  # noqa: E731
    add_version(store, name, 30.0)
    assert gate().promote
    add_version(store, name, 25.0)
    assert gate().promote and champion_of(store, name) == "2"
    assert reg.rollback(store.client, name, "alarms on line 2", "carol") == ("2", "1")
    assert reg.version_ref(store.client, name, CHALLENGER_ALIAS) is None
    cleared = read_ledger(store.client, name).last_move(CHALLENGER_ALIAS)
    assert (cleared.kind, cleared.from_version, cleared.to_version, cleared.who) == (
        "challenger_cleared", "2", None, "carol")
    assert "rolled back from" in cleared.reason
    assert gate().outcome == NOTHING and champion_of(store, name) == "1"
    # the alias put back by hand and its decision tags gone: the 06:00 gate still leaves it
    reg.record_alias(store.client, name, CHALLENGER_ALIAS, "2", kind="challenger_set",
                     reason="by hand", who="dave")
    store.client.delete_model_version_tag(name, "2", "promotion_decision")
    decision = gate()
    assert decision.outcome == NOTHING and "rolled back from" in decision.reason
    assert champion_of(store, name) == "1"
    # a person may promote it explicitly
    reg.promote(store.client, name, "2", "fixed upstream, retry", "erin", "1")
    assert champion_of(store, name) == "2"
    # a new registration is the challenger again and the gate decides it as usual
    add_version(store, name, 20.0)
    assert gate().promote and champion_of(store, name) == "3"


def test_rollback_leaves_the_challenger_of_a_newer_version_alone(store):
    name = "amhs-rollback-newer"
    for mae in (30.0, 25.0):
        add_version(store, name, mae)
    reg.promote(store.client, name, "1", "start", "t", None)
    reg.promote(store.client, name, "2", "better", "t", "1")
    add_version(store, name, 24.0)  # v3 awaits the gate
    assert reg.rollback(store.client, name, "bad night", "t") == ("2", "1")
    assert reg.version_ref(store.client, name, CHALLENGER_ALIAS).version == "3"


def test_the_version_list_labels_metrics_and_shows_each_test_window(store):
    from amhs_assets.registry.listing import version_table

    name = "amhs-listing"
    old = tags_for(31.0)
    for key in ("test_window_start", "test_window_end", "test_window_rows",
                "test_avg_mae_h10"):
        old.pop(key)  # registered before windows (and per-horizon figures) were recorded
    reg.register_version(store.client, name, store.info, old, "stub")
    add_version(store, name, 30.0)
    add_version(store, name, 29.0, window={**WINDOW, "end": "2026-02-06T23:59:00+00:00",
                                           "rows": 2500})
    store.client.set_model_version_tag(name, "2", TAG_ACCEPTED, "false")
    store.client.set_model_version_tag(name, "3", TAG_ACCEPTED, "true")
    table, windows = version_table(store.client, name)
    assert list(table["accepted"]) == ["yes", "no", "-"]  # v1: before the acceptance bars
    assert list(table["version"]) == [3, 2, 1]
    assert list(table["test_window"]) == ["W2", "W1", "unknown"]
    assert windows["W1"] == "2026-02-05 00:00 .. 2026-02-05 23:59 UTC, 2000 rows"
    assert windows["W2"].endswith("2026-02-06 23:59 UTC, 2500 rows")
    assert windows["unknown"].startswith("unknown (registered before")
    assert "avg_mae" not in table.columns  # every figure names its target and horizon
    assert list(table["avg_mae_h10"]) == ["23.2", "24", "-"]
    assert list(table["avg_mae_mean"]) == ["29", "30", "31"]


def test_two_concurrent_promotions_leave_one_champion(store):
    name = "amhs-race"
    for mae in (30.0, 29.0, 28.0):
        add_version(store, name, mae)
    reg.promote(store.client, name, "1", "start", "t", None)
    barrier, outcomes = threading.Barrier(2), {}

    def contender(version: str) -> None:
        barrier.wait()
        try:
            reg.promote(store.client, name, version, "race", "t", "1")
            outcomes[version] = "won"
        except reg.ConcurrentPromotion:
            outcomes[version] = "refused"

    threads = [threading.Thread(target=contender, args=(v,)) for v in ("2", "3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) == ["refused", "won"]
    winner = next(v for v, o in outcomes.items() if o == "won")
    loser = next(v for v, o in outcomes.items() if o == "refused")
    assert str(store.client.get_registered_model(name).aliases[CHAMPION_ALIAS]) == winner
    assert "promotion_decision" not in store.client.get_model_version(name, loser).tags


def test_registry_cli_lists_promotes_and_rolls_back(store):
    name = REGISTERED_MODEL_NAME
    for mae in (30.0, 29.0):
        add_version(store, name, mae)
    runner = CliRunner()
    env = {"AMHS_DATA_DIR": str(store.data), "MLFLOW_TRACKING_URI": ""}
    out = runner.invoke(main, ["registry", "promote", "1", "--reason", "first"], env=env)
    assert out.exit_code == 0, out.output
    out = runner.invoke(main, ["registry", "promote", "2", "--reason", "better"], env=env)
    assert out.exit_code == 0 and "v1 -> v2" in out.output
    assert runner.invoke(main, ["registry", "promote", "2"], env=env).exit_code == 2  # no reason
    listing = runner.invoke(main, ["registry", "list"], env=env)
    assert listing.exit_code == 0, listing.output
    assert "challenger,champion" in listing.output and "manual_promote" in listing.output
    assert "avg_mae_h10" in listing.output and "avg_mae_mean" in listing.output
    assert "test_window" in listing.output and "  W1: 2026-02-05 00:00 .. " in listing.output
    out = runner.invoke(main, ["registry", "rollback", "--reason", "bad night"], env=env)
    assert out.exit_code == 0 and "v2 -> v1" in out.output
    assert "gate never promotes it again" in out.output
    listing = runner.invoke(main, ["registry", "list"], env=env)
    assert "challenger" not in listing.output.split("version(s)")[1].split("metrics:")[0]
    assert "manual_promote; rolled back" in listing.output
    tags = store.client.get_model_version(name, "2").tags
    assert tags["rollback_reason"] == "bad night" and tags["rolled_back_by"]
    out = runner.invoke(main, ["registry", "promote", "9", "--reason", "x"], env=env)
    assert out.exit_code == 1 and "Error" in out.output


def test_promote_refuses_when_the_champion_moved_meanwhile(store):
    name = "amhs-cas"
    for mae in (30.0, 29.0):
        add_version(store, name, mae)
    reg.promote(store.client, name, "1", "start", "t", None)
    with pytest.raises(reg.ConcurrentPromotion, match="moved from vNone to v1"):
        reg.promote(store.client, name, "2", "late", "t", None)
    assert champion_of(store, name) == "1"
    assert "promotion_decision" not in store.client.get_model_version(name, "2").tags
