"""Drift- and performance-triggered retraining: the pure logic behind retraining_trigger_sensor.

Each source (the drift report, the performance monitor) flags some of its reports. An episode
starts with a flagged report while none is open and ends with the next report that is clean;
a report that could not tell (not enough data) changes nothing. Each episode launches one
training run, keyed by the report that started it; the cursor remembers the last report read
and whether an episode is open, so a second flagged report of the same episode launches nothing.
The starts and ends of episodes (`episodes`) are also what the webhooks are told.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping

MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Report:
    """One materialization of a monitored asset: its storage id, flag (None: could not tell)
    and the reason it gives."""

    storage_id: int
    flag: bool | None
    reason: str = ""


@dataclass
class SourceState:
    """What the sensor remembers of one source."""

    after: int = 0  # storage id of the last report read
    open: bool = False  # an episode is under way
    since: int | None = None  # storage id of the report that started it


@dataclass
class TriggerState:
    """The sensor's cursor: one SourceState per source."""

    sources: dict[str, SourceState] = field(default_factory=dict)

    def dumps(self) -> str:
        return json.dumps({k: asdict(v) for k, v in self.sources.items()})

    @classmethod
    def loads(cls, text: str | None) -> "TriggerState":
        return cls({k: SourceState(**v) for k, v in json.loads(text).items()} if text else {})


@dataclass(frozen=True)
class Launch:
    """A training run to launch: the source that asked, the reason, and the run key."""

    trigger: str
    reason: str
    run_key: str


def adopt(latest: Report | None) -> SourceState:
    """A source seen for the first time (empty cursor): start after its latest report, inside
    its episode if that report is flagged, without launching (a restart does not retrain)."""
    if latest is None:
        return SourceState()
    flagged = latest.flag is True
    return SourceState(latest.storage_id, flagged, latest.storage_id if flagged else None)


@dataclass(frozen=True)
class Change:
    """An episode of a source that a report started (started=True) or ended."""

    started: bool
    report: Report


def episodes(state: SourceState, reports: list[Report]) -> tuple[SourceState, list[Change]]:
    """Read a source's new reports in order: the state after them, and the episodes they
    started or ended, in order."""
    after, is_open, since = state.after, state.open, state.since
    changes = []
    for report in sorted(reports, key=lambda r: r.storage_id):
        after = max(after, report.storage_id)
        if report.flag is True and not is_open:
            is_open, since = True, report.storage_id
            changes.append(Change(True, report))
        elif report.flag is False and is_open:
            is_open, since = False, None
            changes.append(Change(False, report))
    return SourceState(after, is_open, since), changes


def launch_for(source: str, changes: list[Change]) -> Launch | None:
    """The training run of a source's changes: keyed by the last episode that started."""
    starts = [c.report for c in changes if c.started]
    if not starts:
        return None
    return Launch(source, starts[-1].reason[:MAX_REASON_CHARS], f"{source}-{starts[-1].storage_id}")


def advance(source: str, state: SourceState, reports: list[Report]
            ) -> tuple[SourceState, Launch | None]:
    """Read a source's new reports in order; a launch if at least one episode started."""
    state, changes = episodes(state, reports)
    return state, launch_for(source, changes)


def combine(launches: list[Launch]) -> Launch | None:
    """Episodes of several sources that start on the same tick become one run: the first
    source's trigger, every reason."""
    if not launches:
        return None
    if len(launches) == 1:
        return launches[0]
    reason = "; ".join(f"{x.trigger}: {x.reason}" for x in launches)[:MAX_REASON_CHARS]
    return Launch(launches[0].trigger, reason, "+".join(x.run_key for x in launches))


def drift_reason(metadata: Mapping[str, object]) -> str:
    """Why a drift report asks for retraining, from its metadata."""
    share, limit = metadata.get("share_drifted"), metadata.get("drift_share")
    text = (f"drift share {share:.2f} >= {limit:.2f}" if isinstance(share, float)
            and isinstance(limit, float) else "drift detected")
    columns = metadata.get("drifted_columns")
    return f"{text}, most drifted: {columns}" if columns else text


def performance_reason(metadata: Mapping[str, object]) -> str:
    """Why the performance monitor asks for retraining, from its metadata."""
    return str(metadata.get("degradation_reason") or "model performance degraded")


@dataclass(frozen=True)
class Source:
    """A monitored asset: its key, the bool metadata that flags it, how to word the reason."""

    name: str
    asset: str
    flag_key: str
    reason: Callable[[Mapping[str, object]], str]

    def report(self, storage_id: int, metadata: Mapping[str, object]) -> Report:
        """A materialization's metadata (plain values) as a Report."""
        flag = metadata.get(self.flag_key)
        flag = bool(flag) if isinstance(flag, bool) else None
        return Report(storage_id, flag, self.reason(metadata) if flag else "")


SOURCES = (Source("drift", "drift_report", "drift_detected", drift_reason),
           Source("performance", "performance_monitor", "degraded", performance_reason))
