"""The endpoints of SPEC section 6 (+ /dashboard); state lives on `request.app.state`."""

from __future__ import annotations

import hmac

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import ClientDisconnect

from amhs_assets.serve.model_store import NoChampion, ReloadFailed
from amhs_assets.serve.schemas import (
    ErrorResponse,
    Health,
    ModelInfo,
    NoModel,
    PredictResponse,
    ReloadResult,
)
from amhs_assets.serve.validation import RequestError, validate_request

JSON = "application/json"
router = APIRouter()
bearer = HTTPBearer(auto_error=False, description="AMHS_API_TOKEN of the server")


def json_response(content: object, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON answer written by orjson."""
    return Response(orjson.dumps(content), status, headers=headers, media_type=JSON)


def error(status: int, detail: str, **extra: object) -> Response:
    """An ErrorResponse-shaped answer."""
    return json_response({"detail": detail, "errors": [], "error_count": 0, **extra}, status)


def no_model(request: Request) -> Response:
    """503 while no champion is loaded, with the last load error if there was one."""
    store = request.app.state.store
    return json_response({"detail": "no model loaded: no version of "
                          f"{store.settings.model_name!r} carries the alias "
                          f"{store.settings.alias!r} yet, or it is still loading",
                          "last_reload_error": store.last_reload_error}, 503)


def _responses(*codes: int) -> dict:
    """OpenAPI documentation of the error answers a route gives."""
    what = {400: "invalid JSON", 401: "missing or wrong bearer token",
            403: "reload disabled: no AMHS_API_TOKEN", 409: "no version carries the alias",
            413: "body or row count over the limit", 415: "not application/json",
            422: "rows that break the contract, named by row and field",
            502: "the champion failed to load; the served model stays"}
    out: dict = {c: {"model": ErrorResponse, "description": what[c]} for c in codes}
    out[503] = {"model": NoModel, "description": "no model loaded"}
    return out


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) past `limit` bytes: by Content-Length first, then while streaming."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != JSON and not kind.endswith("+json"):
        raise RequestError(415, f"Content-Type must be {JSON} (got {kind or 'none'})")
    declared = request.headers.get("content-length")
    too_big = RequestError(413, f"request body over {limit} bytes; send fewer rows per request")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError(400, "the client went away before the body was complete") from None
    return b"".join(chunks)


PREDICT_BODY = {"requestBody": {"required": True, "content": {
    JSON: {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}},
    "parameters": [{"name": "explain", "in": "query", "required": False,
                    "schema": {"type": "boolean", "default": False},
                    "description": "also return per line and horizon the raw columns that "
                                   "pushed the forecast most (`explain`)"}]}
TRUE_WORDS = ("1", "true", "yes", "on")


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter (?explain=true); absent is false, a word not understood is a
    400 naming it."""
    value = request.query_params.get(name)
    if value is None:
        return False
    if value.strip().lower() in TRUE_WORDS:
        return True
    if value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise RequestError(400, f"query parameter {name}={value!r}: expected true or false")


@router.post("/v1/predict", response_model=PredictResponse, openapi_extra=PREDICT_BODY,
             responses=_responses(400, 413, 415, 422), summary="Forecast every horizon per line")
async def predict(request: Request) -> Response:
    """Raw rows of one or more lines (at least the lookback each) -> each line's forecasts."""
    state = request.app.state
    served = state.store.current  # this request keeps this model, whatever a reload does
    if served is None:
        return no_model(request)
    body = await read_body(request, state.settings.max_body_bytes)
    lines, explain = validate_request(body, state.adapter, state.settings.max_rows,
                                      served.predictor.lookback)
    explain = explain or query_flag(request, "explain")
    predictions = served.predictor.predict_lines(lines, explain=explain)
    state.notifier.observe(served.ref, predictions)  # CRITICAL episodes -> webhooks, no waiting
    if state.prediction_log is not None:
        state.prediction_log.append(served.ref, predictions)
    state.metrics.predicted_lines.inc(len(predictions))
    return json_response({"model": served.ref, "predictions": predictions})


@router.get("/v1/model", response_model=ModelInfo, responses=_responses(),
            summary="The served model version")
async def model_info(request: Request) -> Response:
    """Name, version, alias, lookback, horizons, feature count, metrics and reload state."""
    store = request.app.state.store
    served = store.current
    if served is None:
        return no_model(request)
    return json_response({**served.info(), "last_reload_error": store.last_reload_error})


@router.get("/health", response_model=Health, responses=_responses(), summary="Liveness")
async def health(request: Request) -> Response:
    """200 with the model version when one is loaded, 503 when none is."""
    served = request.app.state.store.current
    if served is None:
        return no_model(request)
    return json_response({"status": "ok", "model": served.ref})


@router.post("/v1/reload", response_model=ReloadResult,
             responses=_responses(401, 403, 409, 502), summary="Load the current champion")
async def reload(request: Request,
                 credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Response:
    """Load the version the champion alias points at now; needs the bearer token."""
    token = request.app.state.settings.api_token
    if not token:
        return error(403, "POST /v1/reload is disabled: start the server with AMHS_API_TOKEN set")
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        return json_response({"detail": "missing or wrong bearer token: send "
                              "'Authorization: Bearer $AMHS_API_TOKEN'", "errors": [],
                              "error_count": 0}, 401, {"WWW-Authenticate": "Bearer"})
    try:
        status, served, previous = await run_in_threadpool(request.app.state.store.refresh, True)
    except NoChampion as exc:
        return error(409, f"{exc}; the served model (if any) stays")
    except ReloadFailed as exc:
        return error(502, f"{exc}; the served model (if any) stays")
    return json_response({"status": status, "model": served.ref, "previous_version": previous})


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(request: Request) -> Response:
    """Request counts and latency, the served version, reloads (Prometheus text format)."""
    m = request.app.state.metrics
    return Response(m.exposition(), media_type=m.content_type)


@router.get("/dashboard", response_class=FileResponse, summary="Monitoring dashboard",
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}},
                       404: {"model": ErrorResponse, "description": "no dashboard yet"}})
async def dashboard(request: Request) -> Response:
    """The monitoring dashboard ($AMHS_DATA_DIR/reports/dashboard.html) when it exists."""
    path = request.app.state.settings.dashboard_path
    if not path.is_file():
        return error(404, f"no dashboard at {path}: materialize the monitoring_dashboard asset")
    return FileResponse(path, media_type="text/html")
