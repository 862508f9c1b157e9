"""Raw-log ingestion: read every raw file, validate each row, quarantine what breaks the contract.

Pure functions, no Dagster. The flow (SPEC section 1):

    discover_raw_files -> read_raw_file (per file; whole-file quarantine on parse failure or
    missing columns) -> validate_rows (one pandera pass over all rows; row-level quarantine with
    every reason) -> drop_duplicates (identical dropped, conflicts keep the path that sorts last)
    -> regularize (one-minute grid per line, short gaps filled and flagged)

Nothing is lost: every row read ends up clean, quarantined or counted as a duplicate, and
``rows_read = rows_clean + rows_quarantined + rows_duplicate`` holds for every run.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from amhs_assets.contract import (
    CROSS_COLUMN_RULES,
    FLAG_FILLED,
    FLAG_MISSING,
    KEY_COLUMNS,
    NUMERIC_COLUMNS,
    RAW_COLUMNS,
    raw_schema,
)

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


def _as_numbers(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A column as float64, and a mask of values present but not numbers."""
    if pd.api.types.is_bool_dtype(column):
        column = column.astype("object")
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64"), pd.Series(False, index=column.index)
    text = column.astype("string").str.strip()
    empty = text.isna() | text.isin(NA_TOKENS)
    numbers = pd.to_numeric(text.where(~empty), errors="coerce").astype("float64")
    return numbers, ~empty & numbers.isna()


def _as_utc(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A timestamp column as UTC (naive means UTC), and a mask of values present but unparsable."""
    if pd.api.types.is_datetime64_any_dtype(column):
        stamps = column.dt.tz_localize("UTC") if column.dt.tz is None else column.dt.tz_convert("UTC")
        return stamps.astype("datetime64[ns, UTC]"), pd.Series(False, index=column.index)
    text = column.astype("string").str.strip()
    empty = text.isna() | text.isin(NA_TOKENS)
    # pandas applies the first offset it sees to naive strings in the same call: parse the
    # naive ones (which mean UTC) apart from those that carry an offset
    aware = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).fillna(False).astype(bool)
    stamps = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    for part in (aware & ~empty, ~aware & ~empty):
        if part.any():
            stamps[part] = pd.to_datetime(text[part], format="ISO8601", utc=True, errors="coerce")
    return stamps, ~empty & stamps.isna()


def type_columns(text: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Contract columns typed (numbers float64, UTC timestamps); parse failures as (pos, reason)."""
    typed: dict[str, pd.Series] = {}
    failures = []
    for name in RAW_COLUMNS:
        if name == "line_id":
            ids = text[name].astype("string").str.strip()
            typed[name] = ids.astype(object).where(ids.notna(), None)
            continue
        values, bad = (_as_utc if name == "timestamp" else _as_numbers)(text[name])
        typed[name] = values
        if bad.any():
            what = "not an ISO 8601 timestamp" if name == "timestamp" else "not a number"
            raw = text.loc[bad, name].astype(str)
            failures.append(
                pd.DataFrame({"pos": np.flatnonzero(bad.to_numpy()), "field": name,
                              "reason": f"{name}: {what}: " + raw.map(repr).to_numpy()})
            )
    frame = pd.DataFrame(typed, index=text.index)
    return frame, _concat_failures(failures)


def _concat_failures(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Failures as one frame of (pos, field, reason)."""
    if not parts:
        return pd.DataFrame({"pos": pd.Series(dtype="int64"), "field": pd.Series(dtype=object),
                             "reason": pd.Series(dtype=object)})
    return pd.concat(parts, ignore_index=True)


def _format_value(value: object) -> str:
    """A failing value as it reads in a message."""
    if isinstance(value, float) and value != value:
        return "empty"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


def schema_failures(typed: pd.DataFrame) -> pd.DataFrame:
    """Every pandera failure of the typed frame as (pos, field, reason), one per row and rule."""
    try:
        raw_schema().validate(typed.reset_index(drop=True), lazy=True)
        return _concat_failures([])
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    cases = cases[cases["index"].notna()]
    column_cases = cases[cases["schema_context"] == "Column"]
    reasons = [
        column_cases["column"].astype(str) + ": "
        + np.where(column_cases["check"] == "not_nullable", "missing value",
                   column_cases["check"].astype(str) + " (value "
                   + column_cases["failure_case"].map(_format_value) + ")")
    ]
    parts = [pd.DataFrame({"pos": column_cases["index"].astype("int64").to_numpy(),
                           "field": column_cases["column"].astype(str).to_numpy(),
                           "reason": reasons[0].to_numpy()})]
    wide = cases[cases["schema_context"] == "DataFrameSchema"].drop_duplicates(["index", "check"])
    fields_of = {name: fields for name, fields, _ in CROSS_COLUMN_RULES}
    for check, group in wide.groupby("check"):
        pos = group["index"].astype("int64").to_numpy()
        fields = fields_of.get(check, ())
        shown = typed.iloc[pos]
        detail = pd.Series("rule broken: " + str(check) + " (", index=shown.index)
        for i, name in enumerate(fields):
            sep = ", " if i else ""
            detail = detail + f"{sep}{name}=" + shown[name].map(_format_value)
        parts.append(pd.DataFrame({"pos": pos, "field": fields[0] if fields else "",
                                   "reason": (detail + ")").to_numpy()}))
    return _concat_failures(parts)


def drop_duplicates(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per (line_id, timestamp): the copy from the path that sorts last (then the last row).

    Returns the kept rows and the dropped ones, each dropped row marked ``conflict`` when its
    values differ from the kept copy's (identical copies are plain duplicates).
    """
    ordered = valid.sort_values([*KEY_COLUMNS, SOURCE_FILE, SOURCE_ROW], kind="stable")
    ordered = ordered.reset_index(drop=True)
    dropped_mask = ordered.duplicated(list(KEY_COLUMNS), keep="last").to_numpy()
    if not dropped_mask.any():
        return ordered, ordered.iloc[:0].assign(conflict=pd.Series(dtype=bool), kept_file="")
    # the kept copy of each group is its last row: find it by a reverse running minimum
    n = len(ordered)
    position = np.arange(n)
    last_of_group = np.where(dropped_mask, n, position)
    last_of_group = np.minimum.accumulate(last_of_group[::-1])[::-1]
    kept_pos = last_of_group[dropped_mask]
    values = ordered[list(NUMERIC_COLUMNS)].to_numpy(dtype="float64")
    lost, kept = values[dropped_mask], values[kept_pos]
    same = (lost == kept) | (np.isnan(lost) & np.isnan(kept))
    dropped = ordered[dropped_mask].copy()
    dropped["conflict"] = ~same.all(axis=1)
    dropped["kept_file"] = ordered[SOURCE_FILE].to_numpy()[kept_pos]
    return ordered[~dropped_mask].reset_index(drop=True), dropped


def regularize(clean: pd.DataFrame, max_fill_gap: int) -> pd.DataFrame:
    """A regular one-minute grid per line: gaps <= max_fill_gap filled from the last row and
    flagged ``is_filled``; minutes of longer gaps flagged ``is_missing`` with every value NaN."""
    clean = clean.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)
    if clean.empty:
        return _empty_cleaned()
    minute = (clean["timestamp"].astype("int64") // 60_000_000_000).to_numpy()
    line = clean["line_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, line[1:] != line[:-1]])
    lengths = np.diff(np.r_[starts, len(clean)])
    first, last = minute[starts], minute[starts + lengths - 1]
    span = last - first + 1
    grid_start = np.r_[0, np.cumsum(span)[:-1]]
    n_grid = int(span.sum())
    obs_line = np.repeat(np.arange(len(starts)), lengths)
    obs_grid = grid_start[obs_line] + (minute - first[obs_line])
    src = np.full(n_grid, -1, dtype=np.int64)
    src[obs_grid] = np.arange(len(clean))
    is_obs = src >= 0
    grid_idx = np.arange(n_grid)
    prev_obs = np.maximum.accumulate(np.where(is_obs, grid_idx, -1))
    next_obs = np.minimum.accumulate(np.where(is_obs, grid_idx, n_grid)[::-1])[::-1]
    gap_len = next_obs - prev_obs - 1
    filled = ~is_obs & (gap_len <= max_fill_gap)
    missing = ~is_obs & ~filled
    take = np.where(is_obs, src, src[prev_obs])
    values = clean[list(NUMERIC_COLUMNS)].to_numpy(dtype="float64")[take]
    values[missing] = np.nan
    grid_line = np.repeat(np.arange(len(starts)), span)
    grid_minute = first[grid_line] + (grid_idx - grid_start[grid_line])
    out = pd.DataFrame(values, columns=list(NUMERIC_COLUMNS))
    out.insert(0, "timestamp", pd.to_datetime(grid_minute * 60, unit="s", utc=True).astype("datetime64[ns, UTC]"))
    out.insert(0, "line_id", line[starts][grid_line])
    out[FLAG_FILLED] = filled
    out[FLAG_MISSING] = missing
    return out


def _empty_cleaned() -> pd.DataFrame:
    """A cleaned frame with no rows and the right columns and types."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in NUMERIC_COLUMNS})
    frame.insert(0, "timestamp", pd.Series(dtype="datetime64[ns, UTC]"))
    frame.insert(0, "line_id", pd.Series(dtype=object))
    frame[FLAG_FILLED] = pd.Series(dtype=bool)
    frame[FLAG_MISSING] = pd.Series(dtype=bool)
    return frame


@dataclass
class RawLogs:
    """Every row read from the raw files, as read, with its source file and row number."""

    frame: pd.DataFrame  # contract columns as read + SOURCE_FILE + SOURCE_ROW
    files: list[FileResult]
    unreadable_rows: pd.DataFrame  # SOURCE_FILE, SOURCE_ROW, reason: ragged rows


@dataclass
class CleanResult:
    """The cleaned grid and the accounting of every row read."""

    cleaned: pd.DataFrame
    quarantined: pd.DataFrame  # SOURCE_FILE, SOURCE_ROW, reasons, then the row as read
    duplicates: pd.DataFrame  # the dropped copies, with conflict flag and kept_file
    quality: dict


def read_raw_files(raw_dir: Path, paths: list[Path] | None = None) -> RawLogs:
    """Read every raw file; a file that cannot be used is quarantined whole, the others go on."""
    frames, files, unreadable = [], [], []
    for path in discover_raw_files(raw_dir) if paths is None else paths:
        result = FileResult(path=path.relative_to(raw_dir).as_posix())
        files.append(result)
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


def _reasons_per_row(failures: pd.DataFrame) -> pd.Series:
    """All reasons of each failing row, joined, indexed by position; a parse failure of a field
    hides the same field's 'missing value' failure (it is one problem, reported once)."""
    failures = failures.drop_duplicates(["pos", "field", "reason"])
    parse = failures["reason"].str.contains(": not a number: |: not an ISO 8601", regex=True)
    parsed_bad = failures.loc[parse, ["pos", "field"]].assign(_parsed=True)
    marked = failures.merge(parsed_bad, on=["pos", "field"], how="left")
    echo = marked["reason"].str.endswith(": missing value") & marked["_parsed"].eq(True)
    return marked[~echo].groupby("pos", sort=True)["reason"].agg("; ".join)


def clean_raw_logs(raw: RawLogs, max_fill_gap: int) -> CleanResult:
    """Validate, quarantine, de-duplicate and regularize the raw rows; account for every row."""
    typed, parse_failures = type_columns(raw.frame)
    typed = typed.reset_index(drop=True)
    failures = pd.concat([parse_failures, schema_failures(typed)], ignore_index=True)
    reasons = _reasons_per_row(failures)
    bad = np.zeros(len(typed), dtype=bool)
    bad[reasons.index.to_numpy(dtype="int64")] = True
    source = raw.frame[[SOURCE_FILE, SOURCE_ROW]].reset_index(drop=True)
    quarantined = pd.concat(
        [source[bad].reset_index(drop=True),
         pd.DataFrame({"reasons": reasons.to_numpy()}),
         raw.frame[list(RAW_COLUMNS)][bad].reset_index(drop=True).astype("string")],
        axis=1,
    )
    unreadable = raw.unreadable_rows.rename(columns={"reason": "reasons"})
    quarantined = pd.concat([quarantined, unreadable], ignore_index=True)
    valid = pd.concat([typed[~bad].reset_index(drop=True), source[~bad].reset_index(drop=True)],
                      axis=1)
    kept, duplicates = drop_duplicates(valid)
    cleaned = regularize(kept.drop(columns=[SOURCE_FILE, SOURCE_ROW]), max_fill_gap)
    quality = quality_report(raw.files, quarantined, duplicates, kept, cleaned)
    return CleanResult(cleaned=cleaned, quarantined=quarantined, duplicates=duplicates,
                       quality=quality)


def quality_report(files: list[FileResult], quarantined: pd.DataFrame, duplicates: pd.DataFrame,
                   kept: pd.DataFrame, cleaned: pd.DataFrame) -> dict:
    """The data_quality.json document (SPEC section 1) with per-file statuses."""
    per_file_q = quarantined[SOURCE_FILE].value_counts()
    per_file_d = duplicates[SOURCE_FILE].value_counts() if len(duplicates) else pd.Series(dtype=int)
    for result in files:
        if result.rejected:
            continue
        result.rows_quarantined = int(per_file_q.get(result.path, 0))
        result.rows_duplicate = int(per_file_d.get(result.path, 0))
        if result.rows_quarantined:
            result.status = "partial" if result.rows_quarantined < result.rows_read else "quarantined"
            result.reasons.append(f"{result.rows_quarantined} row(s) quarantined")
    whole = sum(r.rows_quarantined for r in files if r.rejected)
    rows_read = sum(r.rows_read for r in files)
    return {
        "rows_read": int(rows_read),
        "rows_clean": int(len(kept)),
        "rows_quarantined": int(len(quarantined) + whole),
        "rows_duplicate": int(len(duplicates)),
        "duplicate_conflicts": int(duplicates["conflict"].sum()) if len(duplicates) else 0,
        "rows_filled": int(cleaned[FLAG_FILLED].sum()),
        "minutes_missing": int(cleaned[FLAG_MISSING].sum()),
        "lines": sorted(map(str, kept["line_id"].unique())),
        "files": [
            {"path": r.path, "status": r.status, "rows_read": r.rows_read,
             "rows_quarantined": r.rows_quarantined, "rows_duplicate": r.rows_duplicate,
             "reasons": r.reasons}
            for r in files
        ],
    }


def write_quarantine(result: CleanResult, files: list[FileResult], quarantine_dir: Path) -> None:
    """Rewrite the quarantine folder: rejected files, rejected rows and conflicting duplicates."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    rejected = pd.DataFrame(
        [{"path": f.path, "rows": f.rows_read, "reason": "; ".join(f.reasons)} for f in files
         if f.rejected], columns=["path", "rows", "reason"])
    conflicts = result.duplicates[result.duplicates["conflict"]] if len(result.duplicates) else (
        result.duplicates)
    for name, frame in (("files.csv", rejected), ("rows.csv", result.quarantined),
                        ("duplicate_conflicts.csv", conflicts)):
        tmp = quarantine_dir / f".{name}.tmp"
        frame.to_csv(tmp, index=False)
        tmp.replace(quarantine_dir / name)


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


def raw_file_manifest(raw_dir: Path) -> pd.DataFrame:
    """Every raw file with its size, modification time and content hash (SHA-256)."""
    rows = []
    for path in discover_raw_files(raw_dir):
        stat = path.stat()
        rows.append({"path": path.relative_to(raw_dir).as_posix(), "bytes": stat.st_size,
                     "modified": pd.Timestamp(stat.st_mtime_ns, unit="ns", tz="UTC"),
                     "sha256": file_sha256(path)})
    return pd.DataFrame(rows, columns=["path", "bytes", "modified", "sha256"])


def manifest_fingerprint(manifest: pd.DataFrame) -> str:
    """The folder fingerprint of a manifest."""
    return folder_fingerprint(dict(zip(manifest["path"], manifest["sha256"])))
