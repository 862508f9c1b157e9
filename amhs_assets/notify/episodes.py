"""CRITICAL episodes per line, from the API's prediction answers, with hysteresis.

A horizon *alarms* when its answer says ``alarm: true`` (P(CRITICAL) reached the version's
operating point), or, from a model without operating points (no ``alarm`` key), when its
state is CRITICAL. A line enters an episode with its first alarming forecast and clears after
``clear_after`` consecutive forecasts without one; alarms in between belong to the same
episode, so a flapping line is paged once. Only forecasts of a newer minute than the line's
last one count: a minute answered twice (two clients, a retry) or an older one is ignored.

`CriticalEpisodes` keeps that state in memory; `SharedEpisodes` keeps it in a SQLite file that
every worker process of the API shares (and that outlives a restart), so a line whose requests
reach several workers is still announced once per episode.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from pathlib import Path

from amhs_assets.notify import messages


@dataclass
class LineEpisode:
    """What the tracker remembers of one line."""

    last_as_of: str = ""  # the newest minute seen
    started_at: str | None = None  # None: no episode open
    last_alarm_at: str = ""
    calm: int = 0  # consecutive forecasts without an alarm inside the open episode
    alarm_minutes: int = 0
    peak: float | None = None


def alarms(horizons: Mapping[str, Mapping]) -> dict[str, dict]:
    """The alarming horizons of one forecast: P(CRITICAL), threshold and state of each."""
    out = {}
    for h, answer in horizons.items():
        alarm = answer.get("alarm")
        if alarm if alarm is not None else answer.get("state") == "CRITICAL":
            out[h] = {"p_critical": (answer.get("proba") or {}).get("CRITICAL"),
                      "threshold": answer.get("threshold"), "state": answer.get("state")}
    return out


def _minutes_between(start: str, end: str) -> float:
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return round(seconds / 60, 1)


class CriticalEpisodes:
    """Per line, whether a CRITICAL episode is open; `observe` returns the messages due."""

    def __init__(self, clear_after: int) -> None:
        self.clear_after = clear_after
        self.lines: dict[str, LineEpisode] = {}

    def observe(self, model: Mapping, predictions: Iterable[Mapping]) -> list[dict]:
        """One answer's predictions (one per line) -> `entered` and `cleared` messages."""
        out = []
        for prediction in predictions:
            line_id, as_of = str(prediction["line_id"]), str(prediction["as_of"])
            line = self.lines.setdefault(line_id, LineEpisode())
            if as_of <= line.last_as_of:  # same format everywhere: strings sort as times
                continue
            line.last_as_of = as_of
            found = alarms(prediction["horizons"])
            if found:
                out += self._alarm(line_id, line, as_of, found, model)
            elif line.started_at is not None:
                line.calm += 1
                if line.calm >= self.clear_after:
                    out.append(self._clear(line_id, line, as_of, model))
        return out

    def _alarm(self, line_id: str, line: LineEpisode, as_of: str, found: dict, model: Mapping
               ) -> list[dict]:
        """An alarming forecast: the start of an episode (one message) or more of the same."""
        entered = line.started_at is None
        if entered:
            line.started_at, line.alarm_minutes, line.peak = as_of, 0, None
        line.last_alarm_at, line.calm = as_of, 0
        line.alarm_minutes += 1
        known = [a["p_critical"] for a in found.values() if a["p_critical"] is not None]
        if known:
            line.peak = max(known + ([line.peak] if line.peak is not None else []))
        return [messages.critical_entered(line_id, as_of, found, model)] if entered else []

    def _clear(self, line_id: str, line: LineEpisode, as_of: str, model: Mapping) -> dict:
        """The end of a line's episode: its message, and the line back to calm."""
        started, last = line.started_at or as_of, line.last_alarm_at
        out = messages.critical_cleared(line_id, as_of, started, last,
                                        _minutes_between(started, last), line.alarm_minutes,
                                        line.peak, model)
        self.lines[line_id] = LineEpisode(last_as_of=as_of)
        return out

    def close(self) -> None:
        """Nothing to release (SharedEpisodes closes its file)."""


COLUMNS = tuple(f.name for f in fields(LineEpisode))
SCHEMA = """CREATE TABLE IF NOT EXISTS critical_episodes (
    line_id TEXT PRIMARY KEY, last_as_of TEXT NOT NULL, started_at TEXT,
    last_alarm_at TEXT NOT NULL, calm INTEGER NOT NULL, alarm_minutes INTEGER NOT NULL,
    peak REAL)"""
UPSERT = (f"INSERT OR REPLACE INTO critical_episodes (line_id, {', '.join(COLUMNS)}) "
          f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})")
BUSY_TIMEOUT_S = 30.0  # another worker's transaction holds the file for milliseconds


class SharedEpisodes:
    """CriticalEpisodes over a SQLite file (WAL) shared by the processes that serve one host's
    API: each answer is read, decided and written back in one write transaction, so two
    workers never both open (or both clear) a line's episode. One row per line. Used from one
    thread per process (the notifier's); `lines` may be read from any."""

    def __init__(self, path: Path, clear_after: int) -> None:
        self.path, self.clear_after = Path(path), clear_after
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last minutes, never the file
        db.execute(SCHEMA)
        return db

    def observe(self, model: Mapping, predictions: Iterable[Mapping]) -> list[dict]:
        """As CriticalEpisodes.observe, against the state every worker shares."""
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # the write lock first: nobody changes the rows read
        try:
            tracker = CriticalEpisodes(self.clear_after)
            tracker.lines = self._read(db)
            before = {line_id: astuple(line) for line_id, line in tracker.lines.items()}
            out = tracker.observe(model, predictions)
            changed = [(line_id, *astuple(line)) for line_id, line in tracker.lines.items()
                       if before.get(line_id) != astuple(line)]
            db.executemany(UPSERT, changed)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    @staticmethod
    def _read(db: sqlite3.Connection) -> dict[str, LineEpisode]:
        rows = db.execute(f"SELECT line_id, {', '.join(COLUMNS)} FROM critical_episodes")
        return {row[0]: LineEpisode(*row[1:]) for row in rows}

    @property
    def lines(self) -> dict[str, LineEpisode]:
        """Every line's state as stored now (a connection of its own)."""
        if not self.path.exists():
            return {}
        db = self._connect()
        try:
            return self._read(db)
        finally:
            db.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
