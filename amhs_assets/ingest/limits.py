"""What one raw file may cost to read, and the two ways a file is turned away.

A file over a limit is quarantined whole with the reason (the other files go on); a file that
changes while it is read is skipped, never half-ingested, and read again at the next tick. The
limits bound the memory one file can take: its bytes (at most ``max_file_bytes``, decoded) plus
its rows (at most ``max_file_rows``, numbers as float64), parsed ``chunk_rows`` at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from amhs_assets.config import setting


@dataclass(frozen=True)
class IngestConfig:
    """Limits on one raw file: larger, longer or mostly unusable files are quarantined whole."""

    max_file_bytes: int = setting(
        256 * 2**20, "a raw file larger than this many bytes (a .csv.gz also once decompressed, a "
                     ".parquet also decoded) is quarantined whole, unread")
    max_file_rows: int = setting(
        1_000_000, "a raw file with more data rows (lines below the header) than this is "
                   "quarantined whole")
    max_bad_rows: int = setting(
        50_000, "a raw file with more unusable rows than this (wrong number of fields, a required "
                "value missing, a non-number or a value out of its range) is quarantined whole "
                "instead of row by row")
    chunk_rows: int = setting(100_000, "rows parsed at a time (memory per chunk)")

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_file_rows", "chunk_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"ingest.{name} must be at least 1, got {getattr(self, name)}")
        if self.max_bad_rows < 0:
            raise ValueError(f"ingest.max_bad_rows must be 0 or more, got {self.max_bad_rows}")


class FileRejected(Exception):
    """A raw file that cannot be used at all; the message says why. `rows`: the data rows it
    holds (as far as they were counted), all quarantined."""

    def __init__(self, reason: str, rows: int = 0):
        super().__init__(reason)
        self.rows = rows


class FileChanged(Exception):
    """A raw file that changed while it was read: skipped this time, read again at the next
    tick; the message says what changed."""


def over_bytes(size: str, limit: int) -> FileRejected:
    """The rejection of a file over ingest.max_file_bytes; `size` says how large it is."""
    return FileRejected(f"{size}, over the limit of {limit:,} bytes (ingest.max_file_bytes): "
                        "split the file or raise the limit")


def over_rows(rows: int, limit: int) -> FileRejected:
    """The rejection of a file over ingest.max_file_rows."""
    return FileRejected(f"{rows:,} data rows, over the limit of {limit:,} "
                        "(ingest.max_file_rows): split the file or raise the limit", rows=rows)


def too_many_bad_rows(bad: int, limit: int, first: str, rows: int) -> FileRejected:
    """The rejection of a file over ingest.max_bad_rows."""
    return FileRejected(
        f"more than {limit:,} unusable rows ({bad:,} in the first part read; the first: {first}): "
        "not a raw log of this contract? Fix the file, or raise ingest.max_bad_rows to quarantine "
        "its rows one by one", rows=rows)
