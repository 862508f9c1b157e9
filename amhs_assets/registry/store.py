"""The MLflow model registry (SPEC section 5), no Dagster: connect, register, promote, roll back.

Every alias move (the gate's, a manual promote, a rollback) happens under one lock file and
re-reads the champion inside it (compare-and-set): two promotions at once cannot both win.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import logging
import os
import re
import time
from pathlib import Path
from typing import Iterator

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
from amhs_assets.registry.predictor import (
    TAG_ARTIFACT_SHA256,
    AmhsPredictor,
    artifact_sha256,
    load_registered,
    log_predictor,
)
from amhs_assets.registry.tags import (
    MANUAL,
    ROLLBACK,
    TAG_DECIDED_AT,
    TAG_DECIDED_BY,
    TAG_DECISION,
    TAG_FEATURES,
    TAG_PREVIOUS,
    TAG_REASON,
    TAG_ROLLBACK_REASON,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLED_BACK_BY,
    now_iso,
)

# mlflow's own HTTP retries (its defaults retry for minutes): a few, quickly
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


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
    aliases; if any part fails, the new version is deleted again and RegistrationFailed raised."""
    with contextlib.suppress(MlflowException):  # it exists already
        client.create_registered_model(name, description="AMHS predictor: raw rows in, every "
                                       "horizon's min/max/avg transfer time and state out")
    created = None
    try:
        model_id = getattr(model_info, "model_id", None) or _logged_model_id(model_info.model_uri)
        created = client.create_model_version(
            name, source=model_info.model_uri, run_id=model_info.run_id, tags=tags,
            description=description, model_id=model_id)
        for alias in aliases:
            client.set_registered_model_alias(name, alias, created.version)
        return client.get_model_version(name, created.version)
    except Exception as exc:
        removed = ""
        if created is not None:
            try:
                client.delete_model_version(name, created.version)
                removed = f"; version {created.version} was deleted again"
            except Exception as cleanup:  # noqa: BLE001 - report both problems
                removed = f"; deleting the partial version {created.version} failed too: {cleanup}"
        raise RegistrationFailed(f"registering {name} failed: {exc}{removed}") from exc


def publish(client: MlflowClient, name: str, predictor: AmhsPredictor, example: pd.DataFrame,
            workdir: Path, tags: dict[str, str], description: str, aliases: tuple[str, ...] = ()
            ) -> ModelVersion:
    """Log the predictor as a pyfunc in the active MLflow run, then register it (all or nothing)
    with the SHA-256 of its checksums.json as the artifact_sha256 tag (checked on every load)."""
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


# --- alias moves, under a lock ------------------------------------------------------------
@contextlib.contextmanager
def exclusive_lock(path: Path, timeout_s: float = 60.0) -> Iterator[None]:
    """An exclusive lock file: one holder at a time on this host (alias moves, run creation)."""
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


def current_user() -> str:
    """Who runs this: the login name, else $USER."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def _move_champion(client: MlflowClient, name: str, version: str, previous: str | None,
                   tags: dict[str, str]) -> None:
    """Record the move on the version, then point the champion alias at it and read it back."""
    if previous is not None and previous != version:
        tags = {TAG_PREVIOUS: previous, **tags}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    now = client.get_model_version_by_alias(name, CHAMPION_ALIAS).version
    if str(now) != str(version):
        raise ConcurrentPromotion(f"champion of {name} is v{now}, not v{version}, right after "
                                  "moving it: another promotion ran without the lock")


def _champion_now(client: MlflowClient, name: str) -> str | None:
    ref = version_ref(client, name, CHAMPION_ALIAS)
    return ref.version if ref else None


def apply_gate(client: MlflowClient, name: str, config: GateConfig, feature_version: str,
               lock_path: Path, who: str) -> Decision:
    """Decide on the challenger (gate.decide), record the decision on it, move the champion."""
    with exclusive_lock(lock_path):
        challenger = version_ref(client, name, CHALLENGER_ALIAS)
        champion = version_ref(client, name, CHAMPION_ALIAS)
        decision = decide(challenger, champion, feature_version, config)
        if not decision.recorded:
            return decision
        tags = {TAG_DECISION: decision.outcome, TAG_REASON: decision.reason,
                TAG_DECIDED_AT: now_iso(), TAG_DECIDED_BY: who}
        if decision.promote:
            _move_champion(client, name, challenger.version, decision.champion, tags)
        else:
            for key, value in tags.items():
                client.set_model_version_tag(name, challenger.version, key, value)
    return decision


def promote(client: MlflowClient, name: str, version: str, reason: str, who: str,
            lock_path: Path, expected_champion: str | None) -> str | None:
    """Make `version` champion by hand if the champion is still `expected_champion`; returns the
    previous champion. The reason, who and when are recorded as tags on the version."""
    if not reason.strip():
        raise ValueError("a reason is required to move the champion")
    client.get_model_version(name, str(version))  # fails clearly on an unknown version
    with exclusive_lock(lock_path):
        before = _champion_now(client, name)
        if before != expected_champion:
            raise ConcurrentPromotion(f"champion of {name} moved from v{expected_champion} to "
                                      f"v{before} meanwhile; nothing changed, look and retry")
        if before == str(version):
            raise ValueError(f"v{version} is already the champion of {name}")
        _move_champion(client, name, str(version), before, {
            TAG_DECISION: MANUAL, TAG_REASON: reason, TAG_DECIDED_AT: now_iso(),
            TAG_DECIDED_BY: who})
    return before


def rollback(client: MlflowClient, name: str, reason: str, who: str, lock_path: Path
             ) -> tuple[str, str]:
    """Return the champion to the one before it (its previous_champion tag); returns (from, to)."""
    if not reason.strip():
        raise ValueError("a reason is required to roll back")
    with exclusive_lock(lock_path):
        current = version_ref(client, name, CHAMPION_ALIAS)
        if current is None:
            raise ValueError(f"{name} has no champion to roll back")
        previous = current.tags.get(TAG_PREVIOUS)
        if not previous:
            raise ValueError(f"champion v{current.version} records no previous champion "
                             f"({TAG_PREVIOUS} tag): nothing to roll back to")
        client.get_model_version(name, previous)  # fails clearly if it was deleted
        stamp = now_iso()
        for key, value in {TAG_ROLLED_BACK_AT: stamp, TAG_ROLLED_BACK_BY: who,
                           TAG_ROLLBACK_REASON: reason}.items():
            client.set_model_version_tag(name, current.version, key, value)
        for key, value in {TAG_DECISION: ROLLBACK, TAG_REASON: reason, TAG_DECIDED_AT: stamp,
                           TAG_DECIDED_BY: who}.items():
            client.set_model_version_tag(name, previous, key, value)
        client.set_registered_model_alias(name, CHAMPION_ALIAS, previous)
    return current.version, previous


# --- listing --------------------------------------------------------------------------------
LIST_COLUMNS = {"kind": "candidate_kind", "features": "feature_version",
                "avg_mae": "test_mean_avg_mae", "accuracy": "test_mean_state_accuracy",
                "crit_recall": "test_mean_critical_recall", "decision": TAG_DECISION,
                "reason": TAG_REASON, "data": "data_fingerprint", "code": "code_version"}
METRIC_COLUMNS = ("avg_mae", "accuracy", "crit_recall")


def version_table(client: MlflowClient, name: str) -> pd.DataFrame:
    """Every version, newest first: aliases, creation time, key metrics and tags."""
    try:
        versions = client.search_model_versions(f"name='{name}'")
        aliases = client.get_registered_model(name).aliases  # search results may omit them
    except MlflowException as exc:
        if not not_found(exc):
            raise
        versions, aliases = [], {}
    rows = []
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        tags = dict(v.tags)
        mine = sorted(a for a, number in aliases.items() if str(number) == str(v.version))
        row = {"version": int(v.version), "aliases": ",".join(mine) or "-",
               "created": pd.Timestamp(v.creation_timestamp, unit="ms", tz="UTC")
               .strftime("%Y-%m-%d %H:%M")}
        for column, tag in LIST_COLUMNS.items():
            value = tags.get(tag, "")
            if column in METRIC_COLUMNS and value:
                value = f"{float(value):.4g}"
            row[column] = value if len(value) <= 60 else value[:59] + "…"
        rows.append(row)
    return pd.DataFrame(rows, columns=["version", "aliases", "created", *LIST_COLUMNS])
