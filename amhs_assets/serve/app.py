"""The FastAPI application: `create_app()` (a uvicorn factory) wires settings, model store,
prediction log, metrics and routes; the lifespan loads the champion and watches its alias."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging

import anyio
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from amhs_assets.notify import Notifier
from amhs_assets.serve.config import ServeSettings
from amhs_assets.serve.limits import Admission
from amhs_assets.serve.model_store import ModelStore
from amhs_assets.serve.prediction_log import PredictionLog
from amhs_assets.serve.prometheus import MetricsMiddleware, ServeMetrics
from amhs_assets.serve.reports import router as reports_router
from amhs_assets.serve.routes import json_response, router
from amhs_assets.serve.schemas import REQUEST_TITLE, request_adapter
from amhs_assets.serve.validation import RequestError

log = logging.getLogger(__name__)
DESCRIPTION = """Forecasts of an automated material handling system's transfer times and state
(NORMAL / WARNING / CRITICAL) 10, 15 and 25 minutes ahead, per production line, from the raw
minute logs of SPEC section 1. Served model: `models:/amhs-predictor@champion` (MLflow)."""


async def watch_champion(store: ModelStore, interval_s: float) -> None:
    """Load the champion now, then check its alias every interval (0: only at start)."""
    await asyncio.to_thread(store.refresh_quietly)
    while interval_s > 0:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(store.refresh_quietly)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    """Start the prediction log, the webhook notifier and the champion watcher; flush and stop
    them on shutdown."""
    state = app.state
    if state.prediction_log is not None:
        state.prediction_log.start()
    state.notifier.start()
    watcher = asyncio.create_task(watch_champion(state.store, state.settings.reload_interval_s))
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if state.prediction_log is not None:
            state.prediction_log.close()
        await asyncio.to_thread(state.notifier.close)


async def request_error(request: Request, exc: RequestError):
    """A rejected request: its status and the problems, named by row and field."""
    return json_response(exc.body(), exc.status, exc.headers)


def _openapi(app: FastAPI):
    """FastAPI's schema plus the raw-row request body (validated by hand, not by FastAPI)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        body = app.state.adapter.json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(body.pop("$defs", {}))
        components[REQUEST_TITLE] = body
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The API over the champion of the configured MLflow store (settings from the environment
    when none are given)."""
    settings = settings or ServeSettings.from_env()
    metrics = ServeMetrics()
    app = FastAPI(title="AMHS failure prediction API", version="1", description=DESCRIPTION,
                  lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False},
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.store = ModelStore(settings, metrics)
    app.state.adapter = request_adapter(settings.max_rows)
    app.state.admission = Admission(settings.max_in_flight)
    app.state.threads = anyio.CapacityLimiter(settings.worker_threads)  # parsing and the model
    app.state.prediction_log = (
        PredictionLog(settings.predictions_dir, on_drop=lambda n: metrics.log_dropped.inc(n),
                      keep_days=settings.prediction_log_days)
        if settings.log_predictions else None)
    app.state.notifier = Notifier(settings.notify, on_result=metrics.notified,
                                  state_file=settings.episodes_file)
    app.include_router(router)
    app.include_router(reports_router)  # /dashboard, /evaluation, /drift, /assets/...
    app.add_exception_handler(RequestError, request_error)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    add_offline_docs(app)
    return app


DOCS_ASSETS = "/docs-assets"
# Swagger UI 5 (5.32.6 in fastapi-offline 1.7.7, pinned in pyproject.toml): FastAPI writes
# OpenAPI 3.1, which Swagger UI 4 refuses ("does not specify a valid version field")
SWAGGER_UI_FILES = importlib.resources.files("fastapi_offline") / "static"


def add_offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from files bundled with a Python package, not a CDN: fab networks are
    often closed to the internet, and a blank /docs there helps nobody."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(SWAGGER_UI_FILES)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")
