"""The alias ledger: an append-only record of every move of a registered model's aliases, kept in
the MLflow store itself so that every host reads the same history (no Dagster, no local files).

How it is stored (see docs/registry.md, "The alias ledger"):

- an entry is an MLflow run in the experiment ``amhs-registry-ledger``; what it records (alias,
  kind of move, from and to version, who, OS user, host, reason, and ``after``: the last sequence
  number its writer had read) are the run's parameters, which MLflow lets nobody change;
- its sequence number is the number of a model version of the registered model
  ``<model>-ledger`` whose source is that run. The tracking store numbers the versions of one
  model inside a database transaction (a primary key on name and version): two writers never
  get the same number, on one host or many, through a server or straight to the database.

Compare-and-set: a writer reads the ledger (last number n), then appends; its entry counts
(``committed``) only if it got number n + 1, i.e. nobody appended in between. Every reader
applies the same rule to the same numbers, so all agree which entries count; a writer that lost
knows it from the number it got back, without a lock.
"""

from __future__ import annotations

import logging
import os
import pwd
import socket
from dataclasses import dataclass
from datetime import datetime, timezone

import requests
from mlflow import MlflowClient
from mlflow.entities import Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from amhs_assets.registry.tags import MOVE_ROLLBACK, now_iso

LEDGER_EXPERIMENT = "amhs-registry-ledger"
MODEL_TAG = "amhs_ledger_model"  # run tag: the registered model whose aliases the entry moves
STATUS_TAG = "amhs_ledger_status"  # run tag, set after the append: committed or refused
SEQ_TAG = "amhs_ledger_seq"  # run tag, set after the append: the sequence number it got
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value
FIELDS = ("model", "alias", "kind", "from_version", "to_version", "who", "os_user", "host",
          "at", "reason", "after")
NONE = "none"  # from_version / to_version when the alias pointed nowhere

log = logging.getLogger(__name__)


def ledger_model(model: str) -> str:
    """The registered model whose version numbers are the sequence of `model`'s ledger."""
    return f"{model}-ledger"


# --- who moves an alias ---------------------------------------------------------------------
def os_user() -> str:
    """The account of the effective uid, from the password database ($LOGNAME and $USER are
    whatever the caller set, so they are never read)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def caller(tracking_uri: str, timeout_s: float = 5.0) -> str:
    """Who is moving an alias: the MLflow login when the tracking server checked it (basic auth
    with MLFLOW_TRACKING_USERNAME, and the server refuses a request without credentials), else
    the OS account of the effective uid."""
    login = os.environ.get("MLFLOW_TRACKING_USERNAME", "").strip()
    if login and tracking_uri.startswith(("http://", "https://")):
        probe = tracking_uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
        try:
            if requests.get(probe, timeout=timeout_s).status_code == 401:
                return login  # anonymous is refused, so our requests are checked as `login`
        except requests.RequestException:
            pass
    return os_user()


# --- entries --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One alias move as the ledger records it."""

    seq: int
    alias: str
    kind: str
    from_version: str | None
    to_version: str | None
    who: str
    os_user: str
    host: str
    reason: str
    after: int  # the last sequence number its writer had read
    recorded_ms: int  # when the store numbered it (the store's clock)
    run_id: str

    @property
    def committed(self) -> bool:
        """Whether it counts: nobody appended between its writer's read and its append."""
        return self.seq == self.after + 1

    @property
    def recorded(self) -> str:
        stamp = datetime.fromtimestamp(self.recorded_ms / 1000, timezone.utc)
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")

    def describe(self) -> str:
        return (f"#{self.seq} {self.kind} {self.alias} v{self.from_version} -> v{self.to_version} "
                f"by {self.who} at {self.recorded}")


@dataclass(frozen=True)
class Ledger:
    """Every entry of one model's ledger, committed or not, by sequence number."""

    model: str
    entries: tuple[Entry, ...]

    @property
    def last_seq(self) -> int:
        return self.entries[-1].seq if self.entries else 0

    def moves(self, alias: str | None = None) -> list[Entry]:
        """The committed entries (of one alias), oldest first."""
        return [e for e in self.entries if e.committed and alias in (None, e.alias)]

    def last_move(self, alias: str) -> Entry | None:
        moves = self.moves(alias)
        return moves[-1] if moves else None

    def rollback_target(self, alias: str, current: str) -> str:
        """The version that held `alias` before `current`, by replaying the moves: a move
        pushes the version it left, a rollback pops it (so a second rollback goes further)."""
        last = self.last_move(alias)
        if last is None or last.to_version != current:
            known = f"its last {alias} move, {last.describe()}" if last else "no move of it"
            raise ValueError(
                f"the ledger of {self.model} does not record how v{current} became {alias} "
                f"({known}): nothing to roll back to; move it by hand with `amhs registry "
                "promote VERSION --reason ...`")
        earlier: list[str] = []
        for entry in self.moves(alias):
            if entry.kind == MOVE_ROLLBACK:
                if earlier and earlier[-1] == entry.to_version:
                    earlier.pop()
            elif entry.from_version is not None:
                earlier.append(entry.from_version)
        if not earlier:
            raise ValueError(f"the ledger of {self.model} records no {alias} before "
                             f"v{current}: nothing to roll back to")
        return earlier[-1]


def _version_or_none(text: str | None) -> str | None:
    return None if text in (None, "", NONE) else text


def _runs(client: MlflowClient, experiment_id: str, model: str) -> dict[str, dict[str, str]]:
    """The ledger runs of `model` (deleted ones too: an entry stays an entry): run id -> params."""
    out, token = {}, None
    while True:
        page = client.search_runs([experiment_id], f"tags.{MODEL_TAG} = '{model}'",
                                  run_view_type=ViewType.ALL, max_results=1000, page_token=token)
        out |= {r.info.run_id: dict(r.data.params) for r in page}
        token = page.token
        if not token:
            return out


def read_ledger(client: MlflowClient, model: str) -> Ledger:
    """Every entry of `model`'s ledger (empty when nothing was ever recorded)."""
    experiment = client.get_experiment_by_name(LEDGER_EXPERIMENT)
    if experiment is None:
        return Ledger(model, ())
    versions, token = [], None
    while True:
        page = client.search_model_versions(f"name='{ledger_model(model)}'", page_token=token)
        versions += list(page)
        token = page.token
        if not token:
            break
    params = _runs(client, experiment.experiment_id, model) if versions else {}
    entries = []
    for v in versions:
        p = params.get(v.run_id)
        if p is None or p.get("model") != model:
            log.warning("ledger entry #%s of %s: its run %s is gone or not a ledger run; skipped",
                        v.version, model, v.run_id)
            continue
        entries.append(Entry(
            seq=int(v.version), alias=p["alias"], kind=p["kind"],
            from_version=_version_or_none(p.get("from_version")),
            to_version=_version_or_none(p.get("to_version")), who=p.get("who", ""),
            os_user=p.get("os_user", ""), host=p.get("host", ""), reason=p.get("reason", ""),
            after=int(p["after"]), recorded_ms=int(v.creation_timestamp), run_id=v.run_id))
    return Ledger(model, tuple(sorted(entries, key=lambda e: e.seq)))


def append_entry(client: MlflowClient, experiment_id: str, ledger: Ledger, *, alias: str,
                 kind: str, from_version: str | None, to_version: str | None, who: str,
                 reason: str) -> Entry:
    """Append one entry after `ledger` (as read): a run with the entry as parameters, numbered
    by a new version of the ledger model. The entry is committed only if no other was appended
    since `ledger` was read (Entry.committed); either way it stays in the ledger."""
    model = ledger.model
    try:
        client.create_registered_model(ledger_model(model), tags={"amhs_ledger_of": model},
                                       description=f"The alias ledger of {model}: each version "
                                       f"numbers one entry (a run of {LEDGER_EXPERIMENT}); "
                                       "never a model, never served")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    fields = {"model": model, "alias": alias, "kind": kind,
              "from_version": from_version or NONE, "to_version": to_version or NONE,
              "who": who, "os_user": os_user(), "host": socket.gethostname(), "at": now_iso(),
              "reason": reason if len(reason) <= MAX_PARAM_CHARS
              else reason[:MAX_PARAM_CHARS - 1] + "…", "after": str(ledger.last_seq)}
    run = client.create_run(experiment_id, run_name=f"{model} {alias}: {kind} "
                            f"v{from_version} -> v{to_version}", tags={MODEL_TAG: model})
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, fields[k]) for k in FIELDS])
    client.set_terminated(run_id)
    problem = None
    try:
        client.create_model_version(
            ledger_model(model), f"runs:/{run_id}/ledger", run_id=run_id, await_creation_for=0,
            description=f"{kind}: {alias} v{from_version} -> v{to_version} by {who}")
    except MlflowException as exc:  # the store may have made it anyway (a retried request)
        problem = exc
    # a request retried after the store had answered can number the run twice: the first counts
    made = client.search_model_versions(f"name='{ledger_model(model)}' and run_id='{run_id}'")
    if not made:
        raise problem or MlflowException(f"the ledger of {model} did not number run {run_id}")
    version = min(made, key=lambda v: int(v.version))
    entry = Entry(seq=int(version.version), alias=alias, kind=kind, from_version=from_version,
                  to_version=to_version, who=who, os_user=fields["os_user"],
                  host=fields["host"], reason=fields["reason"], after=ledger.last_seq,
                  recorded_ms=int(version.creation_timestamp), run_id=run_id)
    client.log_batch(run_id, tags=[RunTag(SEQ_TAG, str(entry.seq)), RunTag(
        STATUS_TAG, "committed" if entry.committed else "refused")])
    return entry

