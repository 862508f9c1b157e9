"""Settings of the REST API: the deployment from `amhs_assets.config`, and the API's own limits
from its environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from amhs_assets.config import DEFAULT_DATA_DIR, DataLayout, read_environment
from amhs_assets.contract import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from amhs_assets.notify.config import NotifyConfig

DEFAULT_MAX_ROWS = 20_000  # rows per request: about 160 lines of 120 minutes
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024  # a contract row is about 700 bytes of JSON
DEFAULT_RELOAD_INTERVAL_S = 60.0
# what a hostile or broken client may cost one worker (docs/api.md, "Limits")
DEFAULT_MAX_ROW_KEYS = 128  # keys of one JSON object: the contract has 32 columns
DEFAULT_MAX_ROW_BYTES = 16 * 1024  # bytes of one row's JSON: a contract row is about 700
DEFAULT_MAX_IN_FLIGHT = 16  # /v1/predict requests read or computed at once; more get a 503
DEFAULT_WORKER_THREADS = 4  # threads that parse, check and predict (off the event loop)
DEFAULT_HEADER_TIMEOUT_S = 10.0  # from connection (or the previous answer) to complete headers
DEFAULT_MAX_HEADER_BYTES = 32 * 1024  # request line and headers
DEFAULT_BODY_TIMEOUT_S = 30.0  # from complete headers to the body's last byte
DEFAULT_KEEP_ALIVE_S = 5.0  # idle keep-alive connections are closed after this
DEFAULT_PREDICTION_LOG_DAYS = 14  # day folders of the prediction log kept; 0 keeps every day


def _float(env: dict[str, str], name: str, default: float) -> float:
    """A non-negative number from the environment, with the variable named when it is not one."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
    if value < 0:
        raise ValueError(f"{name}={text!r} must be >= 0")
    return value


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    """A yes/no setting from the environment (1/true/yes/on, 0/false/no/off; empty: default),
    with the variable named when it is neither."""
    text = env.get(name, "").strip().lower()
    if not text:
        return default
    if text in TRUE_WORDS or text in FALSE_WORDS:
        return text in TRUE_WORDS
    raise ValueError(f"{name}={text!r}: expected one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")


@dataclass(frozen=True)
class ServeSettings:
    """Where the model and the data live, and the limits of a request."""

    data_dir: Path = Path(DEFAULT_DATA_DIR)
    tracking_uri: str | None = None  # None: the embedded store under the data folder
    model_name: str = REGISTERED_MODEL_NAME
    alias: str = CHAMPION_ALIAS
    api_token: str | None = None  # None or empty: POST /v1/reload is disabled
    reload_interval_s: float = DEFAULT_RELOAD_INTERVAL_S  # 0: no periodic alias check
    max_rows: int = DEFAULT_MAX_ROWS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_predictions: bool = True
    log_token: str | None = None  # set: only requests carrying it are logged and notified
    prediction_log_days: int = DEFAULT_PREDICTION_LOG_DAYS
    max_row_keys: int = DEFAULT_MAX_ROW_KEYS
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    worker_threads: int = DEFAULT_WORKER_THREADS
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    keep_alive_s: float = DEFAULT_KEEP_ALIVE_S
    notify: NotifyConfig = NotifyConfig()  # the settings file's notify: section (webhooks)
    # lines the served version was not trained on: False answers them with a warning each,
    # True refuses the request (422)
    strict_lines: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "ServeSettings":
        """AMHS_DATA_DIR, MLFLOW_TRACKING_URI, AMHS_API_TOKEN, AMHS_RELOAD_INTERVAL_S,
        AMHS_LOG_PREDICTIONS (0 turns the log off), AMHS_LOG_TOKEN, AMHS_PREDICTION_LOG_DAYS,
        AMHS_STRICT_LINES (1 refuses lines the model was not trained on), the limits
        (LIMIT_VARIABLES); the webhooks from the AMHS_SETTINGS file's notify: section (the one
        Dagster reads too)."""
        env = dict(os.environ if env is None else env)
        deployment = read_environment(env)
        limits = {name: kind(_float(env, var, getattr(cls, name)))
                  for name, (var, kind) in LIMIT_VARIABLES.items()}
        if limits["max_in_flight"] < 1 or limits["worker_threads"] < 1:
            raise ValueError("AMHS_MAX_IN_FLIGHT and AMHS_WORKER_THREADS must be >= 1")
        return cls(
            data_dir=deployment.data_dir,
            tracking_uri=deployment.tracking_uri,
            api_token=env.get("AMHS_API_TOKEN") or None,
            reload_interval_s=_float(env, "AMHS_RELOAD_INTERVAL_S", DEFAULT_RELOAD_INTERVAL_S),
            log_predictions=_flag(env, "AMHS_LOG_PREDICTIONS", True),
            log_token=env.get("AMHS_LOG_TOKEN") or None,
            **limits,
            notify=NotifyConfig.from_values(deployment.settings.get("notify"),
                                            str(deployment.settings_file or "AMHS_SETTINGS")),
            strict_lines=_flag(env, "AMHS_STRICT_LINES", False),
        )

    @property
    def layout(self) -> DataLayout:
        return DataLayout(self.data_dir)

    @property
    def resolved_tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI, or the embedded store under the data folder (created)."""
        if self.tracking_uri:
            return self.tracking_uri
        self.layout.mlflow.mkdir(parents=True, exist_ok=True)
        return self.layout.embedded_tracking_uri

    @property
    def predictions_dir(self) -> Path:
        """Where the prediction log goes."""
        return self.layout.predictions

    @property
    def episodes_file(self) -> Path:
        """The lines' CRITICAL episodes, shared by every worker process of the API."""
        return self.layout.root / "notify" / "critical_episodes.sqlite"

    @property
    def dashboard_path(self) -> Path:
        """The monitoring dashboard that /dashboard serves."""
        return self.layout.dashboard


# field -> (environment variable, type): the numeric settings, read by ServeSettings.from_env
LIMIT_VARIABLES: dict[str, tuple[str, type]] = {
    "max_rows": ("AMHS_MAX_ROWS", int),
    "max_body_bytes": ("AMHS_MAX_BODY_BYTES", int),
    "max_row_keys": ("AMHS_MAX_ROW_KEYS", int),
    "max_row_bytes": ("AMHS_MAX_ROW_BYTES", int),
    "max_in_flight": ("AMHS_MAX_IN_FLIGHT", int),
    "worker_threads": ("AMHS_WORKER_THREADS", int),
    "header_timeout_s": ("AMHS_HEADER_TIMEOUT_S", float),
    "max_header_bytes": ("AMHS_MAX_HEADER_BYTES", int),
    "body_timeout_s": ("AMHS_BODY_TIMEOUT_S", float),
    "keep_alive_s": ("AMHS_KEEP_ALIVE_S", float),
    "prediction_log_days": ("AMHS_PREDICTION_LOG_DAYS", int),
}
