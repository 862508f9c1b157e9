"""Secrets out of text that is printed, logged, returned or stored: `redact`.

A tracking URI such as ``http://user:password@mlflow:5000`` or
``postgresql://host/db?password=x`` carries a secret; every message that may show one (logs,
API answers, Dagster metadata, exception texts) goes through `redact` first.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping

MASK = "***"
# scheme://user:password@host -> scheme://user:***@host; scheme://token@host -> scheme://***@host
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<info>[^\s/?#]+)@")
# ?password=...&token=... and the like in query strings and key=value texts
_PARAMETER = re.compile(
    r"(?i)(?P<key>\b(?:password|passwd|pwd|token|access_token|secret|client_secret|api_key|"
    r"apikey|access_key|secret_key|sig|signature)=)(?P<value>[^&\s'\"]+)")
# environment variables whose values are secrets (AMHS_API_TOKEN, MLFLOW_TRACKING_PASSWORD, ...)
_SECRET_NAME = re.compile(r"(?i)(PASSWORD|PASSWD|TOKEN|SECRET|API_KEY|ACCESS_KEY)")
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


def _userinfo(match: re.Match) -> str:
    user, colon, _ = match["info"].partition(":")
    return f"{match['scheme']}{user}:{MASK}@" if colon else f"{match['scheme']}{MASK}@"


def redact(text: object, secrets: Iterable[str] = ()) -> str:
    """`text` as a string with URL passwords (and user-only tokens), credential query parameters
    and every one of `secrets` replaced by ***."""
    out = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH},
                         key=len, reverse=True):
        out = out.replace(secret, MASK)
    out = _USERINFO.sub(_userinfo, out)
    return _PARAMETER.sub(lambda m: m["key"] + MASK, out)


def environment_secrets(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Values of the environment's secret-named variables (…TOKEN, …PASSWORD, …SECRET, …KEY)."""
    env = os.environ if env is None else env
    return tuple(value for name, value in env.items()
                 if _SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose lines (tracebacks included) go through `redact`, with the values of
    the environment's secret variables masked too."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.secrets = environment_secrets()

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)
