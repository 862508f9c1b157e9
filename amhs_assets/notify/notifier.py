"""What the API tells the webhooks: the CRITICAL episodes of the lines it forecasts."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from amhs_assets.notify.config import NotifyConfig
from amhs_assets.notify.episodes import CriticalEpisodes, SharedEpisodes
from amhs_assets.notify.sender import WebhookSender

log = logging.getLogger(__name__)
ANSWERS_WAITING = 10_000  # answers queued for episode tracking; more are counted as untracked
_STOP = object()


class Notifier:
    """Episodes from the prediction answers, messages to the `critical` webhooks.

    `observe` only queues the answer; one background thread tracks the episodes (in memory, or
    in `state_file` shared by every worker process of the API) and hands the messages due to
    the sender's thread. A prediction never waits on the disk or the network."""

    def __init__(self, config: NotifyConfig,
                 on_result: Callable[[str, str], None] | None = None,
                 state_file: Path | None = None) -> None:
        self.config = config
        self.sender = WebhookSender(config, on_result)
        self.episodes: CriticalEpisodes | SharedEpisodes = (
            SharedEpisodes(state_file, config.clear_after) if state_file is not None
            else CriticalEpisodes(config.clear_after))
        self.enabled = bool(config.critical_webhooks)
        self._answers: queue.Queue = queue.Queue(ANSWERS_WAITING)
        self._tracker = threading.Thread(target=self._track, name="critical-episodes",
                                         daemon=True)

    def start(self) -> None:
        """Start tracking and delivering (a notifier without critical webhooks starts nothing)."""
        if self.enabled and not self._tracker.is_alive():
            self.sender.start()
            self._tracker.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Track the queued answers and deliver what is due, for at most timeout_s seconds."""
        deadline = time.monotonic() + timeout_s
        if self._tracker.is_alive():
            try:
                self._answers.put(_STOP, timeout=timeout_s)
            except queue.Full:
                pass
            self._tracker.join(max(deadline - time.monotonic(), 0.0))
        if not self._tracker.is_alive():
            self.episodes.close()
        self.sender.close(max(deadline - time.monotonic(), 0.1))

    def observe(self, model: Mapping, predictions: Sequence[Mapping]) -> None:
        """Queue one answer's predictions for episode tracking: O(1), no disk, no network;
        never raises (a prediction is answered whatever happens here)."""
        if not self.enabled:
            return
        try:
            self._answers.put_nowait((model, predictions))
        except queue.Full:
            self.sender.record("critical", "untracked")

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Whether every queued answer was tracked within timeout_s seconds (for tests and
        shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._answers.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._answers.unfinished_tasks

    def _track(self) -> None:
        """Answers -> episodes -> messages, until stopped."""
        while True:
            item = self._answers.get()
            try:
                if item is _STOP:
                    return
                model, predictions = item
                for message in self.episodes.observe(model, predictions):
                    self.sender.send("critical", message)
            except Exception:  # noqa: BLE001 - counted and logged, the next answer goes on
                self.sender.record("critical", "untracked")
                log.exception("CRITICAL episode tracking failed for %d prediction(s) of one "
                              "answer; its alarms may not be notified", len(item[1]))
            finally:
                self._answers.task_done()
