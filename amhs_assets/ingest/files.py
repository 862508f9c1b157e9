"""Raw-log ingestion: read every raw file, validate each row, quarantine what breaks the contract.

Pure functions, no Dagster. The flow (SPEC section 1):

    discover_raw_files -> read_raw_file (per file; whole-file quarantine on parse failure or
    missing columns) -> validate_rows (one pandera pass over all rows; row-level quarantine with
    every reason) -> drop_duplicates (identical dropped, conflicts keep the path that sorts last)
    -> regularize (one-minute grid per line, short gaps filled and flagged)

Nothing is lost: every row read ends up clean, quarantined or counted as a duplicate, and
``rows_read = rows_clean + rows_quarantined + rows_duplicate`` holds for every run.

Here: the files (discovery, reading, column check, RawLogs, content hashes and the manifest);
the rows (typing, validation, quarantine, de-duplication, the grid, the quality report) are
cleaned in ingest_clean.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from amhs_assets.contract import RAW_COLUMNS
from amhs_assets.progress import Progress, advance

RAW_SUFFIXES = (".csv", ".csv.gz", ".parquet")
SOURCE_FILE = "_source_file"  # bookkeeping columns carried next to the contract's columns
NA_TOKENS = ["", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "none"]
SOURCE_ROW = "_source_row"  # 1-based data row within its file (the header is not a row)


@dataclass
class FileResult:
    """What happened to one raw file."""

    path: str
    status: str = "ok"  # ok | partial | quarantined
    rows_read: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    reasons: list[str] = field(default_factory=list)
    rejected: bool = False  # quarantined whole: unreadable or missing columns


class FileRejected(Exception):
    """A raw file that cannot be used at all; the message says why."""

    def __init__(self, reason: str, rows: int = 0):
        super().__init__(reason)
        self.rows = rows


def discover_raw_files(raw_dir: Path) -> list[Path]:
    """Every raw file under raw_dir, sorted by path relative to it."""
    if not raw_dir.exists():
        return []
    found = [p for p in raw_dir.rglob("*") if p.is_file() and p.name.lower().endswith(RAW_SUFFIXES)]
    return sorted(found, key=lambda p: p.relative_to(raw_dir).as_posix())


def _read_csv_strict(path: Path) -> pd.DataFrame:
    """Fast path: pandas' C parser; numbers inferred, a column with any junk stays text."""
    return pd.read_csv(
        path,
        dtype={"line_id": str, "timestamp": str},
        na_values=NA_TOKENS,
        keep_default_na=False,
        encoding="utf-8-sig",
        skipinitialspace=True,
        low_memory=False,
    )


def _read_csv_tolerant(path: Path) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Slow path for ragged files: keep well-formed rows, return the others with a reason."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, skipinitialspace=True))
    if not rows:
        raise FileRejected("empty file: no header row")
    header, body = rows[0], rows[1:]
    good, bad = [], []
    for number, row in enumerate(body, start=1):
        if len(row) == len(header):
            good.append(row)
        elif not any(cell.strip() for cell in row):
            continue  # blank line
        else:
            bad.append((number, f"malformed row: expected {len(header)} fields, found {len(row)}"))
            good.append(None)
    kept = [(i + 1, r) for i, r in enumerate(good) if r is not None]
    frame = pd.DataFrame([r for _, r in kept], columns=header, dtype=str)
    frame.index = pd.Index([i for i, _ in kept])
    return frame, bad


def read_raw_file(path: Path) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """One raw file as text columns indexed by 1-based data row, plus rows unreadable as rows."""
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            frame = pd.read_parquet(path)
            frame.index = pd.RangeIndex(1, len(frame) + 1)
            return frame, []
        if path.stat().st_size == 0:
            raise FileRejected("empty file: no header row")
        try:
            frame = _read_csv_strict(path)
            frame.index = pd.RangeIndex(1, len(frame) + 1)
            return frame, []
        except pd.errors.ParserError:
            return _read_csv_tolerant(path)
    except FileRejected:
        raise
    except pd.errors.EmptyDataError:
        raise FileRejected("empty file: no header row") from None
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except Exception as exc:  # any other parse failure quarantines the file, never the run
        raise FileRejected(f"cannot be parsed: {type(exc).__name__}: {exc}") from None


def check_columns(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Contract columns in order (names stripped); extra columns dropped and reported."""
    frame = frame.rename(columns=lambda c: str(c).strip())
    missing = [c for c in RAW_COLUMNS if c not in frame.columns]
    if missing:
        raise FileRejected(f"missing required column(s): {', '.join(missing)}", rows=len(frame))
    notes = []
    extra = [c for c in frame.columns if c not in RAW_COLUMNS]
    if extra:
        notes.append(f"ignored extra column(s): {', '.join(extra)}")
    return frame[list(RAW_COLUMNS)], notes


@dataclass
class RawLogs:
    """Every row read from the raw files, as read, with its source file and row number."""

    frame: pd.DataFrame  # contract columns as read + SOURCE_FILE + SOURCE_ROW
    files: list[FileResult]
    unreadable_rows: pd.DataFrame  # SOURCE_FILE, SOURCE_ROW, reason: ragged rows



def read_raw_files(raw_dir: Path, paths: list[Path] | None = None,
                   progress: Progress | None = None) -> RawLogs:
    """Read every raw file; a file that cannot be used is quarantined whole, the others go on."""
    frames, files, unreadable = [], [], []
    for path in discover_raw_files(raw_dir) if paths is None else paths:
        result = FileResult(path=path.relative_to(raw_dir).as_posix())
        files.append(result)
        advance(progress)
        try:
            frame, bad_rows = read_raw_file(path)
            frame, notes = check_columns(frame)
        except FileRejected as exc:
            result.status, result.rejected = "quarantined", True
            result.rows_read = result.rows_quarantined = exc.rows
            result.reasons.append(str(exc))
            continue
        result.reasons.extend(notes)
        result.rows_read = len(frame) + len(bad_rows)
        frame = frame.assign(**{SOURCE_FILE: result.path, SOURCE_ROW: frame.index.to_numpy()})
        frames.append(frame.reset_index(drop=True))
        for row, reason in bad_rows:
            unreadable.append({SOURCE_FILE: result.path, SOURCE_ROW: row, "reason": reason})
    columns = [*RAW_COLUMNS, SOURCE_FILE, SOURCE_ROW]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    unreadable_frame = pd.DataFrame(unreadable, columns=[SOURCE_FILE, SOURCE_ROW, "reason"])
    return RawLogs(frame=frame, files=files, unreadable_rows=unreadable_frame)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_fingerprint(hashes: dict[str, str]) -> str:
    """One hash over every (relative path, content hash) pair: changes whenever the data does."""
    text = "\n".join(f"{p}\t{h}" for p, h in sorted(hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_fingerprint(manifest: pd.DataFrame) -> str:
    """The folder fingerprint of a manifest."""
    return folder_fingerprint(dict(zip(manifest["path"], manifest["sha256"])))
