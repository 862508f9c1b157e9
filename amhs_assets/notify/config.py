"""The `notify` settings: which webhooks hear of what, and how hard a message is tried."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from amhs_assets.config import setting

KINDS = ("critical", "drift", "degradation", "run_failure")
URL_FIELDS = tuple(f"{kind}_webhooks" for kind in KINDS)
NUMBERS = (("timeout_s", 0, True), ("backoff_s", 0, False),  # (field, lowest, lowest excluded)
           ("attempts", 1, False), ("clear_after", 1, False), ("queue_size", 1, False))
WHOLE = ("attempts", "clear_after", "queue_size")


@dataclass(frozen=True)
class NotifyConfig:
    """Webhooks told of CRITICAL episodes (the API), drift and degradation episodes and failed
    runs (the Dagster sensors), one list of URLs per kind, and how each message is tried."""

    critical_webhooks: tuple[str, ...] = setting(
        (), "http(s) URLs that get a JSON message when a line's forecast enters a CRITICAL "
            "episode and when the episode clears (sent by the API); empty: none")
    drift_webhooks: tuple[str, ...] = setting(
        (), "http(s) URLs told when a drift episode of drift_report starts and ends")
    degradation_webhooks: tuple[str, ...] = setting(
        (), "http(s) URLs told when a degradation episode of performance_monitor starts and ends")
    run_failure_webhooks: tuple[str, ...] = setting(
        (), "http(s) URLs told of every failed Dagster run of this code location")
    dagster_url: str = setting(
        "", "base URL of the Dagster UI (e.g. http://dagster.fab:3000); run_failure messages "
            "link to the run there (empty: they give the path /runs/<run id>)")
    timeout_s: float = setting(5.0, "seconds to connect, and again to wait for the answer, per try")
    attempts: int = setting(
        3, "tries per message and URL before it counts as failed; network errors and the "
           "answers 408, 429 and 5xx are tried again, other answers are not")
    backoff_s: float = setting(1.0, "wait before the second try, doubled before each next one")
    clear_after: int = setting(
        5, "a line's CRITICAL episode clears after this many consecutive forecasts (distinct "
           "minutes) without an alarm; alarms in between belong to the same episode")
    queue_size: int = setting(
        1000, "messages waiting to be sent; a message beyond is dropped, logged and counted "
              "(a prediction never waits for a webhook)")

    def __post_init__(self) -> None:
        for name in URL_FIELDS:
            urls = getattr(self, name)
            if isinstance(urls, str) or not isinstance(urls, (tuple, list)):
                raise ValueError(f"notify.{name}: expected a list of URLs, got {urls!r}")
            object.__setattr__(self, name, tuple(urls))
            for url in urls:
                check_url(url, f"notify.{name}")
        if self.dagster_url:
            check_url(self.dagster_url, "notify.dagster_url")
        for name, low, strict in NUMBERS:
            value = getattr(self, name)
            kinds = int if name in WHOLE else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) \
                    or value < low or (strict and value == low):
                raise ValueError(f"notify.{name}={value!r}: expected a "
                                 f"{'whole ' if name in WHOLE else ''}number "
                                 f"{'>' if strict else '>='} {low}")

    def webhooks(self, kind: str) -> tuple[str, ...]:
        """The URLs of one kind of message (see KINDS)."""
        if kind not in KINDS:
            raise ValueError(f"unknown notification kind {kind!r}; expected one of {KINDS}")
        return getattr(self, f"{kind}_webhooks")

    def run_url(self, run_id: str) -> str:
        """Where the Dagster UI shows a run."""
        return f"{self.dagster_url.rstrip('/')}/runs/{run_id}"

    @classmethod
    def from_values(cls, values: Mapping | None, source: str = "AMHS_SETTINGS") -> NotifyConfig:
        """The config of a settings file's `notify:` mapping; an unknown field is an error that
        names the file and the known fields."""
        values = values or {}
        if not isinstance(values, Mapping):
            raise ValueError(f"{source}: notify must be a mapping of its fields, got {values!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {['notify.' + k for k in unknown]}; "
                             f"known: {['notify.' + k for k in known]}")
        try:
            return cls(**values)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None


def check_url(url: object, where: str) -> None:
    """An http(s) URL with a host, or a ValueError that names the setting."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where}: {url!r} is not an http(s) URL with a host; write e.g. "
                         "https://chat.example.com/hooks/abc")


def redacted(url: str) -> str:
    """A URL as logs show it: scheme and host only (webhook paths often hold a secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..."
