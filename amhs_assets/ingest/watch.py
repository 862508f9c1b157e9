"""Watching the raw folder for new or changed files: the pure logic behind the data-change sensor.

Each tick compares a cheap scan (path, size, modification time) with the cursor:
- a file whose size or time differs from the previous tick is still being written: wait;
- once every changed file has held still for a tick, its content hash confirms the change
  (a file touched but not changed launches nothing);
- all confirmed changes of a tick become one run, keyed by the fingerprint of the whole folder,
  so one state of the data never launches two runs.
The hash is taken from one stable read (a file that changes while it is hashed waits); a file
over ingest.max_file_bytes is never read, its size and time stand for its hash; symbolic links
out of the raw folder are not watched (the index refuses them, with the reason).

The sensor's cursor stays small and readable in the UI (`cursor`: file count, the folder's
fingerprint, the digest of the detail); the detail (every file's size, time and hash) lives in a
file beside the raw index (`save_detail` / `load_state`). A detail file that is missing or does
not match the cursor costs one hashing of the folder, never a launch on unchanged data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from amhs_assets.documents import write_text
from amhs_assets.ingest.days import neighbour_day
from amhs_assets.ingest.files import discover_raw_files, folder_fingerprint
from amhs_assets.ingest.limits import IngestConfig
from amhs_assets.ingest.snapshot import stable_sha256, unread_token

Scan = dict[str, tuple[int, int]]  # relative path -> (size, mtime_ns)
WATCH_FILE = "_raw_watch.json"  # the sensor's detail, beside the raw index under the warehouse


@dataclass
class WatchState:
    """What the sensor remembers between ticks (serialised as its cursor)."""

    launched: dict[str, list] = field(default_factory=dict)  # path -> [size, mtime_ns, sha256]
    seen: Scan = field(default_factory=dict)  # the previous tick's scan
    fingerprint: str = ""  # fingerprint of the folder at the last launch

    def dumps(self) -> str:
        return json.dumps({"launched": self.launched, "seen": self.seen,
                           "fingerprint": self.fingerprint})

    @classmethod
    def loads(cls, text: str | None) -> "WatchState":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(data.get("launched", {}), {k: tuple(v) for k, v in data.get("seen", {}).items()},
                   data.get("fingerprint", ""))

    def cursor(self) -> str:
        """The sensor's cursor: what the UI shows (files, fingerprint) and the digest of the
        detail file that holds the rest."""
        return json.dumps({"files": len(self.launched), "fingerprint": self.fingerprint,
                           "detail": self.digest()})

    def digest(self) -> str:
        return hashlib.sha256(self.dumps().encode()).hexdigest()[:16]

    def save_detail(self, path: Path) -> None:
        """Write the detail atomically (before the cursor that names its digest)."""
        write_text(Path(path), self.dumps())


def load_state(cursor: str | None, detail: Path) -> WatchState:
    """The watcher's state from the sensor's cursor and the detail file. A cursor of the old
    kind (the whole state inline) is read as it is; a detail file that is missing, unreadable or
    not the one the cursor names leaves only the fingerprint (the next tick hashes the folder
    once and launches only if its content differs)."""
    if not cursor:
        return WatchState()
    data = json.loads(cursor)
    if "launched" in data:  # written before the detail file existed
        return WatchState.loads(cursor)
    try:
        state = WatchState.loads(Path(detail).read_text())
    except (OSError, ValueError):
        state = None
    if state is not None and state.digest() == data.get("detail"):
        return state
    return WatchState(fingerprint=data.get("fingerprint", ""))


@dataclass
class TickDecision:
    """The outcome of one tick: launch (with a run key and the changed paths), wait, or nothing."""

    action: str  # "launch" | "wait" | "none"
    reason: str
    run_key: str = ""
    changed: list[str] = field(default_factory=list)
    state: WatchState = field(default_factory=WatchState)


def scan(raw_dir: Path) -> Scan:
    """Path, size and modification time of every raw file (no reading)."""
    out = {}
    for path in discover_raw_files(raw_dir):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed since the listing: gone at the next tick
            continue
        out[path.relative_to(raw_dir).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return out


def content_hash(path: Path, size: int, mtime_ns: int, limits: IngestConfig) -> str | None:
    """The hash the raw index records for a file: SHA-256 of one stable read (None: it changed
    while read), or the size and time of a file not read (over the limit, or unreadable)."""
    if size > limits.max_file_bytes:
        return unread_token(size, mtime_ns)
    try:
        return stable_sha256(path)
    except FileNotFoundError:
        return None
    except OSError:
        return unread_token(size, mtime_ns)


def decide(raw_dir: Path, state: WatchState, baseline: str = "",
           limits: IngestConfig | None = None) -> TickDecision:
    """One tick of the watcher. `baseline` is the fingerprint of the data last materialized
    (used when the cursor is empty, so a restart does not retrain on unchanged data)."""
    limits = limits or IngestConfig()
    now = scan(raw_dir)
    changed = sorted(p for p, (size, mtime) in now.items()
                     if state.launched.get(p, [None, None])[:2] != [size, mtime])
    removed = sorted(set(state.launched) - set(now))
    moving = [p for p in changed if state.seen.get(p) != now[p]]
    following = WatchState(state.launched, now, state.fingerprint)
    if moving:
        return TickDecision("wait", f"{len(moving)} file(s) still changing, e.g. {moving[0]}",
                            state=following)
    if not changed and not removed:
        return TickDecision("none", "no new or changed raw files", state=following)
    hashes = {p: v[2] for p, v in state.launched.items() if p in now}
    fresh = {p: content_hash(raw_dir / p, *now[p], limits) for p in changed}
    unstable = [p for p, digest in fresh.items() if digest is None]
    if unstable:
        return TickDecision("wait", f"{len(unstable)} file(s) changed while hashed, e.g. "
                            f"{unstable[0]}", state=following)
    hashes.update(fresh)
    launched = {p: [*now[p], hashes[p]] for p in now}
    current = folder_fingerprint(hashes)
    following = WatchState(launched, now, current)
    previous = state.fingerprint or baseline
    if current == previous:
        return TickDecision("none", "files touched but their content is unchanged", state=following)
    really = [p for p in changed if state.launched.get(p, [0, 0, ""])[2] != hashes[p]]
    return TickDecision("launch", f"{len(really)} new or changed and {len(removed)} removed "
                        "raw file(s)", run_key=f"raw-{current[:16]}", changed=really + removed,
                        state=following)


def partitions_to_refresh(days: list[str], known: set[str]) -> dict[str, list[str]]:
    """The day partitions to re-materialize when the raw rows of `days` changed: those days of
    every data asset, the next day's features (their 120-minute lookback reads the changed day)
    and the previous day's targets (their last 25 minutes look into it), among the known days."""
    changed = set(days)
    after = {neighbour_day(d, 1) for d in changed} & known
    before = {neighbour_day(d, -1) for d in changed} & known
    return {"cleaned_amhs_logs": sorted(changed), "amhs_features": sorted(changed | after),
            "amhs_targets": sorted(changed | before)}
