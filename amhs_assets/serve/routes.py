"""The endpoints of SPEC section 6 (the report pages: reports.py); state lives on
`request.app.state`."""

from __future__ import annotations

import hmac

import anyio
import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from amhs_assets.redact import redact
from amhs_assets.serve.config import FALSE_WORDS, TRUE_WORDS
from amhs_assets.serve.known_lines import line_warnings, refuse_untrained, untrained_lines
from amhs_assets.serve.limits import JSON, read_body
from amhs_assets.serve.model_store import (
    LOAD_FAILED,
    LOADING,
    NoChampion,
    ReloadFailed,
    ServedModel,
)
from amhs_assets.serve.schemas import (
    ErrorResponse,
    Health,
    ModelInfo,
    NoModel,
    PredictResponse,
    ReloadResult,
)
from amhs_assets.serve.shape import check_shape
from amhs_assets.serve.validation import RequestError, validate_request

LOG_TOKEN_HEADER = "X-AMHS-Log-Token"
router = APIRouter()
bearer = HTTPBearer(auto_error=False, description="AMHS_API_TOKEN of the server")


def json_response(content: object, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON answer written by orjson."""
    return Response(orjson.dumps(content), status, headers=headers, media_type=JSON)


def error(status: int, detail: str, **extra: object) -> Response:
    """An ErrorResponse-shaped answer (secrets in the detail masked)."""
    return json_response({"detail": redact(detail), "errors": [], "error_count": 0, **extra},
                         status)


def no_model(request: Request) -> Response:
    """503 while no champion is served: why (the store's state), and the last load error."""
    store = request.app.state.store
    state, name, alias = store.state, store.settings.model_name, store.settings.alias
    if state == LOADING:
        why = f"the version of {name!r} that carries the alias {alias!r} is still loading"
    elif state == LOAD_FAILED:
        why = (f"the version of {name!r} that carries the alias {alias!r} failed to load "
               "(last_reload_error); fix or move the alias, then POST /v1/reload")
    else:
        why = f"no version of {name!r} carries the alias {alias!r} yet"
    return json_response({"detail": f"no model loaded: {why}", "state": state,
                          "last_reload_error": store.last_reload_error}, 503)


def _responses(*codes: int) -> dict:
    """OpenAPI documentation of the error answers a route gives."""
    what = {400: "invalid JSON", 401: "missing or wrong bearer token",
            403: "reload disabled: no AMHS_API_TOKEN", 409: "no version carries the alias",
            408: "the body did not arrive in time", 413: "body, row or row count over a limit",
            415: "not application/json",
            422: "rows that break the contract, named by row and field",
            502: "the champion failed to load; the served model stays"}
    out: dict = {c: {"model": ErrorResponse, "description": what[c]} for c in codes}
    out[503] = {"model": NoModel, "description": "no model loaded (or, on /v1/predict, too "
                                                 "many requests at once: retry after Retry-After)"}
    return out


PREDICT_BODY = {"requestBody": {"required": True, "content": {
    JSON: {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}},
    "parameters": [{"name": "explain", "in": "query", "required": False,
                    "schema": {"type": "boolean", "default": False},
                    "description": "also return per line and horizon the raw columns that "
                                   "pushed the forecast most (`explain`)"},
                   {"name": "X-AMHS-Log-Token", "in": "header", "required": False,
                    "schema": {"type": "string"},
                    "description": "with AMHS_LOG_TOKEN set on the server, only requests "
                                   "carrying it are logged for monitoring and notified"}]}


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter (?explain=true); absent is false, a word not understood is a
    400 naming it."""
    value = request.query_params.get(name)
    if value is None:
        return False
    if value.strip().lower() in TRUE_WORDS:
        return True
    if value.strip().lower() in (*FALSE_WORDS, ""):
        return False
    raise RequestError(400, f"query parameter {name}={value!r}: expected true or false")


@router.post("/v1/predict", response_model=PredictResponse, openapi_extra=PREDICT_BODY,
             responses=_responses(400, 408, 413, 415, 422), summary="Forecast every horizon per line")
async def predict(request: Request) -> Response:
    """Raw rows of one or more lines (at least the lookback each) -> each line's forecasts."""
    state = request.app.state
    served = state.store.current  # this request keeps this model, whatever a reload does
    if served is None:
        return no_model(request)
    settings = state.settings
    explain = query_flag(request, "explain")
    with state.admission.slot():  # 503 + Retry-After when AMHS_MAX_IN_FLIGHT are busy
        body = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
        # parsing, checks and the model are CPU work: off the event loop, so /health answers
        predictions, content = await anyio.to_thread.run_sync(
            forecast, state, served, body, explain, limiter=state.threads)
    if feeds_monitoring(request):
        state.notifier.observe(served.ref, predictions)  # CRITICAL episodes -> webhooks
        if state.prediction_log is not None:
            state.prediction_log.append(served.ref, predictions)
    else:
        state.metrics.unlogged.inc(len(predictions))
    state.metrics.predicted_lines.inc(len(predictions))
    return Response(content, media_type=JSON)


def forecast(state, served: ServedModel, body: bytes, explain: bool) -> tuple[list[dict], bytes]:
    """A body's predictions and the answer's JSON (in a worker thread): the shape is checked
    before pydantic parses, the rows before the model runs."""
    settings = state.settings
    spans = check_shape(body, settings.max_row_keys, settings.max_row_bytes, settings.max_rows)
    lines, asked = validate_request(body, state.adapter, settings.max_rows,
                                    served.predictor.lookback, spans)
    unknown = untrained_lines(served.predictor, lines)
    if unknown:
        state.metrics.untrained_lines.inc(len(unknown))
        if settings.strict_lines:
            raise refuse_untrained(served.predictor, unknown)
    predictions = served.predictor.predict_lines(lines, explain=explain or asked)
    return predictions, orjson.dumps({"model": served.ref, "predictions": predictions,
                                      "warnings": line_warnings(served.predictor, unknown)})


def feeds_monitoring(request: Request) -> bool:
    """Whether this request's predictions go to the prediction log and the webhooks: always
    without AMHS_LOG_TOKEN; with it, only when the request carries it (X-AMHS-Log-Token)."""
    token = request.app.state.settings.log_token
    if not token:
        return True
    given = request.headers.get(LOG_TOKEN_HEADER, "")
    return hmac.compare_digest(given.encode(), token.encode())


@router.get("/v1/model", response_model=ModelInfo, responses=_responses(),
            summary="The served model version")
async def model_info(request: Request) -> Response:
    """Name, version, alias, lookback, horizons, feature count, metrics and reload state."""
    store = request.app.state.store
    served = store.current
    if served is None:
        return no_model(request)
    return json_response({**served.info(), "last_reload_error": store.last_reload_error})


@router.get("/health", response_model=Health, responses=_responses(), summary="Health")
async def health(request: Request) -> Response:
    """200 with the model version when one is served; 503 when none is, with its `state`:
    `loading`, `no_champion` or `load_failed`. Answers at once, whatever is in progress."""
    served = request.app.state.store.current
    if served is None:
        return no_model(request)
    return json_response({"status": "ok", "state": "ready", "model": served.ref})


@router.get("/ready", response_model=Health, responses=_responses(), summary="Readiness")
async def ready(request: Request) -> Response:
    """For an orchestrator's readiness probe: 200 only while a model is served (send traffic),
    503 with the `state` otherwise (loading, no_champion, load_failed: do not)."""
    return await health(request)


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

