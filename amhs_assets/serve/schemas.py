"""Request and response models of the REST API, the row model generated from the contract.

The row model is a TypedDict (validated in Rust by pydantic-core, no object per row): types,
ranges and the line_id pattern come from `contract.COLUMNS`. Integrality, the cross-column
rules, timestamps at the start of a minute and duplicates are checked on numpy arrays in
`validation`, with the same row/field messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, TypeAdapter
from typing_extensions import NotRequired, TypedDict

from amhs_assets.contract import (
    COLUMNS,
    CROSS_COLUMN_RULES,
    LINE_ID_PATTERN,
    TRANSFER_TIME_COLUMNS,
    ColumnSpec,
)
from amhs_assets.documents import LineForecast

ROW_TITLE = "RawRow"
REQUEST_TITLE = "PredictRequest"


def _description(spec: ColumnSpec) -> str:
    """What the column means and its unit, as the docs show it."""
    unit = f" [{spec.unit}]" if spec.unit and spec.unit != spec.kind else ""
    return f"{spec.meaning}{unit}".strip()


def column_type(spec: ColumnSpec) -> Any:
    """The pydantic type of one contract column: strict types, ranges, the line_id pattern."""
    if spec.kind == "datetime":
        return Annotated[datetime, Strict(), Field(
            description="ISO 8601 start of the minute; naive means UTC, an offset is converted",
            examples=["2026-03-01T08:00:00Z"])]
    if spec.kind == "str":
        return Annotated[str, Strict(), Field(pattern=LINE_ID_PATTERN, min_length=1,
                                              max_length=64, description=_description(spec))]
    extra = {"type": "integer"} if spec.kind in ("int", "flag") else None
    number = Annotated[float, Strict(), Field(
        ge=spec.low, le=spec.high, allow_inf_nan=False, description=_description(spec),
        json_schema_extra=extra)]
    if spec.name in TRANSFER_TIME_COLUMNS:
        return Annotated[number | None, Field(description=_description(spec)
                                              + "; null when jobs_completed = 0")]
    return number


def row_model() -> type:
    """The 32-column raw row (SPEC section 1) as a TypedDict; extra keys are ignored."""
    rules = "; ".join(name for name, _, _ in CROSS_COLUMN_RULES)
    row = TypedDict(ROW_TITLE, {c.name: column_type(c) for c in COLUMNS})  # type: ignore[misc]
    row.__doc__ = f"One line's minute of raw log (SPEC section 1). Cross-column rules: {rules}."
    row.__pydantic_config__ = ConfigDict(title=ROW_TITLE)  # type: ignore[attr-defined]
    return row


def request_adapter(max_rows: int | None, row: Any = None, min_rows: int = 1) -> TypeAdapter:
    """Validator of a POST /v1/predict body: {"rows": [min_rows..max_rows raw rows]} (`row`:
    another item type, e.g. Any for a body whose rows are checked apart)."""
    # fail_fast: a body of many bad rows costs one row's errors, not millions of error objects
    rows = Annotated[list[row or row_model()], Field(  # type: ignore[misc]
        min_length=min_rows, max_length=max_rows, fail_fast=True,
        description="rows of one or more lines, at least the model's lookback per line, any order")]
    explain = NotRequired[Annotated[bool, Strict(), Field(
        description="also return, per line and horizon, the raw columns that pushed the "
                    "forecast most (`explain`); the same as the query `?explain=true`")]]
    body = TypedDict(REQUEST_TITLE, {"rows": rows, "explain": explain})  # type: ignore[misc]
    body.__pydantic_config__ = ConfigDict(title=REQUEST_TITLE)  # type: ignore[attr-defined]
    return TypeAdapter(body)


# --- responses (documented in the OpenAPI schema; written with orjson) ------------------------

class ModelRef(BaseModel):
    """The model version that answered."""

    name: str
    version: str
    alias: str


class PredictWarning(BaseModel):
    """Something the answer holds that the model was not made for (the 200 stands)."""

    code: Literal["untrained_line"] = Field(
        description="untrained_line: the served version's training data held no rows of this "
                    "line (versions that did not record their lines never say so)")
    line_id: str
    message: str


class PredictResponse(BaseModel):
    """Answer of POST /v1/predict (SPEC section 6)."""

    model_config = ConfigDict(protected_namespaces=())
    model: ModelRef
    predictions: list[LineForecast]
    warnings: list[PredictWarning] = Field(
        [], description="one per line the model was not trained on (empty when none); with "
                        "AMHS_STRICT_LINES such a request is a 422 instead")


class ErrorItem(BaseModel):
    """One problem of a request, located as precisely as it can be."""

    row: int | None = Field(None, description="0-based position in `rows`")
    line_id: str | None = None
    field: str | None = None
    message: str


class ErrorResponse(BaseModel):
    """A rejected request: a summary naming row and field, and the first problems found (type
    and range errors stop at the first bad row)."""

    detail: str
    errors: list[ErrorItem] = []
    error_count: int = 0


class ModelInfo(BaseModel):
    """GET /v1/model: the loaded version and how it was made."""

    model_config = ConfigDict(protected_namespaces=())
    name: str
    version: str
    alias: str
    lookback_minutes: int
    horizons: list[int]
    feature_count: int
    feature_version: str | None = None
    line_ids: list[str] | None = Field(
        None, description="the lines of its training data; null: not recorded (older versions)")
    run_id: str | None = None
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    loaded_at: str
    last_reload_error: str | None = None


class NoModel(BaseModel):
    """503: no champion is served, and why (`state`)."""

    detail: str
    state: Literal["loading", "no_champion", "load_failed"] = Field(
        description="loading: the first look at the alias or a load is in progress; "
                    "no_champion: no version carries the alias; load_failed: its version "
                    "failed to load (last_reload_error)")
    last_reload_error: str | None = None


class Health(BaseModel):
    """GET /health and GET /ready when a model is served."""

    status: Literal["ok"]
    state: Literal["ready"]
    model: ModelRef


class ReloadResult(BaseModel):
    """POST /v1/reload: what is served now."""

    status: Literal["reloaded", "unchanged"]
    model: ModelRef
    previous_version: str | None = None
