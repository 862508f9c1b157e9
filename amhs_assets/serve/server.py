"""`amhs serve`: the app under uvicorn, with one or more worker processes."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

APP = "amhs_assets.serve.app:create_app"


def run_server(host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
               access_log: bool = False) -> None:
    """Serve until interrupted; settings come from the environment (ServeSettings.from_env).

    Each worker loads the champion and checks its alias on its own; with several workers,
    Prometheus figures are gathered through a PROMETHEUS_MULTIPROC_DIR made for the run."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    made = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made = tempfile.mkdtemp(prefix="amhs-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    try:
        uvicorn.run(APP, factory=True, host=host, port=port, workers=workers,
                    access_log=access_log, log_level="info")
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)
