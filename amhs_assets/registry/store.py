"""The MLflow model registry (SPEC section 5), no Dagster: connect, register, promote, roll back.

Every alias move is recorded in the alias ledger (registry/ledger.py), kept in the MLflow store.
A champion move (the gate's, a manual promote, a rollback) is compare-and-set: it names the
champion its caller read, is recorded first, and is made only if its ledger entry is committed
(nobody appended meanwhile, on any host): of two promotions at once one wins, one is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import mlflow
import numpy as np
import pandas as pd
import requests
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from amhs_assets.contract import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    FLAG_MISSING,
    LOOKBACK_MIN,
    RAW_COLUMNS,
)
from amhs_assets.integrity import IntegrityError
from amhs_assets.registry.gate import Decision, GateConfig, VersionRef, decide
from amhs_assets.registry.ledger import (
    LEDGER_EXPERIMENT,
    Entry,
    Ledger,
    append_entry,
    read_ledger,
)
from amhs_assets.registry.tags import (
    MANUAL,
    MOVE_CHALLENGER_CLEARED,
    MOVE_CHALLENGER_SET,
    MOVE_GATE,
    MOVE_MANUAL,
    MOVE_ROLLBACK,
    ROLLBACK,
    TAG_DAGSTER_RUN,
    TAG_DECIDED_AT,
    TAG_DECIDED_BY,
    TAG_DECISION,
    TAG_FEATURES,
    TAG_LEDGER_ENTRY,
    TAG_REASON,
    TAG_ROLLBACK_REASON,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLED_BACK_BY,
    now_iso,
)

if TYPE_CHECKING:  # the predictor loads XGBoost and scikit-learn: only where a model is handled
    from amhs_assets.registry.predictor import AmhsPredictor

# mlflow's own HTTP retries (its defaults retry for minutes): a few, quickly
# MLflow prints "View run ... at <host>" when a run ends on a server: stdout is the CLI's answer,
# and the host it prints would carry a password written into the tracking URI
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "60", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


class TrackingUnreachable(RuntimeError):
    """The MLflow tracking server did not answer."""


class ConcurrentPromotion(RuntimeError):
    """The champion moved between reading it and moving it."""


class RegistrationFailed(RuntimeError):
    """A version could not be registered completely; nothing half-made is left."""


# --- connection -----------------------------------------------------------------------------
def check_reachable(uri: str, attempts: int = 3, timeout_s: float = 5.0, pause_s: float = 0.5
                    ) -> None:
    """Raise TrackingUnreachable unless an HTTP server answers /health within `attempts` tries."""
    if not uri.startswith(("http://", "https://")):
        return
    problem = "no attempt made"
    for attempt in range(attempts):
        try:
            answer = requests.get(uri.rstrip("/") + "/health", timeout=timeout_s)
            if answer.ok:
                return
            problem = f"HTTP {answer.status_code} from /health"
        except requests.RequestException as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if attempt + 1 < attempts:
            time.sleep(pause_s * 2**attempt)
    raise TrackingUnreachable(
        f"MLflow tracking server {uri} is unreachable after {attempts} attempt(s) "
        f"({timeout_s:g} s timeout each): {problem}. Start the server, or point "
        "MLFLOW_TRACKING_URI at one that runs (unset it to use the embedded store under "
        "$AMHS_DATA_DIR/mlflow/). Trained models stay in Dagster's storage.")


_SQLITE_READY: set[str] = set()  # SQLite stores this process has opened


def connect(uri: str, attempts: int = 3, timeout_s: float = 5.0) -> MlflowClient:
    """Check the store answers, point mlflow (tracking and registry) at it, return a client."""
    check_reachable(uri, attempts, timeout_s)
    for key, value in HTTP_ENV.items():
        os.environ.setdefault(key, value)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if not uri.startswith("sqlite:///") or uri in _SQLITE_READY:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    # a new SQLite store is created and migrated by the first client: one process at a time,
    # or parallel steps of one run race on its schema migration and fail
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(db.with_name("store.lock"), timeout_s=300):
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
    _SQLITE_READY.add(uri)
    return client


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The experiment's id, created (artifacts under artifact_location, if given) when missing."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # created meanwhile by another process
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


# --- the input example ----------------------------------------------------------------------
def input_example(cleaned: pd.DataFrame, minutes: int = LOOKBACK_MIN + 10) -> pd.DataFrame:
    """The latest `minutes` minutes without a long gap of one line, as raw contract rows."""
    ordered = cleaned.sort_values(["line_id", "timestamp"], kind="stable")
    for _, rows in ordered.groupby("line_id", sort=True):
        present = ~rows[FLAG_MISSING].to_numpy(bool)
        count = np.cumsum(present)
        run = count - np.maximum.accumulate(np.where(present, 0, count))
        ends = np.flatnonzero(run >= minutes)
        if len(ends):
            pick = rows.iloc[ends[-1] - minutes + 1: ends[-1] + 1][list(RAW_COLUMNS)].copy()
            pick["timestamp"] = pick["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            return pick.reset_index(drop=True)
    raise ValueError(f"no line has {minutes} consecutive minutes without a long gap; the input "
                     "example (and any prediction) needs that much history")


# --- registration ---------------------------------------------------------------------------
def register_version(client: MlflowClient, name: str, model_info, tags: dict[str, str],
                     description: str, aliases: tuple[str, ...] = ()) -> ModelVersion:
    """Register a logged model (every artifact already logged) with its tags, description and
    aliases (each move recorded in the ledger); if any part fails, the new version is deleted
    again (a recorded alias move is followed by a `challenger_cleared` entry) and
    RegistrationFailed raised."""
    with contextlib.suppress(MlflowException):  # it exists already
        client.create_registered_model(name, description="AMHS predictor: raw rows in, every "
                                       "horizon's min/max/avg transfer time and state out")
    created, moved = None, []
    who = f"registered_model {tags.get(TAG_DAGSTER_RUN, '?')[:8]}"
    try:
        model_id = getattr(model_info, "model_id", None) or _logged_model_id(model_info.model_uri)
        created = client.create_model_version(
            name, source=model_info.model_uri, run_id=model_info.run_id, tags=tags,
            description=description, model_id=model_id)
        for alias in aliases:
            moved.append(record_alias(
                client, name, alias, str(created.version), kind=MOVE_CHALLENGER_SET, who=who,
                reason=f"v{created.version} registered and passed its checks"))
        return client.get_model_version(name, created.version)
    except Exception as exc:
        removed = _remove_partial(client, name, created, moved, who, exc)
        raise RegistrationFailed(f"registering {name} failed: {exc}{removed}") from exc


def _remove_partial(client: MlflowClient, name: str, created: ModelVersion | None,
                    moved: list[Entry], who: str, problem: Exception) -> str:
    """Delete a half-registered version (an alias on it goes with it, which the ledger records);
    what was done, as text for the error message."""
    if created is None:
        return ""
    try:
        client.delete_model_version(name, created.version)
        for entry in moved:
            if _alias_now(client, name, entry.alias) is None:
                _append_committed(client, name, entry.alias, entry.to_version, None,
                                  MOVE_CHALLENGER_CLEARED, f"registration of v{created.version} "
                                  f"failed: {problem}", who)
        return f"; version {created.version} was deleted again"
    except Exception as cleanup:  # noqa: BLE001 - report both problems
        return f"; deleting the partial version {created.version} failed too: {cleanup}"


def publish(client: MlflowClient, name: str, predictor: AmhsPredictor, example: pd.DataFrame,
            workdir: Path, tags: dict[str, str], description: str, aliases: tuple[str, ...] = ()
            ) -> ModelVersion:
    """Log the predictor as a pyfunc in the active MLflow run, then register it (all or nothing)
    with the SHA-256 of its checksums.json as the artifact_sha256 tag (checked on every load)."""
    from amhs_assets.registry.predictor import TAG_ARTIFACT_SHA256, artifact_sha256, log_predictor

    info = log_predictor(predictor, example, workdir)
    tags = {**tags, TAG_ARTIFACT_SHA256: artifact_sha256(info)}
    return register_version(client, name, info, tags, description, aliases)


def _logged_model_id(uri: str) -> str | None:
    """The logged model's id in a models:/m-... URI (MLflow 3), else None."""
    match = re.fullmatch(r"models:/(m-[0-9a-f]+)", uri)
    return match.group(1) if match else None


def version_ref(client: MlflowClient, name: str, alias: str) -> VersionRef | None:
    """The version an alias points to (with its tags), or None (no alias, or no model yet)."""
    try:
        found = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if not_found(exc):
            return None
        raise  # a server error is not "no champion": the gate must not act on it
    return VersionRef(str(found.version), dict(found.tags))


def not_found(exc: MlflowException) -> bool:
    """Whether MLflow said the model or the alias does not exist (and nothing else went wrong)."""
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
        exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in str(exc)
        and "not found" in str(exc))


def load_predictor(name: str, version: str) -> AmhsPredictor:
    """The AmhsPredictor of a registered version, its files verified first (nothing unpickled,
    no code of the artifacts run: see predictor.load_registered)."""
    from amhs_assets.registry.predictor import load_registered

    return load_registered(MlflowClient(), name, version)


def champion_for_evaluation(client: MlflowClient, name: str, feature_version: str
                            ) -> tuple[VersionRef | None, AmhsPredictor | None]:
    """The registry champion and, when its features are today's and its files verify, its
    loaded predictor (a champion that fails verification is logged and not evaluated: the
    training goes on without it, so a new version can replace it)."""
    ref = version_ref(client, name, CHAMPION_ALIAS)
    if ref is None or ref.tags.get(TAG_FEATURES) != feature_version:
        return ref, None
    try:
        return ref, load_predictor(name, ref.version)
    except IntegrityError as exc:
        logging.getLogger(__name__).warning("champion not evaluated: %s", exc)
        return ref, None


def evaluation_metrics(records: list[dict]) -> dict[str, float]:
    """Evaluation records as MLflow metrics: test.<model>.h<h>.<target>.<metric>."""
    out = {}
    for r in records:
        key = f"test.{r['model']}.h{r['horizon']}.{r['target']}"
        for metric in ("mae", "rmse", "r2", "accuracy", "macro_f1"):
            if r.get(metric) is not None:
                out[f"{key}.{metric}"] = float(r[metric])
        for state, value in (r.get("recall") or {}).items():
            if value is not None:
                out[f"{key}.recall_{state}"] = float(value)
    return out


# --- alias moves, through the alias ledger ----------------------------------------------------
@contextlib.contextmanager
def exclusive_lock(path: Path, timeout_s: float = 60.0) -> Iterator[None]:
    """An exclusive lock file: one holder at a time on this host (creating a SQLite store, or a
    Dagster run's MLflow run). Alias moves do not use it: the ledger orders them on every host."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another process holds {path} for over {timeout_s:g} s; "
                                       "retry when it is done") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


SETTLE_S = 30.0  # a champion move recorded this recently whose alias has not moved: in progress
MOVE_ATTEMPTS = 3  # appends tried when other entries (e.g. a new challenger) got in first
Plan = Callable[[Ledger, "str | None"], str]  # (ledger, champion now) -> the version to move to


def ledger_experiment(client: MlflowClient) -> str:
    """The ledger's experiment (artifacts, of which it has none, beside the embedded store's)."""
    uri = client.tracking_uri
    artifacts = (str(Path(uri.removeprefix("sqlite:///")).parent / "artifacts")
                 if uri.startswith("sqlite:///") else None)
    return ensure_experiment(client, LEDGER_EXPERIMENT, artifacts)


def _alias_now(client: MlflowClient, name: str, alias: str) -> str | None:
    ref = version_ref(client, name, alias)
    return ref.version if ref else None


def _settled_champion(client: MlflowClient, name: str, ledger: Ledger) -> str | None:
    """The champion now; refused while the ledger's last champion move is recent and its alias
    has not followed yet (its writer is between the two steps)."""
    now = _alias_now(client, name, CHAMPION_ALIAS)
    last = ledger.last_move(CHAMPION_ALIAS)
    if last is None or last.to_version == now:
        return now
    age_s = time.time() - last.recorded_ms / 1000
    if age_s < SETTLE_S:
        raise ConcurrentPromotion(
            f"a champion move of {name} is in progress: the ledger records {last.describe()} "
            f"({age_s:.0f} s ago) but the alias still points at v{now}; nothing changed, "
            "look (`amhs registry history`) and retry")
    logging.getLogger(__name__).warning(
        "champion of %s is v%s but the ledger's last champion move is %s: that move was "
        "interrupted or the alias was moved outside amhs; the alias counts", name, now,
        last.describe())
    return now


def _expect(name: str, expected: str | None, current: str | None) -> None:
    if current != expected:
        raise ConcurrentPromotion(f"champion of {name} moved from v{expected} to v{current} "
                                  "meanwhile; nothing changed, look and retry")


def move_champion(client: MlflowClient, name: str, plan: Plan, *, kind: str, reason: str,
                  who: str) -> tuple[str | None, Entry]:
    """Move the champion alias to plan(ledger, champion now), compare-and-set through the
    ledger: the move is recorded first and made only if its entry is committed (nobody appended
    since the ledger was read); returns (the champion it replaced, the entry). plan raises to
    refuse (e.g. ConcurrentPromotion when the champion is not the one its caller read)."""
    experiment = ledger_experiment(client)
    lost: list[Entry] = []
    for _ in range(MOVE_ATTEMPTS):
        ledger = read_ledger(client, name)
        current = _settled_champion(client, name, ledger)
        target = plan(ledger, current)
        entry = append_entry(client, experiment, ledger, alias=CHAMPION_ALIAS, kind=kind,
                             from_version=current, to_version=target, who=who, reason=reason)
        if not entry.committed:  # another entry got in first: read again, plan again
            lost.append(entry)
            continue
        client.set_registered_model_alias(name, CHAMPION_ALIAS, target)
        # a writer stalled past SETTLE_S may have set the alias after a later move: follow it
        latest = read_ledger(client, name).last_move(CHAMPION_ALIAS)
        if latest is not None and latest.seq != entry.seq and latest.to_version:
            client.set_registered_model_alias(name, CHAMPION_ALIAS, latest.to_version)
        return current, entry
    raise ConcurrentPromotion(f"could not record the champion move of {name} after "
                              f"{MOVE_ATTEMPTS} attempts: other entries got in first each time "
                              f"(yours: {', '.join(f'#{e.seq}' for e in lost)}); retry")


def record_alias(client: MlflowClient, name: str, alias: str, version: str, *, kind: str,
                 reason: str, who: str) -> Entry:
    """Point `alias` at `version` and record the move in the ledger (no expectation: the newest
    registration is the challenger, as it always was)."""
    current = _alias_now(client, name, alias)
    client.set_registered_model_alias(name, alias, version)
    return _append_committed(client, name, alias, current, version, kind, reason, who)


def _append_committed(client: MlflowClient, name: str, alias: str, source: str | None,
                      target: str | None, kind: str, reason: str, who: str) -> Entry:
    """Append an entry that records a move already made, until it is committed."""
    experiment = ledger_experiment(client)
    for _ in range(MOVE_ATTEMPTS * 2):
        entry = append_entry(client, experiment, read_ledger(client, name), alias=alias,
                             kind=kind, from_version=source, to_version=target, who=who,
                             reason=reason)
        if entry.committed:
            return entry
    raise ConcurrentPromotion(f"{alias} of {name} moved to v{target} but the ledger entry "
                              "could not be committed: other entries got in first each time")


def _decision_tags(outcome: str, reason: str, who: str, entry: Entry | None = None
                   ) -> dict[str, str]:
    tags = {TAG_DECISION: outcome, TAG_REASON: reason, TAG_DECIDED_AT: now_iso(),
            TAG_DECIDED_BY: who}
    return tags | ({TAG_LEDGER_ENTRY: str(entry.seq)} if entry else {})


def _tag(client: MlflowClient, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def apply_gate(client: MlflowClient, name: str, config: GateConfig, feature_version: str,
               who: str) -> Decision:
    """Decide on the challenger (gate.decide); a promotion moves the champion only if it is
    still the one decided against (move_champion); then the decision is tagged on it."""
    challenger = version_ref(client, name, CHALLENGER_ALIAS)
    champion = version_ref(client, name, CHAMPION_ALIAS)
    decision = decide(challenger, champion, feature_version, config)
    if not decision.recorded:
        return decision
    entry = None
    if decision.promote:
        def plan(ledger: Ledger, current: str | None) -> str:
            _expect(name, decision.champion, current)
            return challenger.version

        _, entry = move_champion(client, name, plan, kind=MOVE_GATE, reason=decision.reason,
                                 who=who)
    _tag(client, name, challenger.version, _decision_tags(decision.outcome, decision.reason,
                                                          who, entry))
    return decision


def promote(client: MlflowClient, name: str, version: str, reason: str, who: str,
            expected_champion: str | None) -> str | None:
    """Make `version` champion by hand if the champion is still `expected_champion` (what the
    caller read); returns the previous champion. Recorded in the ledger and tagged on it."""
    if not reason.strip():
        raise ValueError("a reason is required to move the champion")
    version = str(version)
    client.get_model_version(name, version)  # fails clearly on an unknown version

    def plan(ledger: Ledger, current: str | None) -> str:
        _expect(name, expected_champion, current)
        if current == version:
            raise ValueError(f"v{version} is already the champion of {name}")
        return version

    before, entry = move_champion(client, name, plan, kind=MOVE_MANUAL, reason=reason, who=who)
    _tag(client, name, version, _decision_tags(MANUAL, reason, who, entry))
    return before


def rollback(client: MlflowClient, name: str, reason: str, who: str) -> tuple[str, str]:
    """Return the champion to the one before it according to the ledger (never a tag);
    returns (from, to). The version rolled back from is tagged rolled_back_* and loses the
    challenger alias if it holds it: the gate never promotes it again (gate.decide), only
    `amhs registry promote` can."""
    if not reason.strip():
        raise ValueError("a reason is required to roll back")

    def plan(ledger: Ledger, current: str | None) -> str:
        if current is None:
            raise ValueError(f"{name} has no champion to roll back")
        target = ledger.rollback_target(CHAMPION_ALIAS, current)
        client.get_model_version(name, target)  # fails clearly if it was deleted
        return target

    left, entry = move_champion(client, name, plan, kind=MOVE_ROLLBACK, reason=reason, who=who)
    stamp = now_iso()
    _tag(client, name, left, {TAG_ROLLED_BACK_AT: stamp, TAG_ROLLED_BACK_BY: who,
                              TAG_ROLLBACK_REASON: reason})
    _tag(client, name, entry.to_version, _decision_tags(ROLLBACK, reason, who, entry))
    clear_alias(client, name, CHALLENGER_ALIAS, left, who=who,
                reason=f"v{left} was rolled back from ({reason}): the gate never promotes it "
                       f"again; `amhs registry promote {left}` can")
    return left, entry.to_version


def clear_alias(client: MlflowClient, name: str, alias: str, version: str, *, reason: str,
                who: str) -> Entry | None:
    """Remove `alias` from `version` if it points there, recorded in the ledger; None when it
    pointed elsewhere. A version registered meanwhile keeps the alias: if the ledger records a
    later move of it, the alias follows that move."""
    if _alias_now(client, name, alias) != version:
        return None
    client.delete_registered_model_alias(name, alias)
    entry = _append_committed(client, name, alias, version, None, MOVE_CHALLENGER_CLEARED,
                              reason, who)
    latest = read_ledger(client, name).last_move(alias)
    if latest is not None and latest.seq != entry.seq and latest.to_version:
        client.set_registered_model_alias(name, alias, latest.to_version)
    return entry
