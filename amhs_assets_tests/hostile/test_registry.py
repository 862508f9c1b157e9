"""Hostile use of the registry: the alias ledger keeps every move with its reason (tags can be
overwritten, the ledger cannot), a planted previous_champion tag does not steer a rollback, two
`amhs registry promote` processes at once end with one success and one refusal, and LOGNAME or
USER do not change who is recorded."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner
from mlflow.exceptions import MlflowException

from amhs_assets.cli import main
from amhs_assets.contract import CHALLENGER_ALIAS, CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from amhs_assets.registry import store as reg
from amhs_assets.registry.gate import GateConfig
from amhs_assets.registry.ledger import (
    append_entry,
    caller,
    os_user,
    read_ledger,
)
from amhs_assets.registry.tags import version_tags
from amhs_assets_tests.support import champion_of, stub_store

FV = "1.0.0"
WINDOW = {"start": "2026-02-05T00:00:00+00:00", "end": "2026-02-05T23:59:00+00:00", "rows": 2000}
SPOOFED = {"LOGNAME": "someone-else", "USER": "someone-else"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An embedded store in a temporary data folder and a stub logged model to register."""
    return stub_store(tmp_path_factory.mktemp("data"))


def add_versions(store, name: str, *maes: float) -> list[str]:
    """Register stub versions that passed their checks (each becomes challenger)."""
    out = []
    for mae in maes:
        tags = version_tags(kind="xgb", metrics={"mean_avg_mae": mae}, window=WINDOW,
                            fingerprint="f" * 16, feature_version=FV, code_version="abc",
                            dagster_run_id="run-1", checks={"xgb_beats_persistence": True},
                            baseline=None)
        out.append(str(reg.register_version(store.client, name, store.info, tags, "stub",
                                            (CHALLENGER_ALIAS,)).version))
    return out


def amhs(store, *args: str, **env: str):
    """`amhs ARGS` in this process against the store."""
    return CliRunner().invoke(main, list(args), env={**store.env, **env})


def test_three_promotions_and_a_rollback_leave_four_ledger_entries_with_their_reasons(store):
    name = REGISTERED_MODEL_NAME
    seen = read_ledger(store.client, name).last_seq
    (first,) = add_versions(store, name, 1.0)  # beats any champion by the margin
    assert reg.apply_gate(store.client, name, GateConfig(), FV, "promotion_job 1234abcd").promote
    second, third = add_versions(store, name, 29.0, 28.0)
    for version, reason in ((second, "hotfix for line 2"), (third, "vendor patch")):
        out = amhs(store, "registry", "promote", version, "--reason", reason)
        assert out.exit_code == 0, out.output
    out = amhs(store, "registry", "rollback", "--reason", "alarms on line 2 at night")
    assert out.exit_code == 0 and f"v{third} -> v{second}" in out.output
    # someone rewrites the convenient tags: the ledger keeps what happened
    store.client.set_model_version_tag(name, second, "promotion_reason", "forged")
    ledger = read_ledger(store.client, name)
    moves = [m for m in ledger.moves(CHAMPION_ALIAS) if m.seq > seen]
    assert [(m.kind, m.to_version, m.who) for m in moves] == [
        ("gate_promotion", first, "promotion_job 1234abcd"),
        ("manual_promote", second, os_user()), ("manual_promote", third, os_user()),
        ("rollback", second, os_user())]
    assert [m.from_version for m in moves[1:]] == [first, second, third]
    assert "beats champion" in moves[0].reason or "no champion yet" in moves[0].reason
    assert [m.reason for m in moves[1:]] == ["hotfix for line 2", "vendor patch",
                                             "alarms on line 2 at night"]
    assert [m.seq for m in moves] == sorted(m.seq for m in moves)
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        store.client.log_param(moves[1].run_id, "reason", "forged")  # entries are immutable
    history = amhs(store, "registry", "history")
    assert history.exit_code == 0, history.output
    assert "hotfix for line 2" in history.output and "alarms on line 2 at night" in history.output
    assert "challenger_set" in history.output  # the registrations are moves too
    listing = amhs(store, "registry", "list").output
    assert f"alias ledger: {len(ledger.moves())} move(s)" in listing


def test_the_rollback_follows_the_ledger_not_a_planted_previous_champion_tag(store):
    name = "amhs-planted"
    add_versions(store, name, 30.0, 29.0, 28.0)
    champion = None
    for version in ("1", "2", "3"):
        reg.promote(store.client, name, version, f"to v{version}", "ops", champion)
        champion = version
    store.client.set_model_version_tag(name, "3", "previous_champion", "1")  # planted
    assert reg.rollback(store.client, name, "bad night", "ops") == ("3", "2")
    assert reg.rollback(store.client, name, "still bad", "ops") == ("2", "1")
    with pytest.raises(ValueError, match="records no champion before v1"):
        reg.rollback(store.client, name, "once more", "ops")
    assert champion_of(store, name) == "1"


def test_logname_and_user_do_not_change_the_recorded_user(store):
    name = REGISTERED_MODEL_NAME
    (version,) = add_versions(store, name, 27.0)
    out = amhs(store, "registry", "promote", version, "--reason", "spoof", **SPOOFED)
    assert out.exit_code == 0, out.output
    last = read_ledger(store.client, name).last_move(CHAMPION_ALIAS)
    assert (last.to_version, last.who, last.os_user) == (version, os_user(), os_user())
    assert "someone-else" not in out.output
    assert store.client.get_model_version(name, version).tags["decided_by"] == os_user()


class _Server(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - the http.server name
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status,expected", [(401, "alice"), (200, None)])
def test_an_mlflow_login_counts_only_when_the_server_checks_it(monkeypatch, status, expected):
    handler = type("Handler", (_Server,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        assert caller(uri) == (expected or os_user())
    finally:
        server.shutdown()


def test_two_writers_that_read_the_same_ledger_cannot_both_commit(store):
    name = "amhs-same-read"
    add_versions(store, name, 30.0, 29.0)
    experiment = reg.ledger_experiment(store.client)
    seen = read_ledger(store.client, name)
    first, second = (append_entry(store.client, experiment, seen, alias=CHAMPION_ALIAS,
                                  kind="manual_promote", from_version=None, to_version=v,
                                  who="t", reason="race") for v in ("1", "2"))
    assert (first.committed, second.committed) == (True, False)
    assert [m.to_version for m in read_ledger(store.client, name).moves(CHAMPION_ALIAS)] == ["1"]


def test_a_recorded_move_whose_alias_did_not_follow_blocks_moves_until_it_settles(
        store, monkeypatch):
    name = "amhs-interrupted"
    add_versions(store, name, 30.0, 29.0)
    reg.promote(store.client, name, "1", "start", "ops", None)
    experiment = reg.ledger_experiment(store.client)
    append_entry(store.client, experiment, read_ledger(store.client, name),  # then a crash
                 alias=CHAMPION_ALIAS, kind="manual_promote", from_version="1",
                 to_version="2", who="crashed", reason="interrupted")
    with pytest.raises(reg.ConcurrentPromotion, match="in progress.*still points at v1"):
        reg.promote(store.client, name, "2", "again", "ops", "1")
    monkeypatch.setattr(reg, "SETTLE_S", 0.0)  # long after: the alias counts
    assert reg.promote(store.client, name, "2", "again", "ops", "1") == "1"
    assert champion_of(store, name) == "2"


def champion_now(store) -> str:
    """The champion of amhs-predictor, after making one when there is none."""
    champion = champion_of(store)
    if champion is None:
        champion = add_versions(store, REGISTERED_MODEL_NAME, 30.0)[0]
        reg.promote(store.client, REGISTERED_MODEL_NAME, champion, "start", "ops", None)
    return champion


def test_a_promote_with_a_stale_expectation_is_refused(store):
    name = REGISTERED_MODEL_NAME
    champion = champion_now(store)
    (other,) = add_versions(store, name, 31.0)
    before = len(read_ledger(store.client, name).entries)
    out = amhs(store, "registry", "promote", other, "--reason", "late", "--expect", other)
    assert out.exit_code == 1
    assert f"moved from v{other} to v{champion} meanwhile; nothing changed" in out.output
    assert champion_of(store) == champion
    assert len(read_ledger(store.client, name).entries) == before  # nothing was appended


RACER = """
import sys, time
from pathlib import Path
from amhs_assets.cli import main
from amhs_assets.config import read_environment
from amhs_assets.registry.store import connect
connect(read_environment().resolved_tracking_uri)  # warm: imports and store checked
Path(sys.argv[1]).touch()
while not Path(sys.argv[2]).exists():
    time.sleep(0.002)
main(sys.argv[3:], prog_name="amhs")
"""


def test_two_concurrent_promote_commands_one_wins_one_is_refused(store, tmp_path):
    """One command in a process of its own, one in this one (a second interpreter would cost
    10-20 s of imports), started within milliseconds of each other."""
    name = REGISTERED_MODEL_NAME
    champion = champion_now(store)
    mine, theirs = add_versions(store, name, 26.0, 25.0)
    seen = read_ledger(store.client, name).last_seq
    promote = ["registry", "promote", "--expect", champion, "--reason"]
    ready, go = tmp_path / "ready", tmp_path / "go"
    racer = subprocess.Popen(
        [sys.executable, "-c", RACER, str(ready), str(go), *promote, "race", theirs],
        env={**os.environ, **store.env, **SPOOFED}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while not ready.exists():
        assert racer.poll() is None and time.monotonic() < deadline, racer.communicate()[0]
        time.sleep(0.02)
    go.touch()  # both promote within milliseconds of each other
    here = amhs(store, *promote, "race", mine, **SPOOFED)
    results = {theirs: (racer.wait(120), racer.stdout.read()),
               mine: (here.exit_code, here.output)}
    assert sorted(code for code, _ in results.values()) == [0, 1], results
    winner = next(v for v, (code, _) in results.items() if code == 0)
    refusal = next(out for code, out in results.values() if code == 1)
    assert "Error: " in refusal and "nothing changed" in refusal, refusal
    assert champion_of(store) == winner
    race = [e for e in read_ledger(store.client, name).entries
            if e.seq > seen and e.alias == CHAMPION_ALIAS]
    assert [(e.to_version, e.os_user) for e in race if e.committed] == [(winner, os_user())]
