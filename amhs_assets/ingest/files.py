"""Raw-log ingestion: read every raw file, validate each row, quarantine what breaks the contract.

Pure functions, no Dagster. The flow (SPEC section 1):

    discover_raw_files -> take_snapshot (per file: its bytes read once and hashed; refused
    outside the raw folder or over ingest.max_file_bytes, skipped when it changed while read)
    -> parse_raw (chunk by chunk; whole-file quarantine on parse failure, missing columns or a
    limit) -> validate_rows (typing and the contract's rules; row-level quarantine with every
    reason) -> drop_duplicates (identical dropped, conflicts keep the path that sorts last)
    -> regularize (one-minute grid per line, short gaps filled and flagged)

Nothing is lost: every row read ends up clean, quarantined or counted as a duplicate, and
``rows_read = rows_clean + rows_quarantined + rows_duplicate`` holds for every run.

Here: the files (discovery, reading, RawLogs and the fingerprints); the bytes in snapshot, the
parsing in parse, the rows (typing, validation, quarantine, de-duplication, the grid, the quality
report) in clean.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from amhs_assets.contract import RAW_COLUMNS
from amhs_assets.ingest.limits import FileChanged, FileRejected, IngestConfig
from amhs_assets.ingest.parse import SOURCE_FILE, SOURCE_ROW, junk_frame, parse_raw
from amhs_assets.ingest.snapshot import survey_raw_folder, take_snapshot
from amhs_assets.progress import Progress, advance

__all__ = ["SOURCE_FILE", "SOURCE_ROW", "FileRejected", "FileResult", "RawLogs", "discover_raw_files",
           "read_raw_files", "folder_fingerprint", "manifest_fingerprint"]

CHANGED_SINCE_INDEXED = ("changed since the raw index hashed it: skipped, so that what is cleaned "
                         "is what the index recorded; read again at the next tick")


@dataclass
class FileResult:
    """What happened to one raw file."""

    path: str
    status: str = "ok"  # ok | partial | quarantined
    rows_read: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    reasons: list[str] = field(default_factory=list)
    rejected: bool = False  # quarantined whole: unreadable, missing columns, over a limit


def discover_raw_files(raw_dir: Path) -> list[Path]:
    """Every raw file under raw_dir, sorted by path relative to it; symbolic links out of the
    folder are left out (survey_raw_folder says why)."""
    return survey_raw_folder(raw_dir).files


@dataclass
class RawLogs:
    """Every row read from the raw files, as read, with its source file and row number."""

    frame: pd.DataFrame  # contract columns (numbers float64) + SOURCE_FILE + SOURCE_ROW
    files: list[FileResult]
    unreadable_rows: pd.DataFrame  # SOURCE_FILE, SOURCE_ROW, reason: ragged rows
    junk: pd.DataFrame = field(default_factory=lambda: junk_frame([]).assign(**{SOURCE_FILE: ""}))
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it was not read


def _reject(result: FileResult, exc: FileRejected) -> None:
    result.status, result.rejected = "quarantined", True
    result.rows_read = result.rows_quarantined = exc.rows
    result.reasons.append(str(exc))


def read_raw_files(raw_dir: Path, paths: list[Path] | None = None,
                   progress: Progress | None = None, limits: IngestConfig | None = None,
                   expected: dict[str, str] | None = None) -> RawLogs:
    """Read every raw file once (a snapshot); a file that cannot be used is quarantined whole, the
    others go on. A file that changed while it was read, or whose content hash differs from
    `expected` (relative path -> SHA-256, the raw index's), is skipped with the reason."""
    limits = limits or IngestConfig()
    frames, files, unreadable, junk, skipped = [], [], [], [], {}
    for path in discover_raw_files(raw_dir) if paths is None else paths:
        rel = path.relative_to(raw_dir).as_posix()
        advance(progress)
        try:
            snapshot = take_snapshot(path, raw_dir, limits)
        except FileChanged as exc:
            skipped[rel] = f"{exc}: skipped; read again at the next tick"
            continue
        except FileRejected as exc:
            files.append(result := FileResult(path=rel))
            _reject(result, exc)
            continue
        if expected is not None and expected.get(rel, snapshot.sha256) != snapshot.sha256:
            skipped[rel] = CHANGED_SINCE_INDEXED
            continue
        files.append(result := FileResult(path=rel))
        try:
            parsed = parse_raw(snapshot.data, path.name, limits)
        except FileRejected as exc:
            _reject(result, exc)
            continue
        del snapshot
        result.reasons.extend(parsed.notes)
        result.rows_read = len(parsed.frame) + len(parsed.unreadable)
        frame = parsed.frame.assign(**{SOURCE_FILE: rel, SOURCE_ROW: parsed.frame.index.to_numpy()})
        frames.append(frame.reset_index(drop=True))
        junk.append(parsed.junk.assign(**{SOURCE_FILE: rel}))
        unreadable += [{SOURCE_FILE: rel, SOURCE_ROW: row, "reason": reason}
                       for row, reason in parsed.unreadable]
    columns = [*RAW_COLUMNS, SOURCE_FILE, SOURCE_ROW]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    unreadable_frame = pd.DataFrame(unreadable, columns=[SOURCE_FILE, SOURCE_ROW, "reason"])
    junk_all = pd.concat(junk, ignore_index=True) if junk else junk_frame([]).assign(
        **{SOURCE_FILE: ""})
    return RawLogs(frame=frame, files=files, unreadable_rows=unreadable_frame, junk=junk_all,
                   skipped=skipped)


def folder_fingerprint(hashes: dict[str, str]) -> str:
    """One hash over every (relative path, content hash) pair: changes whenever the data does."""
    text = "\n".join(f"{p}\t{h}" for p, h in sorted(hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_fingerprint(manifest: pd.DataFrame) -> str:
    """The folder fingerprint of a manifest (entries refused unread, without a hash, left out:
    the raw-data sensor never sees them)."""
    read = manifest[manifest["sha256"] != ""]
    return folder_fingerprint(dict(zip(read["path"], read["sha256"])))
