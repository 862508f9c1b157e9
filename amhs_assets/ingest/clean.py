"""Cleaning of the raw rows: typing, validation, quarantine, de-duplication and the minute grid.

Pure functions, no Dagster; the rows come from ingest.read_raw_files. clean_raw_logs types every
column, runs one pandera pass, quarantines each failing row with all its reasons, drops
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
from amhs_assets.ingest.files import NA_TOKENS, SOURCE_FILE, SOURCE_ROW, FileResult, RawLogs


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


def as_utc(column: pd.Series) -> tuple[pd.Series, pd.Series]:
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
        values, bad = (as_utc if name == "timestamp" else _as_numbers)(text[name])
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
