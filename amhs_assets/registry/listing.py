"""What `amhs registry list` and `amhs registry history` print: the versions with their key tags,
and the alias ledger's moves."""

from __future__ import annotations

import re

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from amhs_assets.registry.ledger import Ledger
from amhs_assets.registry.store import not_found
from amhs_assets.registry.tags import (
    TAG_ACCEPTED,
    TAG_CODE,
    TAG_DATA,
    TAG_DECISION,
    TAG_FEATURES,
    TAG_KIND,
    TAG_REASON,
    TAG_ROLLED_BACK_AT,
    TEST_PREFIX,
    WINDOW_TAGS,
)

# every column names its figure: target and horizon (avg_mae_h10: MAE in s of the target `avg`,
# the window mean of the transfer time, 10 minutes ahead); *_mean is the mean over the horizons
TAG_COLUMNS = {"kind": TAG_KIND, "features": TAG_FEATURES}
MEAN_COLUMNS = {"avg_mae_mean": "mean_avg_mae", "state_acc_mean": "mean_state_accuracy",
                "crit_recall_mean": "mean_critical_recall"}
TRAILING_COLUMNS = {"decision": TAG_DECISION, "reason": TAG_REASON, "data": TAG_DATA,
                    "code": TAG_CODE}
ACCEPTED = {"true": "yes", "false": "no"}  # the acceptance bars' verdict; '-' before they existed
UNKNOWN = "unknown"  # a version registered before its test window was recorded
HORIZON_MAE = re.compile(rf"^{TEST_PREFIX}avg_mae_h(\d+)$")
HISTORY_COLUMNS = ("seq", "recorded", "alias", "kind", "from", "to", "who", "os_user", "host",
                   "status", "reason")


def _cut(value: str, width: int = 60) -> str:
    return value if len(value) <= width else value[:width - 1] + "…"


def scored_window(tags: dict[str, str]) -> tuple[str, str, str] | None:
    """A version's test window (start, end, rows) from its tags; None when not recorded."""
    values = tuple(tags.get(t, "") for t in WINDOW_TAGS)
    return None if any(v in ("", "None") for v in values) else values


def describe_window(window: tuple[str, str, str] | None) -> str:
    """A test window in words: '2026-02-05 00:00 .. 2026-02-05 23:59 UTC, 2000 rows'."""
    if window is None:
        return f"{UNKNOWN} (registered before test windows were recorded)"
    start, end, rows = window

    def minute(text: str) -> str:
        try:
            return pd.Timestamp(text).tz_convert("UTC").strftime("%Y-%m-%d %H:%M")
        except (ValueError, TypeError):  # naive or odd: shown as recorded
            return text

    return f"{minute(start)} .. {minute(end)} UTC, {rows} rows"


def _metric(tags: dict[str, str], key: str) -> str:
    value = tags.get(f"{TEST_PREFIX}{key}", "")
    try:
        return f"{float(value):.4g}" if value else "-"
    except ValueError:
        return "-"


def version_table(client: MlflowClient, name: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every version, newest first: aliases, creation time, the test window it was scored on
    (a label, W1, W2, ...: figures compare only within one label), avg MAE per horizon and the
    means over horizons, whether it met the acceptance bars, decision and provenance; and the
    labels' windows in words."""
    try:
        versions = client.search_model_versions(f"name='{name}'")
        aliases = client.get_registered_model(name).aliases  # search results may omit them
    except MlflowException as exc:
        if not not_found(exc):
            raise
        versions, aliases = [], {}
    versions = sorted(versions, key=lambda v: int(v.version), reverse=True)
    horizons = sorted({int(m.group(1)) for v in versions for key in v.tags
                       if (m := HORIZON_MAE.match(key))})
    labels: dict[tuple[str, str, str] | None, str] = {}
    for v in reversed(versions):  # W1 is the oldest window
        window = scored_window(dict(v.tags))
        if window not in labels:
            labels[window] = UNKNOWN if window is None else f"W{sum(1 for w in labels if w)+1}"
    rows = []
    for v in versions:
        tags = dict(v.tags)
        mine = sorted(a for a, number in aliases.items() if str(number) == str(v.version))
        row = {"version": int(v.version), "aliases": ",".join(mine) or "-",
               "created": pd.Timestamp(v.creation_timestamp, unit="ms", tz="UTC")
               .strftime("%Y-%m-%d %H:%M"),
               **{column: _cut(tags.get(tag, "")) for column, tag in TAG_COLUMNS.items()},
               "test_window": labels[scored_window(tags)],
               **{f"avg_mae_h{h}": _metric(tags, f"avg_mae_h{h}") for h in horizons},
               **{column: _metric(tags, key) for column, key in MEAN_COLUMNS.items()},
               "accepted": ACCEPTED.get(tags.get(TAG_ACCEPTED, ""), "-"),
               **{column: _cut(tags.get(tag, "")) for column, tag in TRAILING_COLUMNS.items()}}
        if tags.get(TAG_ROLLED_BACK_AT):  # its decision stands; the champion left it since
            row["decision"] = f"{row['decision'] or '-'}; rolled back {tags[TAG_ROLLED_BACK_AT]}"
        rows.append(row)
    columns = ["version", "aliases", "created", *TAG_COLUMNS, "test_window",
               *(f"avg_mae_h{h}" for h in horizons), *MEAN_COLUMNS, "accepted", *TRAILING_COLUMNS]
    legend = {label: describe_window(window) for window, label in labels.items()}
    return pd.DataFrame(rows, columns=columns), legend


def history_table(ledger: Ledger, refused: bool = False, width: int = 60) -> pd.DataFrame:
    """The ledger's alias moves, newest first (with the refused attempts when asked)."""
    rows = [{"seq": e.seq, "recorded": e.recorded, "alias": e.alias, "kind": e.kind,
             "from": e.from_version or "-", "to": e.to_version or "-", "who": e.who,
             "os_user": e.os_user, "host": e.host,
             "status": "committed" if e.committed else f"refused (read #{e.after})",
             "reason": _cut(e.reason, width)}
            for e in reversed(ledger.entries) if refused or e.committed]
    return pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
