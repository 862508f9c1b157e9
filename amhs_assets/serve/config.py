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
    notify: NotifyConfig = NotifyConfig()  # the settings file's notify: section (webhooks)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "ServeSettings":
        """AMHS_DATA_DIR, MLFLOW_TRACKING_URI, AMHS_API_TOKEN, AMHS_RELOAD_INTERVAL_S,
        AMHS_MAX_ROWS, AMHS_MAX_BODY_BYTES, AMHS_LOG_PREDICTIONS (0 turns the log off); the
        webhooks from the AMHS_SETTINGS file's notify: section (the one Dagster reads too)."""
        env = dict(os.environ if env is None else env)
        deployment = read_environment(env)
        return cls(
            data_dir=deployment.data_dir,
            tracking_uri=deployment.tracking_uri,
            api_token=env.get("AMHS_API_TOKEN") or None,
            reload_interval_s=_float(env, "AMHS_RELOAD_INTERVAL_S", DEFAULT_RELOAD_INTERVAL_S),
            max_rows=int(_float(env, "AMHS_MAX_ROWS", DEFAULT_MAX_ROWS)),
            max_body_bytes=int(_float(env, "AMHS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            log_predictions=env.get("AMHS_LOG_PREDICTIONS", "1").strip() not in ("0", "false", "no"),
            notify=NotifyConfig.from_values(deployment.settings.get("notify"),
                                            str(deployment.settings_file or "AMHS_SETTINGS")),
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
    def dashboard_path(self) -> Path:
        """The monitoring dashboard that /dashboard serves."""
        return self.layout.dashboard
