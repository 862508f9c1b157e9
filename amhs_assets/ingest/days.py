"""Which fab-local days each raw file covers: the index that maps files to day partitions.

The index lives next to the warehouse (``_raw_index.json``) and is refreshed cheaply: a file
whose size and modification time are unchanged is not read again; a changed one is hashed, and
read (a snapshot: its bytes once, hashed, parsed within the ingest limits) when its content
changed; the hash recorded is the hash of the bytes whose days were read, and the cleaning reads
a file only when its bytes still have that hash (otherwise it is skipped with the reason). `affected_days` turns the files that
changed into the days to re-materialize: the days a file covered before and the days it covers
now (a corrected file can move rows from one day to another). No Dagster here.

A row belongs to the fab-local day of its timestamp. Rows that have no valid timestamp, and a
file's unreadable rows, are accounted for on the file's home day (its first day); a file with
no valid timestamp at all (unreadable, columns missing) covers no day and is reported as
rejected by the whole-history quality report.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from amhs_assets.documents import write_text
from amhs_assets.ingest.clean import CleanResult, clean_raw_logs, write_quarantine
from amhs_assets.ingest.files import SOURCE_FILE, FileResult, RawLogs, read_raw_files
from amhs_assets.ingest.limits import FileChanged, FileRejected, IngestConfig, over_bytes
from amhs_assets.ingest.parse import parse_raw, raw_timestamps
from amhs_assets.ingest.snapshot import Snapshot, survey_raw_folder, take_snapshot, unread_token
from amhs_assets.ingest.values import as_utc
from amhs_assets.progress import Progress, advance
from amhs_assets.warehouse import local_days

INDEX_FILE = "_raw_index.json"


@dataclass
class FileDays:
    """What the index knows of one raw file."""

    size: int
    mtime_ns: int
    sha256: str
    days: list[str] = field(default_factory=list)  # fab-local days of its valid timestamps
    rejected: str = ""  # why the file covers no day (unreadable, columns missing, no timestamp)
    rows: int = 0  # data rows, for the accounting of a rejected file

    @property
    def home_day(self) -> str | None:
        """The day that accounts for the file's rows without a valid timestamp."""
        return self.days[0] if self.days else None


@dataclass
class RawIndex:
    """Relative path -> FileDays for every raw file (and every refused entry, with no hash), the
    timezone its days are in and the ingest limits it was read with."""

    timezone: str
    files: dict[str, FileDays] = field(default_factory=dict)
    limits: dict = field(default_factory=dict)  # asdict(IngestConfig) of the reading
    skipped: dict[str, str] = field(default_factory=dict)  # changed while read (not stored)

    @classmethod
    def load(cls, path: Path, timezone: str) -> RawIndex:
        """The stored index; empty when there is none or it was built for another timezone."""
        if not Path(path).is_file():
            return cls(timezone)
        data = json.loads(Path(path).read_text())
        if data.get("timezone") != timezone:
            return cls(timezone)
        return cls(timezone, {p: FileDays(**v) for p, v in data.get("files", {}).items()},
                   data.get("limits", {}))

    def save(self, path: Path) -> None:
        """Write the index atomically."""
        write_text(Path(path), json.dumps({
            "timezone": self.timezone, "limits": self.limits,
            "files": {p: asdict(f) for p, f in sorted(self.files.items())}}))

    def days(self) -> list[str]:
        """Every day some raw file covers, oldest first."""
        return sorted({d for f in self.files.values() for d in f.days})

    def files_for(self, day: str) -> list[str]:
        """The raw files with rows on a day, by path."""
        return sorted(p for p, f in self.files.items() if day in f.days)

    def home_files(self, day: str) -> set[str]:
        """The files whose rows without a valid timestamp are accounted for on this day."""
        return {p for p, f in self.files.items() if f.home_day == day}

    def manifest(self) -> pd.DataFrame:
        """Every raw file with its size, modification time, content hash (SHA-256) and days."""
        rows = [{"path": p, "bytes": f.size,
                 "modified": pd.Timestamp(f.mtime_ns, unit="ns", tz="UTC"), "sha256": f.sha256,
                 "days": ",".join(f.days)} for p, f in sorted(self.files.items())]
        return pd.DataFrame(rows, columns=["path", "bytes", "modified", "sha256", "days"])

    def rejected(self) -> dict[str, FileDays]:
        return {p: f for p, f in self.files.items() if f.rejected}


def parse_timestamps(text: pd.Series) -> pd.Series:
    """Raw timestamps as UTC (naive means UTC); what does not parse is NaT (the cleaning
    reports it with the row)."""
    return as_utc(text)[0]


def read_file_days(snapshot: Snapshot, name: str, timezone: str, limits: IngestConfig
                   ) -> tuple[list[str], str, int]:
    """(days, rejection reason, rows) of one raw file's snapshot."""
    try:
        text, rows = raw_timestamps(snapshot.data, name, limits)
    except FileRejected as exc:
        return [], str(exc), exc.rows
    stamps = parse_timestamps(text)
    days = sorted(local_days(stamps.dropna(), timezone).unique().tolist())
    if days:
        return days, "", rows
    try:  # no usable timestamp: the full reader may say more precisely why (e.g. a limit)
        parse_raw(snapshot.data, name, limits)
    except FileRejected as exc:
        return [], str(exc), exc.rows or rows
    return [], "no valid timestamp in the file", rows


def _index_file(path: Path, raw_dir: Path, known: FileDays | None, timezone: str,
                limits: IngestConfig) -> FileDays:
    """What the index knows of one raw file now (FileChanged when it changed while read)."""
    info = path.stat()
    if known and (known.size, known.mtime_ns) == (info.st_size, info.st_mtime_ns):
        return known
    if info.st_size > limits.max_file_bytes:
        reason = str(over_bytes(f"{info.st_size:,} bytes", limits.max_file_bytes))
        return FileDays(info.st_size, info.st_mtime_ns, unread_token(info.st_size, info.st_mtime_ns),
                        [], reason, 0)
    try:
        snapshot = take_snapshot(path, raw_dir, limits)
    except FileRejected as exc:  # cannot be opened, or not what the survey saw
        return FileDays(info.st_size, info.st_mtime_ns, unread_token(info.st_size, info.st_mtime_ns),
                        [], str(exc), exc.rows)
    if known and known.sha256 == snapshot.sha256:
        return FileDays(snapshot.size, snapshot.mtime_ns, snapshot.sha256, known.days,
                        known.rejected, known.rows)
    days, rejected, rows = read_file_days(snapshot, path.name, timezone, limits)
    return FileDays(snapshot.size, snapshot.mtime_ns, snapshot.sha256, days, rejected, rows)


def refresh_index(raw_dir: Path, index: RawIndex, progress: Progress | None = None,
                  limits: IngestConfig | None = None) -> tuple[RawIndex, list[str]]:
    """The index of the raw folder now, reading only new or changed files (all of them when the
    limits differ from those the index was read with), and the paths whose content (or whose
    rejection) is new, changed or gone. A file that changes while it is read keeps what the
    index knew of it and is listed in `skipped`."""
    limits = limits or IngestConfig()
    same_limits = index.limits == asdict(limits)
    folder = survey_raw_folder(raw_dir)
    files = {rel: FileDays(0, 0, "", [], reason, 0) for rel, reason in folder.refused.items()}
    skipped = {}
    for path in folder.files:
        advance(progress)
        rel = path.relative_to(raw_dir).as_posix()
        known = index.files.get(rel)
        try:
            files[rel] = _index_file(path, raw_dir, known if same_limits else None,
                                     index.timezone, limits)
        except FileChanged as exc:
            skipped[rel] = f"{exc}: skipped; read again at the next tick"
            if known:
                files[rel] = known
    changed = [rel for rel, now in files.items() if rel not in index.files
               or (index.files[rel].sha256, index.files[rel].rejected) != (now.sha256, now.rejected)]
    changed += sorted(set(index.files) - set(files))
    return RawIndex(index.timezone, files, asdict(limits), skipped), sorted(changed)


def update_stored_index(warehouse: Path, raw_dir: Path, timezone: str,
                        progress: Progress | None = None, limits: IngestConfig | None = None
                        ) -> tuple[RawIndex, RawIndex]:
    """The index stored under the warehouse before and after refreshing it against raw_dir;
    the refreshed one is saved."""
    path = Path(warehouse) / INDEX_FILE
    before = RawIndex.load(path, timezone)
    after, _ = refresh_index(raw_dir, before, progress, limits)
    after.save(path)
    return before, after


def affected_days(before: RawIndex, after: RawIndex, changed: list[str]) -> list[str]:
    """The days whose rows the changed files touched, before or after the change."""
    days: set[str] = set()
    for path in changed:
        for index in (before, after):
            if path in index.files:
                days.update(index.files[path].days)
    return sorted(days)


def neighbour_day(day: str, offset: int) -> str:
    """The day `offset` days from `day` (YYYY-MM-DD)."""
    return (pd.Timestamp(day) + pd.Timedelta(days=offset)).strftime("%Y-%m-%d")


def restrict_to_day(raw: RawLogs, day: str, timezone: str, home_files: set[str]) -> RawLogs:
    """The rows of one fab-local day out of the rows read from the files that cover it, plus
    (on a file's home day) its rows without a valid timestamp and its unreadable rows; each
    file's rows_read counts only the rows kept."""
    frame = raw.frame
    stamps = parse_timestamps(frame["timestamp"]) if len(frame) else pd.Series(dtype="datetime64[ns, UTC]")
    on_day = (local_days(stamps, timezone) == day).to_numpy(bool)
    homeless = stamps.isna().to_numpy() & frame[SOURCE_FILE].isin(home_files).to_numpy()
    kept = frame[on_day | homeless].reset_index(drop=True)
    unreadable = raw.unreadable_rows[raw.unreadable_rows[SOURCE_FILE].isin(home_files)]
    rows = kept[SOURCE_FILE].value_counts()
    bad = unreadable[SOURCE_FILE].value_counts()
    files = []
    for result in raw.files:
        if result.rejected:  # changed since the index was read: reported here, not lost
            files.append(result)
            continue
        files.append(FileResult(path=result.path, status=result.status,
                                rows_read=int(rows.get(result.path, 0) + bad.get(result.path, 0)),
                                reasons=list(result.reasons)))
    return RawLogs(frame=kept, files=files, unreadable_rows=unreadable.reset_index(drop=True),
                   junk=raw.junk, skipped=raw.skipped)


QUARANTINED_NOTE = re.compile(r"^\d+ row\(s\) quarantined$")
COUNTS = ("rows_read", "rows_clean", "rows_quarantined", "rows_duplicate", "duplicate_conflicts",
          "rows_filled", "minutes_missing")


def merge_quality(day_docs: list[dict], rejected: dict[str, FileDays],
                  skipped: dict[str, str] | None = None) -> dict:
    """The whole-history data_quality.json from the reports of every day and the files that
    cover no day: counts add up, each file appears once with its totals; the files skipped
    unread (by a day's cleaning or by the index) are listed with why."""
    merged: dict = {k: sum(int(d[k]) for d in day_docs) for k in COUNTS}
    merged["lines"] = sorted({line for d in day_docs for line in d["lines"]})
    files: dict[str, dict] = {}
    for doc in day_docs:
        for entry in doc["files"]:
            into = files.setdefault(entry["path"], {"path": entry["path"], "rows_read": 0,
                                                    "rows_quarantined": 0, "rows_duplicate": 0,
                                                    "reasons": []})
            for k in ("rows_read", "rows_quarantined", "rows_duplicate"):
                into[k] += int(entry[k])
            into["reasons"] += [r for r in entry["reasons"]
                                if not QUARANTINED_NOTE.match(r) and r not in into["reasons"]]
    for entry in files.values():
        q = entry["rows_quarantined"]
        entry["status"] = "ok" if not q else "partial" if q < entry["rows_read"] else "quarantined"
        entry["reasons"] += [f"{q} row(s) quarantined"] if q else []
    for path, known in rejected.items():
        files[path] = {"path": path, "status": "quarantined", "rows_read": known.rows,
                       "rows_quarantined": known.rows, "rows_duplicate": 0,
                       "reasons": [known.rejected]}
        merged["rows_read"] += known.rows
        merged["rows_quarantined"] += known.rows
    keys = ("path", "status", "rows_read", "rows_quarantined", "rows_duplicate", "reasons")
    merged["files"] = [{k: files[p][k] for k in keys} for p in sorted(files)]
    unread = dict(skipped or {})
    for doc in day_docs:
        unread.update({e["path"]: e["reason"] for e in doc.get("skipped", []) if e["path"] not in unread})
    merged["skipped"] = [{"path": p, "reason": why} for p, why in sorted(unread.items())]
    return merged


def clean_day(raw_dir: Path, index: RawIndex, day: str, max_fill_gap: int,
              limits: IngestConfig | None = None) -> CleanResult:
    """Read the files that cover a day and clean that day's rows (see restrict_to_day); a file
    whose bytes no longer have the hash the index recorded is skipped, with the reason."""
    paths = index.files_for(day)
    raw = read_raw_files(raw_dir, [raw_dir / p for p in paths], limits=limits,
                         expected={p: index.files[p].sha256 for p in paths})
    return clean_raw_logs(restrict_to_day(raw, day, index.timezone, index.home_files(day)),
                          max_fill_gap)


DAY_PARTS = "date="  # per-day reports and quarantine: <folder>/date=YYYY-MM-DD/


def write_day_quality(result: CleanResult | None, day: str, reports: Path, quarantine: Path
                      ) -> None:
    """Keep a day's quality report and quarantined rows (or drop them: None, no file covers it)."""
    doc = reports / "data_quality" / f"{DAY_PARTS}{day}.json"
    rows = quarantine / f"{DAY_PARTS}{day}"
    if result is None:
        doc.unlink(missing_ok=True)
        shutil.rmtree(rows, ignore_errors=True)
        return
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(json.dumps(result.quality))
    write_quarantine(result, [], rows)


def _has_rows(path: Path) -> bool:
    """Whether a CSV holds a row below its header."""
    with path.open("rb") as file:
        file.readline()
        return bool(file.readline().strip())


def publish_quality(index: RawIndex, reports: Path, quarantine: Path) -> dict:
    """data_quality.json and quarantine/{files,rows,duplicate_conflicts}.csv for the whole
    history, merged from the days' parts (only the parts are rewritten by a day's run)."""
    docs = [json.loads(p.read_text())
            for p in sorted((reports / "data_quality").glob(f"{DAY_PARTS}*.json"))]
    merged = merge_quality(docs, index.rejected(), index.skipped)
    quarantine.mkdir(parents=True, exist_ok=True)
    rejected = pd.DataFrame([{"path": p, "rows": f.rows, "reason": f.rejected}
                             for p, f in sorted(index.rejected().items())],
                            columns=["path", "rows", "reason"])
    parts = {"files.csv": [rejected]}
    for name in ("rows.csv", "duplicate_conflicts.csv"):
        found = sorted(quarantine.glob(f"{DAY_PARTS}*/{name}"))
        # most days quarantine nothing: only the parts with rows are parsed
        frames = [pd.read_csv(p, dtype=str, keep_default_na=False)
                  for p in [p for p in found if _has_rows(p)] or found[:1]]
        parts[name] = frames or [pd.DataFrame()]
    for name, frames in parts.items():
        tmp = quarantine / f".{name}.tmp"
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
        tmp.replace(quarantine / name)
    return merged
