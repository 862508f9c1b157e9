"""What `amhs registry list` and `amhs registry history` print: the versions with their key tags,
and the alias ledger's moves."""

from __future__ import annotations

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from amhs_assets.registry.ledger import Ledger
from amhs_assets.registry.store import not_found
from amhs_assets.registry.tags import TAG_DECISION, TAG_REASON

LIST_COLUMNS = {"kind": "candidate_kind", "features": "feature_version",
                "avg_mae": "test_mean_avg_mae", "accuracy": "test_mean_state_accuracy",
                "crit_recall": "test_mean_critical_recall", "decision": TAG_DECISION,
                "reason": TAG_REASON, "data": "data_fingerprint", "code": "code_version"}
METRIC_COLUMNS = ("avg_mae", "accuracy", "crit_recall")
HISTORY_COLUMNS = ("seq", "recorded", "alias", "kind", "from", "to", "who", "os_user", "host",
                   "status", "reason")


def _cut(value: str, width: int = 60) -> str:
    return value if len(value) <= width else value[:width - 1] + "…"


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
            row[column] = _cut(value)
        rows.append(row)
    return pd.DataFrame(rows, columns=["version", "aliases", "created", *LIST_COLUMNS])


def history_table(ledger: Ledger, refused: bool = False, width: int = 60) -> pd.DataFrame:
    """The ledger's alias moves, newest first (with the refused attempts when asked)."""
    rows = [{"seq": e.seq, "recorded": e.recorded, "alias": e.alias, "kind": e.kind,
             "from": e.from_version or "-", "to": e.to_version or "-", "who": e.who,
             "os_user": e.os_user, "host": e.host,
             "status": "committed" if e.committed else f"refused (read #{e.after})",
             "reason": _cut(e.reason, width)}
            for e in reversed(ledger.entries) if refused or e.committed]
    return pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
