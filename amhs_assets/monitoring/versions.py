"""What the registry says about versions, for monitoring: each version's evaluated level and the
timeline of registrations, promotions and rollbacks with their reasons. MLflow, no Dagster."""

from __future__ import annotations

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from amhs_assets.monitoring.performance import levels_from_run_metrics, levels_from_tags
from amhs_assets.registry.store import not_found
from amhs_assets.registry.tags import (
    TAG_DECIDED_AT,
    TAG_DECIDED_BY,
    TAG_DECISION,
    TAG_KIND,
    TAG_REASON,
    TAG_ROLLBACK_REASON,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLED_BACK_BY,
)

EVENT_COLUMNS = ["at", "version", "event", "kind", "reason", "by"]
# events that put a version in front of users


def version_levels(client: MlflowClient, name: str, version: str
                   ) -> tuple[dict[int, dict[str, float]], str]:
    """A version's evaluated metrics per horizon, and where they come from: the test metrics of
    the MLflow run that registered it, else what its tags record; ({}, why) when neither."""
    try:
        found = client.get_model_version(name, str(version))
    except MlflowException as exc:
        if not_found(exc):
            return {}, f"v{version} is not in the registry"
        raise
    tags = dict(found.tags)
    kind = tags.get(TAG_KIND, "")
    if found.run_id:
        try:
            metrics = client.get_run(found.run_id).data.metrics
        except MlflowException:
            metrics = {}
        levels = levels_from_run_metrics(metrics, kind)
        if levels:
            return levels, f"test metrics of MLflow run {found.run_id[:8]} ({kind})"
    levels = levels_from_tags(tags)
    return levels, (f"test metrics in the tags of v{version}" if levels
                    else f"v{version} records no test metrics")


def version_events(client: MlflowClient, name: str) -> pd.DataFrame:
    """Every version's registration, gate decision, manual move and rollback, oldest first."""
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException as exc:
        if not not_found(exc):
            raise
        versions = []
    rows = []
    for v in versions:  # one entry per registered version: a handful
        tags = dict(v.tags)
        kind = tags.get(TAG_KIND, "")
        rows.append({"at": pd.Timestamp(v.creation_timestamp, unit="ms", tz="UTC"),
                     "version": str(v.version), "event": "registered", "kind": kind,
                     "reason": tags.get("checks", ""), "by": tags.get("dagster_run_id", "")[:8]})
        if tags.get(TAG_DECISION):
            rows.append({"at": _when(tags.get(TAG_DECIDED_AT), v.creation_timestamp),
                         "version": str(v.version), "event": tags[TAG_DECISION], "kind": kind,
                         "reason": tags.get(TAG_REASON, ""), "by": tags.get(TAG_DECIDED_BY, "")})
        if tags.get(TAG_ROLLED_BACK_AT):
            rows.append({"at": _when(tags[TAG_ROLLED_BACK_AT], v.creation_timestamp),
                         "version": str(v.version), "event": "rolled_back", "kind": kind,
                         "reason": tags.get(TAG_ROLLBACK_REASON, ""),
                         "by": tags.get(TAG_ROLLED_BACK_BY, "")})
    frame = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    # decision times are tagged to the second: never before the registration they follow
    rank = frame["event"].map({"registered": 0, "rolled_back": 2}).fillna(1)
    created = frame["at"].where(rank == 0).groupby(frame["version"]).transform("max")
    frame["at"] = frame["at"].where(frame["at"] >= created, created)
    order = frame.assign(rank=rank).sort_values(["at", "rank", "version"], kind="stable")
    return order[EVENT_COLUMNS].reset_index(drop=True)


def _when(text: str | None, fallback_ms: int) -> pd.Timestamp:
    """An ISO time tag as a UTC timestamp (the version's creation when unreadable)."""
    try:
        stamp = pd.Timestamp(text)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    except (TypeError, ValueError):
        return pd.Timestamp(fallback_ms, unit="ms", tz="UTC")
