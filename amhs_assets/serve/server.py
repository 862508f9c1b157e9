"""`amhs serve`: the app under uvicorn, with one or more worker processes."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile

from amhs_assets.serve.config import ServeSettings

APP = "amhs_assets.serve.app:create_app"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_config(level: str = "INFO") -> dict:
    """One stderr handler for every logger (uvicorn's, the app's, MLflow's), its lines redacted
    (amhs_assets.redact); uvicorn applies it in every worker process."""
    formatter = {"()": "amhs_assets.redact.RedactingFormatter", "fmt": LOG_FORMAT}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"redacted": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "redacted",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {name: {"handlers": [], "level": level, "propagate": True}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


def protocol_options(settings: ServeSettings) -> dict:
    """uvicorn's HTTP options from the settings: the guarded httptools protocol (header
    deadline and size) when httptools is there, h11 with its head size limit otherwise."""
    http = "h11"
    if importlib.util.find_spec("httptools") is not None:
        from amhs_assets.serve.protocol import SPEC

        http = SPEC
    return {"http": http, "timeout_keep_alive": settings.keep_alive_s,
            "h11_max_incomplete_event_size": settings.max_header_bytes or None}


def run_server(host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
               access_log: bool = False) -> None:
    """Serve until interrupted; settings come from the environment (ServeSettings.from_env).

    Each worker loads the champion and checks its alias on its own; with several workers,
    Prometheus figures are gathered through a PROMETHEUS_MULTIPROC_DIR made for the run."""
    import uvicorn

    settings = ServeSettings.from_env()
    logging.captureWarnings(True)
    made = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made = tempfile.mkdtemp(prefix="amhs-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    try:
        uvicorn.run(APP, factory=True, host=host, port=port, workers=workers,
                    access_log=access_log, log_level="info", log_config=log_config(),
                    **protocol_options(settings))
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)
