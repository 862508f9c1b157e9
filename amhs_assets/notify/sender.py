"""Webhook delivery off the caller's thread: a bounded queue, one daemon thread, POSTs of JSON
tried `attempts` times with exponential backoff (tenacity), results counted.

`send()` never waits: a message that finds the queue full is dropped, logged with its kind and
line, and counted. `close()` lets the thread deliver what is queued for at most its timeout;
what is still queued after that stays with the (daemon) thread and is logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

import orjson
import requests
import tenacity

from amhs_assets.notify.config import NotifyConfig, redacted

log = logging.getLogger(__name__)
RESULTS = ("sent", "failed", "dropped", "untracked")  # untracked: an answer whose CRITICAL
# episodes could not be followed (its queue full, or the episode store failing)
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # worth another try
MAX_BACKOFF_S = 60.0
DROP_WARNING_S = 10.0  # at most one "queue full" warning per this many seconds
_STOP = object()


class Refused(Exception):
    """The receiver answered with a status that another try will not change."""


def _transient(error: BaseException) -> bool:
    """Worth another try: a network error, a timeout, or a status in RETRIED_STATUSES."""
    if isinstance(error, requests.HTTPError):
        return error.response is not None and error.response.status_code in RETRIED_STATUSES
    return isinstance(error, requests.RequestException)


class WebhookSender:
    """A queue of (kind, URL, message) and the thread that POSTs them."""

    def __init__(self, config: NotifyConfig,
                 on_result: Callable[[str, str], None] | None = None) -> None:
        self.config, self.on_result = config, on_result
        self.queue: queue.Queue = queue.Queue(config.queue_size)
        self.counts: Counter[tuple[str, str]] = Counter()  # (kind, result) -> messages
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._drop_logged_at, self._unlogged_drops = -DROP_WARNING_S, 0
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "amhs-notify/1"})
        self.thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def __enter__(self) -> WebhookSender:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the delivery thread (messages sent before wait in the queue)."""
        if not self.thread.is_alive() and not self._closing.is_set():
            self.thread.start()

    def send(self, kind: str, message: Mapping) -> None:
        """Queue a message for every webhook of its kind; never blocks."""
        for url in self.config.webhooks(kind):
            try:
                self.queue.put_nowait((kind, url, message))
            except queue.Full:
                self._count(kind, "dropped")
                self._warn_dropped(kind, url, message)

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued for at most timeout_s seconds, then stop the thread."""
        self._closing.set()
        if not self.thread.is_alive():
            return
        try:
            self.queue.put_nowait(_STOP)
        except queue.Full:
            pass  # the thread stops when it finds the queue empty
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            log.warning("%d webhook message(s) still unsent after %.0f s; left to the "
                        "background thread", self.queue.qsize(), timeout_s)
        self.session.close()

    def count(self, kind: str | None = None, result: str = "sent") -> int:
        """Messages (one per URL) of a kind (every kind: None) with a result (see RESULTS)."""
        with self._lock:
            return sum(n for (k, r), n in self.counts.items()
                       if r == result and (kind is None or k == kind))

    def _warn_dropped(self, kind: str, url: str, message: Mapping) -> None:
        """Log a dropped message; at most one warning per DROP_WARNING_S, with the count of the
        others (a receiver down for long must not flood the log)."""
        with self._lock:
            self._unlogged_drops += 1
            now = time.monotonic()
            if now - self._drop_logged_at < DROP_WARNING_S:
                return
            others, self._unlogged_drops, self._drop_logged_at = self._unlogged_drops - 1, 0, now
        log.warning("webhook queue full (%d waiting): %s message %s of line %s for %s dropped%s",
                    self.config.queue_size, kind, message.get("event"),
                    message.get("line_id", "-"), redacted(url),
                    f" (and {others} other(s) since the last warning)" if others else "")

    def record(self, kind: str, result: str) -> None:
        """Count a result that happened outside the sender (see RESULTS)."""
        self._count(kind, result)

    def _count(self, kind: str, result: str) -> None:
        with self._lock:
            self.counts[kind, result] += 1
        if self.on_result is not None:
            self.on_result(kind, result)

    def _run(self) -> None:
        """Deliver queued messages until stopped and the queue is empty."""
        while True:
            try:
                item = self.queue.get(timeout=1.0)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            if item is _STOP:
                if self.queue.empty():
                    return
                continue
            self._deliver(*item)

    def _deliver(self, kind: str, url: str, message: Mapping) -> None:
        """POST one message, tried again with backoff; counted as sent or failed."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.config.attempts),
            wait=tenacity.wait_exponential(multiplier=self.config.backoff_s, max=MAX_BACKOFF_S),
            retry=tenacity.retry_if_exception(_transient), reraise=True)
        try:
            retrying(self._post, url, message)
        except Exception as error:  # noqa: BLE001 - counted and logged, the thread goes on
            self._count(kind, "failed")
            log.warning("webhook %s message %s of line %s to %s failed after %d tries: %s",
                        kind, message.get("event"), message.get("line_id", "-"), redacted(url),
                        retrying.statistics.get("attempt_number", 1), error)
        else:
            self._count(kind, "sent")

    def _post(self, url: str, message: Mapping) -> None:
        """One try: a 2xx answer or an exception."""
        timeout = self.config.timeout_s
        body = orjson.dumps(message, default=str,  # NaN becomes null: strict JSON for any receiver
                            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        answer = self.session.post(url, data=body, timeout=(timeout, timeout),
                                   headers={"Content-Type": "application/json"})
        if answer.status_code >= 300:
            if answer.status_code in RETRIED_STATUSES:
                answer.raise_for_status()
            raise Refused(f"{answer.status_code} {answer.reason}")


def send_now(config: NotifyConfig, messages: list[tuple[str, Mapping]], wait_s: float) -> int:
    """Messages of a short-lived caller (a sensor tick), delivered by their own thread that the
    caller waits on for at most wait_s seconds. Returns how many (one per URL) were not
    delivered by then: failed, dropped or still being tried."""
    wanted = sum(len(config.webhooks(kind)) for kind, _ in messages)
    if not wanted:
        return 0
    sender = WebhookSender(config)
    for kind, message in messages:
        sender.send(kind, message)
    sender.start()
    sender.close(wait_s)
    return wanted - sender.count(result="sent")
