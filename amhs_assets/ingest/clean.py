"""Cleaning of the raw rows: typing, validation, quarantine, de-duplication and the minute grid.

Pure functions, no Dagster; the rows come from ingest.read_raw_files. clean_raw_logs types every
column, applies the contract's pandera checks (vectorized, column by column), quarantines each
failing row with all its reasons, drops
duplicates, regularizes what is left to a one-minute grid per line and writes the accounting
(data_quality.json) in which every row read is clean, quarantined or a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from amhs_assets.ingest.files import SOURCE_FILE, SOURCE_ROW, FileResult, RawLogs
from amhs_assets.ingest.values import as_numbers, as_text, as_utc


def _parse_failures(text: pd.Series, bad: pd.Series, name: str) -> pd.DataFrame:
    """(pos, field, reason) of the cells of one column that did not parse."""
    what = "not an ISO 8601 timestamp" if name == "timestamp" else "not a number"
    raw = text[bad].astype(str)
    return pd.DataFrame({"pos": np.flatnonzero(bad.to_numpy()), "field": name,
                         "reason": f"{name}: {what}: " + raw.map(repr).to_numpy()})


def type_columns(text: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Contract columns typed (numbers float64, UTC timestamps); parse failures as (pos, reason)."""
    typed: dict[str, pd.Series] = {}
    failures = []
    for name in RAW_COLUMNS:
        if name == "line_id":
            ids = text[name].astype("string").str.strip()
            typed[name] = ids.astype(object).where(ids.notna(), None)
            continue
        values, bad = (as_utc if name == "timestamp" else as_numbers)(text[name])
        typed[name] = values
        if bad.any():
            failures.append(_parse_failures(text[name], bad, name))
    frame = pd.DataFrame(typed, index=text.index)
    return frame, _concat_failures(failures)


def _concat_failures(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Failures as one frame of (pos, field, reason)."""
    if not parts:
        return pd.DataFrame({"pos": pd.Series(dtype="int64"), "field": pd.Series(dtype=object),
                             "reason": pd.Series(dtype=object)})
    return pd.concat(parts, ignore_index=True)


def _shown(values: pd.Series) -> pd.Series:
    """Failing values as they read in a message: 'empty', 7, 140.5, 'text', a timestamp."""
    if pd.api.types.is_float_dtype(values):
        return as_text(values).fillna("empty").astype(object)
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype(str).astype(object)
    return values.map(lambda v: repr(v) if isinstance(v, str) else str(v))


def _passed(check: pa.Check, values: pd.Series | pd.DataFrame) -> np.ndarray:
    """Where a pandera check of the contract passes, element by element (or row by row)."""
    output = check(values).check_output
    return np.broadcast_to(np.asarray(output, dtype=bool), (len(values),))


def schema_failures(typed: pd.DataFrame) -> pd.DataFrame:
    """Every failure of the contract's rules over the typed frame as (pos, field, reason), one per
    row and rule. The rules are the pandera schema's checks, applied here column by column (and
    row-wise for the cross-column rules) rather than through a lazy validation, whose collection
    of failure cases costs minutes and gigabytes when most rows fail."""
    frame = typed.reset_index(drop=True)
    schema = raw_schema()
    parts = []
    for name, column in schema.columns.items():
        values = frame[name]
        missing = values.isna().to_numpy()
        if not column.nullable and missing.any():
            parts.append(pd.DataFrame({"pos": np.flatnonzero(missing), "field": name,
                                       "reason": f"{name}: missing value"}))
        present = values[~missing]
        for check in column.checks:  # checks ignore missing values, as pandera's do
            failed = present[~_passed(check, present)]
            if len(failed):
                parts.append(pd.DataFrame({
                    "pos": failed.index.to_numpy(), "field": name,
                    "reason": (f"{name}: {check.error} (value " + _shown(failed) + ")").to_numpy()}))
    fields_of = {name: fields for name, fields, _ in CROSS_COLUMN_RULES}
    empty_rows = frame.isna().all(axis=1).to_numpy()
    for check in schema.checks:
        pos = np.flatnonzero(~_passed(check, frame) & ~empty_rows)
        if not len(pos):
            continue
        fields = fields_of.get(check.error, ())
        shown = frame.iloc[pos]
        detail = pd.Series(f"rule broken: {check.error} (", index=shown.index, dtype=object)
        for i, name in enumerate(fields):
            detail = detail + (", " if i else "") + f"{name}=" + _shown(shown[name])
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
        return empty_cleaned()
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


def empty_cleaned() -> pd.DataFrame:
    """A cleaned frame with no rows and the right columns and types."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in NUMERIC_COLUMNS})
    frame.insert(0, "timestamp", pd.Series(dtype="datetime64[ns, UTC]"))
    frame.insert(0, "line_id", pd.Series(dtype=object))
    frame[FLAG_FILLED] = pd.Series(dtype=bool)
    frame[FLAG_MISSING] = pd.Series(dtype=bool)
    return frame


@dataclass
class CleanResult:
    """The cleaned grid and the accounting of every row read."""

    cleaned: pd.DataFrame
    quarantined: pd.DataFrame  # SOURCE_FILE, SOURCE_ROW, reasons, then the row as read
    duplicates: pd.DataFrame  # the dropped copies, with conflict flag and kept_file
    quality: dict


def _reasons_per_row(parse: pd.DataFrame, checks: pd.DataFrame) -> pd.Series:
    """All reasons of each failing row, joined, indexed by position (parse failures first); a
    parse failure of a field hides the same field's 'missing value' failure (it is one problem,
    reported once)."""
    if len(parse) and len(checks):
        parsed = pd.MultiIndex.from_arrays([parse["pos"], parse["field"]])
        echo = checks["reason"].str.endswith(": missing value").to_numpy(bool) & pd.MultiIndex.from_arrays(
            [checks["pos"], checks["field"]]).isin(parsed)
        checks = checks[~echo]
    failures = pd.concat([parse, checks], ignore_index=True).drop_duplicates(["pos", "field", "reason"])
    failures = failures.sort_values("pos", kind="stable")
    pos = failures["pos"].to_numpy(dtype="int64")
    reasons = failures["reason"].tolist()
    starts = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]]) if len(pos) else np.array([], int)
    ends = np.r_[starts[1:], len(pos)]
    return pd.Series(["; ".join(reasons[a:b]) for a, b in zip(starts, ends)],
                     index=pd.Index(pos[starts], dtype="int64"), dtype=object)


def _junk_failures(raw: RawLogs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cells the reader found not to be numbers as (pos, field, reason) over raw.frame, and
    as (pos, field, text) to put back into the quarantine record."""
    where = pd.MultiIndex.from_frame(raw.frame[[SOURCE_FILE, SOURCE_ROW]].astype(
        {SOURCE_ROW: "int64"}))
    junk = raw.junk
    pos = where.get_indexer(pd.MultiIndex.from_arrays(
        [junk[SOURCE_FILE], junk[SOURCE_ROW].astype("int64")])) if len(junk) else np.array([], int)
    junk = junk.assign(pos=pos)[pos >= 0]
    failures = pd.DataFrame({"pos": junk["pos"].to_numpy(dtype="int64"), "field": junk["field"].to_numpy(),
                             "reason": (junk["field"] + ": not a number: "
                                        + junk["text"].map(repr)).to_numpy(dtype=object)})
    return failures, junk[["pos", "field", "text"]]


def _as_read(raw: RawLogs, bad: np.ndarray, junk: pd.DataFrame) -> pd.DataFrame:
    """The quarantined rows' contract columns as text, as read (the reader's non-numbers back in
    their cells)."""
    rows = raw.frame[list(RAW_COLUMNS)][bad].reset_index(drop=True)
    text = pd.DataFrame({name: as_text(rows[name]) for name in RAW_COLUMNS})
    if len(junk):
        row_of = np.cumsum(bad) - 1  # position in the frame -> row of the quarantine record
        for name, cells in junk.groupby("field"):
            text.loc[row_of[cells["pos"].to_numpy()], name] = cells["text"].to_numpy()
    return text


def clean_raw_logs(raw: RawLogs, max_fill_gap: int) -> CleanResult:
    """Validate, quarantine, de-duplicate and regularize the raw rows; account for every row."""
    typed, parse_failures = type_columns(raw.frame)
    typed = typed.reset_index(drop=True)
    junk_failures, junk = _junk_failures(raw)
    parse = pd.concat([parse_failures, junk_failures], ignore_index=True)
    reasons = _reasons_per_row(parse, schema_failures(typed))
    bad = np.zeros(len(typed), dtype=bool)
    bad[reasons.index.to_numpy(dtype="int64")] = True
    source = raw.frame[[SOURCE_FILE, SOURCE_ROW]].reset_index(drop=True)
    quarantined = pd.concat(
        [source[bad].reset_index(drop=True),
         pd.DataFrame({"reasons": reasons.to_numpy()}),
         _as_read(raw, bad, junk)],
        axis=1,
    )
    unreadable = raw.unreadable_rows.rename(columns={"reason": "reasons"})
    quarantined = pd.concat([quarantined, unreadable], ignore_index=True)
    valid = pd.concat([typed[~bad].reset_index(drop=True), source[~bad].reset_index(drop=True)],
                      axis=1)
    kept, duplicates = drop_duplicates(valid)
    cleaned = regularize(kept.drop(columns=[SOURCE_FILE, SOURCE_ROW]), max_fill_gap)
    quality = quality_report(raw.files, quarantined, duplicates, kept, cleaned, raw.skipped)
    return CleanResult(cleaned=cleaned, quarantined=quarantined, duplicates=duplicates,
                       quality=quality)


def quality_report(files: list[FileResult], quarantined: pd.DataFrame, duplicates: pd.DataFrame,
                   kept: pd.DataFrame, cleaned: pd.DataFrame,
                   skipped: dict[str, str] | None = None) -> dict:
    """The data_quality.json document (SPEC section 1) with per-file statuses, and the files
    skipped unread (changed while read) with why."""
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
        "rows_clean": len(kept),
        "rows_quarantined": int(len(quarantined) + whole),
        "rows_duplicate": len(duplicates),
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
        "skipped": [{"path": p, "reason": why} for p, why in sorted((skipped or {}).items())],
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


def stitch_days(days: list[pd.DataFrame], max_fill_gap: int) -> pd.DataFrame:
    """Consecutive days of the cleaned grid as one grid, exactly as if they had been cleaned
    together: each day's grid ends at its lines' last reading, so a gap across midnight is
    regridded here (filled and flagged when short, missing when long); fills inside a day keep
    their flag."""
    frame = pd.concat([d for d in days if len(d)], ignore_index=True) if any(
        len(d) for d in days) else empty_cleaned()
    if frame.empty:
        return frame
    frame = frame.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)
    present = frame[~frame[FLAG_MISSING].to_numpy(bool)]
    grid = regularize(present.drop(columns=[FLAG_FILLED, FLAG_MISSING]), max_fill_gap)
    filled_before = pd.MultiIndex.from_frame(present.loc[present[FLAG_FILLED], list(KEY_COLUMNS)])
    grid[FLAG_FILLED] |= pd.MultiIndex.from_frame(grid[list(KEY_COLUMNS)]).isin(filled_before)
    return grid
