"""What the API tells the webhooks: the CRITICAL episodes of the lines it forecasts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from amhs_assets.notify.config import NotifyConfig
from amhs_assets.notify.episodes import CriticalEpisodes
from amhs_assets.notify.sender import WebhookSender

log = logging.getLogger(__name__)


class Notifier:
    """Episodes from the prediction answers, messages to the `critical` webhooks."""

    def __init__(self, config: NotifyConfig,
                 on_result: Callable[[str, str], None] | None = None) -> None:
        self.config = config
        self.sender = WebhookSender(config, on_result)
        self.episodes = CriticalEpisodes(config.clear_after)
        self.enabled = bool(config.critical_webhooks)
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start delivering (a notifier without critical webhooks starts nothing)."""
        if self.enabled:
            self.sender.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued for at most timeout_s seconds."""
        self.sender.close(timeout_s)

    def observe(self, model: Mapping, predictions: Sequence[Mapping]) -> None:
        """One answer's predictions: queue the messages of episodes that start or clear. O(lines),
        no network; never raises (a prediction is answered whatever happens here)."""
        if not self.enabled:
            return
        try:
            with self._lock:
                due = self.episodes.observe(model, predictions)
            for message in due:
                self.sender.send("critical", message)
        except Exception:  # noqa: BLE001 - the answer matters more than the page
            log.exception("CRITICAL episode tracking failed for %d prediction(s); the answer "
                          "is sent anyway", len(predictions))
