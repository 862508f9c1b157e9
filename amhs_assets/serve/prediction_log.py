"""Every answered prediction, appended to date-partitioned JSON lines by a background thread.

Layout: ``$AMHS_DATA_DIR/predictions/date=YYYY-MM-DD/part-<start>-<pid>.jsonl``, the date of
``logged_at`` (UTC); one file per server process and day, appended in batches. One JSON
object per line and prediction::

    {"logged_at": "2026-03-01T08:00:01.234Z", "line_id": "L1", "as_of": "2026-03-01T07:59:00Z",
     "model_name": "amhs-predictor", "model_version": "3", "model_alias": "champion",
     "horizons": {"10": {"min": 180.2, "max": 260.0, "avg": 210.4, "state": "NORMAL",
                         "proba": {"NORMAL": 0.91, "WARNING": 0.07, "CRITICAL": 0.02}},
                  "15": {...}, "25": {...}}}

Read it back with ``pandas.read_json(path, lines=True)`` per file. The request thread only
puts a reference on a queue; the writer flushes every `flush_s` seconds or `batch` records,
and on shutdown. When the queue is full the prediction is dropped and counted
(``amhs_prediction_log_dropped_total``) rather than slowing the answer.

Retention: day folders more than `keep_days` days old are deleted by the writer at start and
whenever the UTC date changes (AMHS_PREDICTION_LOG_DAYS; 0 keeps every day).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson

log = logging.getLogger(__name__)
_STOP = object()
DAY_FOLDER = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


def prune_days(directory: Path, keep_days: int, today: date | None = None) -> list[str]:
    """Delete the day folders (date=YYYY-MM-DD) dated more than keep_days before today (UTC);
    returns their dates. Other files are left alone; 0 keeps every day."""
    if keep_days <= 0 or not Path(directory).is_dir():
        return []
    today = today or datetime.now(timezone.utc).date()
    oldest = (today - timedelta(days=keep_days)).isoformat()
    gone = []
    for folder in sorted(Path(directory).iterdir()):
        match = DAY_FOLDER.fullmatch(folder.name)
        if match and folder.is_dir() and match[1] < oldest:
            shutil.rmtree(folder, ignore_errors=True)  # another worker may prune it too
            gone.append(match[1])
    if gone:
        log.info("prediction log: removed %d day folder(s) older than %d days (%s .. %s)",
                 len(gone), keep_days, gone[0], gone[-1])
    return gone


class PredictionLog:
    """A queue and one writer thread appending predictions to JSON-lines files."""

    def __init__(self, directory: Path, batch: int = 1000, flush_s: float = 1.0,
                 max_queue: int = 100_000, on_drop=None, keep_days: int = 0) -> None:
        self.directory, self.batch, self.flush_s = Path(directory), batch, flush_s
        self.keep_days, self._pruned_on = keep_days, ""
        self.queue: queue.Queue = queue.Queue(max_queue)
        self.on_drop = on_drop
        self.started = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        self.thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self.thread.start()

    def append(self, model: dict, predictions: list[dict]) -> None:
        """Queue one answer's predictions (never blocks)."""
        try:
            self.queue.put_nowait((time.time(), model, predictions))
        except queue.Full:
            if self.on_drop:
                self.on_drop(len(predictions))

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the writer."""
        if self.thread.is_alive():
            self.queue.put(_STOP)
            self.thread.join(timeout)

    def _run(self) -> None:
        """Collect queued answers and write them in batches until stopped; prune old days."""
        pending: list = []
        deadline = time.monotonic() + self.flush_s
        self._prune()
        while True:
            try:
                item = self.queue.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                item = None
            if item is not None and item is not _STOP:
                pending.append(item)
            if item is _STOP or len(pending) >= self.batch or time.monotonic() >= deadline:
                self._flush(pending)
                pending, deadline = [], time.monotonic() + self.flush_s
                self._prune()
            if item is _STOP:
                return

    def _prune(self) -> None:
        """Prune old day folders once per UTC day; errors are logged, not raised."""
        today = datetime.now(timezone.utc).date()
        if self.keep_days <= 0 or self._pruned_on == today.isoformat():
            return
        self._pruned_on = today.isoformat()
        try:
            prune_days(self.directory, self.keep_days, today)
        except OSError:
            log.exception("could not prune the prediction log under %s", self.directory)

    def _flush(self, pending: list) -> None:
        """Append the pending answers' records, one file per date; errors are logged, not raised."""
        if not pending:
            return
        by_date: dict[str, list[bytes]] = {}
        for logged, model, predictions in pending:
            stamp = datetime.fromtimestamp(logged, timezone.utc)
            at = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
            lines = by_date.setdefault(stamp.strftime("%Y-%m-%d"), [])
            for p in predictions:
                lines.append(orjson.dumps({
                    "logged_at": at, "line_id": p["line_id"], "as_of": p["as_of"],
                    "model_name": model["name"], "model_version": model["version"],
                    "model_alias": model["alias"], "horizons": p["horizons"]}))
        for day, lines in by_date.items():
            folder = self.directory / f"date={day}"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with open(folder / f"part-{self.started}-{os.getpid()}.jsonl", "ab") as f:
                    f.write(b"\n".join(lines) + b"\n")
            except OSError:
                log.exception("could not write %d prediction(s) under %s", len(lines), folder)
