"""Webhook notifications: a JSON message per CRITICAL episode of a line (the API), per drift or
degradation episode and per failed run (the Dagster sensors). Pure: no Dagster here.

- config: `NotifyConfig`, the `notify` settings section (URLs per kind, timeouts, retries);
- messages: the payloads (docs/notifications.md);
- episodes: CRITICAL episodes per line with hysteresis;
- sender: delivery off the caller's thread, retried with backoff, counted;
- notifier: episodes + sender, what the API holds.
"""

from amhs_assets.notify.config import KINDS, NotifyConfig
from amhs_assets.notify.episodes import CriticalEpisodes
from amhs_assets.notify.notifier import Notifier
from amhs_assets.notify.sender import WebhookSender, send_now

__all__ = ["KINDS", "CriticalEpisodes", "Notifier", "NotifyConfig", "WebhookSender", "send_now"]
