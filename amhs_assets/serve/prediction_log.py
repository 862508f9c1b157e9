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
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

log = logging.getLogger(__name__)
_STOP = object()


class PredictionLog:
    """A queue and one writer thread appending predictions to JSON-lines files."""

    def __init__(self, directory: Path, batch: int = 1000, flush_s: float = 1.0,
                 max_queue: int = 100_000, on_drop=None) -> None:
        self.directory, self.batch, self.flush_s = Path(directory), batch, flush_s
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
        """Collect queued answers and write them in batches until stopped."""
        pending: list = []
        deadline = time.monotonic() + self.flush_s
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
            if item is _STOP:
                return

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
        for date, lines in by_date.items():
            folder = self.directory / f"date={date}"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with open(folder / f"part-{self.started}-{os.getpid()}.jsonl", "ab") as f:
                    f.write(b"\n".join(lines) + b"\n")
            except OSError:
                log.exception("could not write %d prediction(s) under %s", len(lines), folder)
