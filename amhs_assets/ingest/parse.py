"""One raw file's bytes as rows, parsed a chunk at a time within the ingest limits.

`parse_raw` reads the header first (a file without the contract's columns is turned away before
any row is parsed) and counts the lines (a file over ingest.max_file_rows likewise). CSV rows go
through pandas' C parser ``chunk_rows`` at a time; a file with a row of the wrong width is read
again by the tolerant reader, also chunk by chunk, which keeps the well-formed rows and lists the
others. A ``.csv.gz`` is decompressed within ingest.max_file_bytes first; a ``.parquet`` is read
in batches. Each chunk's number columns become float64 at once (a cell that is not a number is
kept aside with its text, for the reason and the quarantine record), so a file of text costs no
more memory than a file of numbers; the unusable rows are counted as they come and a file with
more than ingest.max_bad_rows is quarantined whole.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from amhs_assets.contract import COLUMNS, RAW_COLUMNS, TRANSFER_TIME_COLUMNS
from amhs_assets.ingest.limits import (
    FileRejected,
    IngestConfig,
    over_bytes,
    over_rows,
    too_many_bad_rows,
)
from amhs_assets.ingest.values import NA_TOKENS, as_numbers

SOURCE_FILE = "_source_file"  # bookkeeping columns carried next to the contract's columns
SOURCE_ROW = "_source_row"  # 1-based data row within its file (the header is not a row)
MAX_HEADER_BYTES = 64 * 1024
# the contract's number columns and their ranges, for the screening of each chunk
NUMBER_NAMES = [c.name for c in COLUMNS if c.is_numeric]
_SPECS = [c for c in COLUMNS if c.is_numeric]
LOWS = np.array([-np.inf if c.low is None else c.low for c in _SPECS])
HIGHS = np.array([np.inf if c.high is None else c.high for c in _SPECS])
WHOLE = np.array([c.kind in ("int", "flag") for c in _SPECS])
REQUIRED = np.array([c.name not in TRANSFER_TIME_COLUMNS for c in _SPECS])


@dataclass
class ParsedFile:
    """A raw file's contract columns indexed by 1-based data row (numbers float64, line_id and
    timestamp as read), its rows of the wrong width and its cells that are not numbers."""

    frame: pd.DataFrame
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # (row, reason)
    junk: pd.DataFrame = field(default_factory=lambda: junk_frame([]))  # SOURCE_ROW, field, text
    notes: list[str] = field(default_factory=list)  # e.g. the extra columns ignored


def junk_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Cells of number columns that are not numbers: row, field and the text as read."""
    if parts:
        return pd.concat(parts, ignore_index=True)
    return pd.DataFrame({SOURCE_ROW: pd.Series(dtype="int64"), "field": pd.Series(dtype=object),
                         "text": pd.Series(dtype=object)})


class _Screen:
    """Counts the rows and the unusable rows of a file as its chunks come, against the limits."""

    def __init__(self, limits: IngestConfig, lines: int):
        self.limits, self.lines = limits, lines
        self.rows = self.bad = 0
        self.first = ""

    def add(self, rows: int, bad: int, first: str) -> None:
        self.rows += rows
        if self.rows > self.limits.max_file_rows:
            raise over_rows(max(self.rows, self.lines), self.limits.max_file_rows)
        self.bad += bad
        self.first = self.first or first
        if self.bad > self.limits.max_bad_rows:
            raise too_many_bad_rows(self.bad, self.limits.max_bad_rows, self.first,
                                    max(self.rows, self.lines))


def _settle(chunk: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int, str]:
    """A chunk with its number columns as float64; its cells that are not numbers; how many of
    its rows cannot be used (a required value missing, a non-number, a value out of its range)
    and the first of them."""
    numbers = np.empty((len(chunk), len(NUMBER_NAMES)))
    junk = []
    for j, name in enumerate(NUMBER_NAMES):
        column = chunk[name]
        if column.dtype.kind in "fiu":
            numbers[:, j] = column.to_numpy(dtype="float64", na_value=np.nan)
            continue
        values, not_number = as_numbers(column)  # text: a junk cell becomes missing
        numbers[:, j] = values.to_numpy()
        odd = not_number.to_numpy()
        if odd.any():
            junk.append(pd.DataFrame({SOURCE_ROW: chunk.index[odd], "field": name,
                                      "text": column[odd].astype(str).to_numpy()}))
    with np.errstate(invalid="ignore"):
        wrong = (numbers < LOWS) | (numbers > HIGHS) | (WHOLE & (np.mod(numbers, 1) > 0)) \
            | (REQUIRED & np.isnan(numbers))
    keys = chunk[["timestamp", "line_id"]]
    bad = wrong.any(axis=1) | keys.isna().any(axis=1).to_numpy()
    settled = pd.concat([keys, pd.DataFrame(numbers, columns=NUMBER_NAMES, index=chunk.index)],
                        axis=1)[list(RAW_COLUMNS)]
    first = ""
    if bad.any():
        at = int(np.argmax(bad))
        fields = [n for n, w in zip(NUMBER_NAMES, wrong[at]) if w] or ["line_id or timestamp"]
        first = f"row {chunk.index[at]} ({', '.join(fields[:5])})"
    return settled, junk_frame(junk), int(bad.sum()), first


def _gunzip(data: bytes, limit: int) -> bytes:
    """The decompressed bytes of a gzip file (every member), refused past `limit` bytes."""
    parts, total, rest = [], 0, data
    while rest.strip(b"\x00"):
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = rest
        while not inflate.eof:
            block = inflate.decompress(pending, limit + 1 - total)
            parts.append(block)
            total += len(block)
            if total > limit:
                raise over_bytes("decompresses to more bytes", limit)
            pending = inflate.unconsumed_tail
            if not pending and not block:
                raise FileRejected("truncated gzip: the compressed stream ends early")
        rest = inflate.unused_data
    return b"".join(parts)


def _header(data: bytes) -> list[str]:
    """The column names of the first non-blank line, stripped, duplicates named as pandas does
    ('a', 'a.1')."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    body = body[len(body) - len(body.lstrip(b"\r\n")):]
    ends = [i for i in (body.find(b"\n"), body.find(b"\r")) if i >= 0]
    line = body[: min(ends)] if ends else body
    if len(line) > MAX_HEADER_BYTES:
        raise FileRejected(f"first line longer than {MAX_HEADER_BYTES:,} bytes: not a CSV header")
    names = [n.strip() for n in next(csv.reader([line.decode("utf-8")], skipinitialspace=True), [])]
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, -1) + 1
        out.append(f"{name}.{seen[name]}" if seen[name] else name)
    return out


def _check_names(names: list[str], rows: int) -> list[str]:
    """Notes on the header (extra columns); FileRejected when a contract column is missing."""
    missing = [c for c in RAW_COLUMNS if c not in names]
    if missing:
        raise FileRejected(f"missing required column(s): {', '.join(missing)}", rows=rows)
    extra = [c for c in names if c not in RAW_COLUMNS]
    return [f"ignored extra column(s): {', '.join(extra)}"] if extra else []


def _data_lines(data: bytes) -> int:
    """Lines below the header (blank ones included): the row count the limit applies to."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    return max(lines - 1, 0)


def _strict_chunks(data: bytes, names: list[str], limits: IngestConfig) -> Iterator[pd.DataFrame]:
    """CSV chunks from pandas' C parser; ParserError on a row of the wrong width."""
    reader = pd.read_csv(io.BytesIO(data), header=0, names=names, encoding="utf-8-sig",
                         dtype={"line_id": str, "timestamp": str}, na_values=NA_TOKENS,
                         keep_default_na=False, skipinitialspace=True,
                         chunksize=limits.chunk_rows)
    with reader:
        for chunk in reader:
            if not isinstance(chunk.index, pd.RangeIndex):  # every row one field too many
                raise pd.errors.ParserError("rows wider than the header")
            chunk.index = chunk.index + 1
            yield chunk


def _tolerant_chunks(data: bytes, names: list[str], limits: IngestConfig,
                     unreadable: list[tuple[int, str]]) -> Iterator[tuple[pd.DataFrame, int]]:
    """CSV chunks of the well-formed rows, with how many rows of the wrong width came with each
    (listed in `unreadable`); blank lines are skipped."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    rows = csv.reader(text, skipinitialspace=True)
    next(rows, None)
    width = len(names)
    good: list[list[str]] = []
    numbers: list[int] = []
    malformed = 0
    for number, row in enumerate(rows, start=1):
        if len(row) == width:
            good.append(row)
            numbers.append(number)
        elif any(cell.strip() for cell in row):
            unreadable.append((number, f"malformed row: expected {width} fields, found {len(row)}"))
            malformed += 1
        if len(good) >= limits.chunk_rows or malformed >= limits.chunk_rows:
            yield _text_chunk(good, numbers, names), malformed
            good, numbers, malformed = [], [], 0
    yield _text_chunk(good, numbers, names), malformed


def _text_chunk(rows: list[list[str]], numbers: list[int], names: list[str]) -> pd.DataFrame:
    """Well-formed text rows as a frame indexed by row number, missing-value words as missing."""
    chunk = pd.DataFrame(rows, columns=names, dtype=object, index=pd.Index(numbers, dtype="int64"))
    chunk = chunk[list(RAW_COLUMNS)]
    for name in ("line_id", "timestamp"):
        chunk[name] = chunk[name].where(~chunk[name].isin(NA_TOKENS))
    return chunk


def _collect(chunks: Iterator[tuple[pd.DataFrame, int]], screen: _Screen,
             unreadable: list[tuple[int, str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The settled chunks as one frame, and their cells that are not numbers."""
    frames, junk = [], []
    for chunk, malformed in chunks:
        chunk, odd, bad, first = _settle(chunk)
        if malformed and not first:
            first = f"row {unreadable[-malformed][0]} ({unreadable[-malformed][1]})"
        screen.add(len(chunk) + malformed, bad + malformed, first)
        frames.append(chunk)
        junk.append(odd)
    frame = pd.concat(frames) if frames else pd.DataFrame(columns=list(RAW_COLUMNS))
    return frame, junk_frame([j for j in junk if len(j)])


def _csv_header(data: bytes, limits: IngestConfig) -> tuple[list[str], int, list[str]]:
    """A CSV file's column names, its data line count and the notes on its header, before any
    row is parsed; FileRejected when it is empty, lacks a contract column or is over
    ingest.max_file_rows."""
    if not data.strip(b"\xef\xbb\xbf\r\n\t "):
        raise FileRejected("empty file: no header row")
    lines = _data_lines(data)
    names = _header(data)
    notes = _check_names(names, lines)
    if lines > limits.max_file_rows:
        raise over_rows(lines, limits.max_file_rows)
    return names, lines, notes


def _parse_csv(data: bytes, limits: IngestConfig) -> ParsedFile:
    """A CSV file's rows within the limits (see the module's docstring)."""
    names, lines, notes = _csv_header(data, limits)
    unreadable: list[tuple[int, str]] = []
    try:
        frame, junk = _collect(((c, 0) for c in _strict_chunks(data, names, limits)),
                               _Screen(limits, lines), unreadable)
    except pd.errors.ParserError:
        frame, junk = _collect(_tolerant_chunks(data, names, limits, unreadable),
                               _Screen(limits, lines), unreadable)
    return ParsedFile(frame, unreadable, junk, notes)


def _parse_parquet(data: bytes, limits: IngestConfig) -> ParsedFile:
    """A Parquet file's rows in batches, after its metadata is checked against the limits."""
    parquet = pq.ParquetFile(io.BytesIO(data))
    rows = parquet.metadata.num_rows
    stored = {str(n).strip(): n for n in parquet.schema_arrow.names}
    notes = _check_names(list(stored), rows)
    if rows > limits.max_file_rows:
        raise over_rows(rows, limits.max_file_rows)
    decoded = sum(parquet.metadata.row_group(i).total_byte_size
                  for i in range(parquet.num_row_groups))
    if decoded > limits.max_file_bytes:
        raise over_bytes(f"decodes to {decoded:,} bytes", limits.max_file_bytes)
    columns = [stored[c] for c in RAW_COLUMNS]
    start = 1

    def batches() -> Iterator[tuple[pd.DataFrame, int]]:
        nonlocal start
        for batch in parquet.iter_batches(batch_size=limits.chunk_rows, columns=columns):
            chunk = batch.to_pandas()
            chunk.columns = list(RAW_COLUMNS)
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            start += len(chunk)
            yield chunk, 0

    frame, junk = _collect(batches(), _Screen(limits, rows), [])
    return ParsedFile(frame, [], junk, notes)


def raw_timestamps(data: bytes, name: str, limits: IngestConfig) -> tuple[pd.Series, int]:
    """The timestamp column (as read) and the data row count of a raw file, for the raw index:
    a CSV's header and row count are checked against the limits and only its timestamp column
    is parsed; a Parquet file, or a CSV the quick reader cannot take (ragged, not UTF-8), goes
    through parse_raw, which says why it cannot be used (FileRejected)."""
    if name.lower().endswith((".csv", ".csv.gz")):
        try:
            csv_data = _gunzip(data, limits.max_file_bytes) if name.lower().endswith(".gz") \
                else data
            names, _, _ = _csv_header(csv_data, limits)
            column = pd.read_csv(
                io.BytesIO(csv_data), header=0, names=names, usecols=["timestamp"], dtype=str,
                na_values=NA_TOKENS, keep_default_na=False, encoding="utf-8-sig",
                skipinitialspace=True, engine="c")["timestamp"]
            return column, len(column)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError):
            pass  # ragged or odd: the full reader decides, and says why
    parsed = parse_raw(data, name, limits)
    return parsed.frame["timestamp"], len(parsed.frame) + len(parsed.unreadable)


def parse_raw(data: bytes, name: str, limits: IngestConfig) -> ParsedFile:
    """A raw file's rows from its bytes; FileRejected (with the reason) when it cannot be used."""
    name = name.lower()
    try:
        if name.endswith(".parquet"):
            return _parse_parquet(data, limits)
        if name.endswith(".gz"):
            data = _gunzip(data, limits.max_file_bytes)
        return _parse_csv(data, limits)
    except FileRejected:
        raise
    except pd.errors.EmptyDataError:
        raise FileRejected("empty file: no header row") from None
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except Exception as exc:  # any other parse failure quarantines the file, never the run
        raise FileRejected(f"cannot be parsed: {type(exc).__name__}: {exc}") from None
