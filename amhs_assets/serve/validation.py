"""A POST /v1/predict body (bytes) to validated numpy arrays per line, or a 4xx naming row and field.

Two passes: pydantic-core parses and checks types, ranges and the line_id pattern in one go
(schemas.request_adapter); numpy then checks what is vectorised best: integer columns hold
integers, timestamps sit at the start of a minute, the cross-column rules, duplicate minutes,
and each line's lookback history (with short gaps filled as the cleaning does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from datetime import timezone
from operator import itemgetter
from typing import Any, Union

import numpy as np
from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict

from amhs_assets.contract import (
    CROSS_COLUMN_RULES,
    INTEGER_COLUMNS,
    NUMERIC_COLUMNS,
    TRANSFER_TIME_COLUMNS,
)
from amhs_assets.registry.predictor import InputError, LineRows, window_of
from amhs_assets.serve.schemas import request_adapter

MAX_ERRORS = 20  # problems listed in one answer; error_count says how many there were
# pydantic-core holds the GIL while it parses: a large body is checked a piece at a time so that
# the event loop (/health) gets a turn between pieces
PIECE_BYTES = 256 * 1024
_VALUES = itemgetter(*NUMERIC_COLUMNS)
_INT_POS = np.array([NUMERIC_COLUMNS.index(c) for c in INTEGER_COLUMNS])
# the span pandas (hence the cleaning) can hold: 1678-01-01 .. 2262-01-01, in epoch minutes
MIN_MINUTE, MAX_MINUTE = -153_424_800, 153_420_480
_UTC = timezone.utc


class RequestError(Exception):
    """A request the API rejects: HTTP status, a one-line summary and the first problems."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None,
                 count: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.errors = errors or []
        self.count = count if count is not None else len(self.errors)
        self.headers = headers  # e.g. Retry-After of a 503, Connection: close

    def body(self) -> dict:
        """The ErrorResponse document."""
        return {"detail": self.detail, "errors": self.errors[:MAX_ERRORS],
                "error_count": self.count}


def _shown(value: object) -> str:
    """A value as it reads in a message: repr, cut at 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def problem(row: int | None, field: str | None, message: str, line_id: str | None = None) -> dict:
    """One error item."""
    return {"row": row, "line_id": line_id, "field": field, "message": message}


def rejected(status: int, items: list[dict], count: int | None = None) -> RequestError:
    """A RequestError whose summary names the first problem's row and field."""
    first = items[0]
    where = ", ".join(part for part in (
        f"row {first['row']}" if first["row"] is not None else None,
        f"line {first['line_id']!r}" if first["line_id"] is not None else None,
        f"field {first['field']!r}" if first["field"] else None) if part)
    count = count if count is not None else len(items)
    more = f" (and {count - 1} more problem(s))" if count > 1 else ""
    return RequestError(status, f"{where + ': ' if where else ''}{first['message']}{more}",
                        items, count)


# --- pass 1: pydantic ---------------------------------------------------------------------

class _LineOnly(TypedDict, total=False):
    """What the error path reads of each row: its line_id, whatever its type."""

    line_id: Any


class _Outline(TypedDict, total=False):
    """A rejected body, read cheaply: one small dict per row, everything else skipped."""

    rows: list[Union[_LineOnly, Any]]


_OUTLINE = TypeAdapter(_Outline)


def _outline(body: bytes) -> list:
    """The rows of a rejected body (line_id only), or [] when they cannot be read."""
    try:
        return _OUTLINE.validate_json(body).get("rows", [])
    except ValidationError:
        return []


def _line_of(rows: list, i: object) -> str | None:
    """The line_id of row i of a rejected body, when there is a readable one."""
    row = rows[i] if isinstance(i, int) and 0 <= i < len(rows) else None
    line = row.get("line_id") if isinstance(row, dict) else None
    return line if isinstance(line, str) else None


def _from_pydantic(exc: ValidationError, body: bytes, max_rows: int, offset: int = 0
                   ) -> RequestError:
    """Map pydantic's errors to a 400 (JSON), 413 (too many rows) or 422 (rows); the rows of
    `body` are rows offset.. of the request."""
    errors = exc.errors(include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return RequestError(400, f"invalid JSON: {errors[0]['msg']}")
    rows = _outline(body)
    if len(rows) > max_rows or any(e["type"] == "too_long" and e["loc"] == ("rows",)
                                   for e in errors):
        return RequestError(413, f"too many rows: at most {max_rows} per request; "
                                 "split the lines over several requests")
    items = []
    for e in errors[:MAX_ERRORS]:
        loc = e["loc"]
        if not loc:
            items.append(problem(None, None, 'the body must be a JSON object {"rows": [...]}'))
            continue
        row = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        field = str(loc[2]) if len(loc) > 2 else ("rows" if row is None else None)
        got = "" if e["type"] == "missing" else f" (got {_shown(e.get('input'))})"
        items.append(problem(None if row is None else row + offset, field, f"{e['msg']}{got}",
                             _line_of(rows, row)))
    return rejected(422, items, len(errors))


def parse_request(body: bytes, adapter: TypeAdapter, max_rows: int, spans=None) -> dict:
    """A body, its rows typed and range-checked by pydantic, or a RequestError; with the rows'
    byte spans (shape.RowSpans: at most max_rows rows, checked), a large body a piece at a time."""
    if spans is not None and len(body) > 2 * PIECE_BYTES:
        return _parse_in_pieces(body, spans, max_rows)
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        raise _from_pydantic(exc, body, max_rows) from None


@functools.cache
def _piece_adapters() -> tuple[TypeAdapter, TypeAdapter]:
    """Validators of the body without its rows ({"rows": [], ...}) and of {"rows": [some]}."""
    return request_adapter(None, row=Any, min_rows=0), request_adapter(None, min_rows=0)


def _parse_in_pieces(body: bytes, spans, max_rows: int) -> dict:
    """parse_request of a body whose rows lie at spans: the rest of the body, then the rows in
    pieces of about PIECE_BYTES (errors name the same rows and fields as in one piece)."""
    outer, rows_adapter = _piece_adapters()
    rest = body[:spans.starts[0]] + body[spans.ends[-1]:]
    try:
        request = outer.validate_json(rest)
    except ValidationError as exc:
        raise _from_pydantic(exc, rest, max_rows) from None
    if request["rows"] != []:  # the array found was not the rows
        raise RequestError(422, 'the body must be a JSON object {"rows": [...]}')
    cuts = np.searchsorted(spans.starts, np.arange(0, len(body), PIECE_BYTES)[1:])
    rows: list = []
    for a, b in zip([0, *np.unique(cuts)], [*np.unique(cuts), len(spans.starts)]):
        if a == b:
            continue
        piece = b'{"rows":[' + body[spans.starts[a]:spans.ends[b - 1]] + b"]}"
        try:
            rows += rows_adapter.validate_json(piece)["rows"]
        except ValidationError as exc:
            raise _from_pydantic(exc, piece, max_rows, offset=int(a)) from None
    request["rows"] = rows
    return request


def parse_rows(body: bytes, adapter: TypeAdapter, max_rows: int) -> list[dict]:
    """Rows of a body, typed and range-checked by pydantic, or a RequestError."""
    return parse_request(body, adapter, max_rows)["rows"]


# --- pass 2: numpy --------------------------------------------------------------------------

def _presence_broken(c: dict[str, np.ndarray]) -> np.ndarray:
    """Transfer times present exactly when jobs_completed > 0 (NaN jobs_completed passes)."""
    done = c["jobs_completed"] > 0
    times = np.stack([c[name] for name in TRANSFER_TIME_COLUMNS])
    present, absent = ~np.isnan(times).any(axis=0), np.isnan(times).all(axis=0)
    return ~np.isnan(c["jobs_completed"]) & ~((done == present) & (done | absent))


def _greater(a: str, b: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Broken where a > b (NaN on either side passes, as in the contract's rules)."""
    return lambda c: c[a] > c[b]


# the contract's CROSS_COLUMN_RULES on numpy columns: True where the rule is broken
NUMPY_RULES: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    "vehicles_active <= vehicles_total": _greater("vehicles_active", "vehicles_total"),
    "vehicles_down <= vehicles_total": _greater("vehicles_down", "vehicles_total"),
    "transfer_time_min_s <= transfer_time_avg_s": _greater("transfer_time_min_s",
                                                           "transfer_time_avg_s"),
    "transfer_time_avg_s <= transfer_time_max_s": _greater("transfer_time_avg_s",
                                                           "transfer_time_max_s"),
    "transfer times present exactly when jobs_completed > 0": _presence_broken,
}
assert set(NUMPY_RULES) == {name for name, _, _ in CROSS_COLUMN_RULES}, \
    "every cross-column rule of the contract needs its numpy form here"


def _number(v: float) -> str:
    """A value as a message shows it."""
    return "null" if np.isnan(v) else f"{v:g}"


Check = tuple[np.ndarray, str, Callable[[int], str]]  # rows that break it, field, message of a row


def _value_checks(values: np.ndarray, seconds: np.ndarray) -> Iterator[Check]:
    """Integer columns hold integers, timestamps sit on a minute, the cross-column rules hold."""
    for j, name in enumerate(INTEGER_COLUMNS):
        col = values[:, _INT_POS[j]]
        yield np.flatnonzero(np.mod(col, 1) != 0), name, lambda r, c=col: f"not an integer (got {c[r]:g})"
    yield (np.flatnonzero(seconds % 60 != 0), "timestamp",
           lambda r: "not at the start of a minute (seconds must be 0)")
    yield (np.flatnonzero((seconds < MIN_MINUTE * 60) | (seconds > MAX_MINUTE * 60)), "timestamp",
           lambda r: "outside the years 1678..2261")
    columns = {name: values[:, k] for k, name in enumerate(NUMERIC_COLUMNS)}
    for name, fields, _ in CROSS_COLUMN_RULES:
        def message(r: int, name: str = name, fields: tuple = fields) -> str:
            shown = ", ".join(f"{f}={_number(columns[f][r])}" for f in fields)
            return f"rule broken: {name} ({shown})"

        yield np.flatnonzero(NUMPY_RULES[name](columns)), fields[0], message


def _duplicate_check(order: np.ndarray, codes: np.ndarray, minutes: np.ndarray) -> Check:
    """Rows repeating a line's minute (`order` sorts rows by line and minute)."""
    same = (codes[order][1:] == codes[order][:-1]) & (minutes[order][1:] == minutes[order][:-1])
    rows, first = order[1:][same], order[:-1][same]
    by_row = np.argsort(rows, kind="stable")
    partner = dict(zip(rows[by_row][:MAX_ERRORS].tolist(), first[by_row][:MAX_ERRORS].tolist()))
    return (rows[by_row], "timestamp",
            lambda r: f"duplicate minute: the same line and minute as row {partner[r]}")


def _raise_if_broken(checks: Iterable[Check], ids: list[str]) -> None:
    """A 422 listing the first problems in row order (messages only for those), all counted."""
    checks = list(checks)
    total = sum(len(rows) for rows, _, _ in checks)
    if not total:
        return
    first = sorted((int(r), k) for k, (rows, _, _) in enumerate(checks) for r in rows[:MAX_ERRORS])
    items = [problem(r, checks[k][1], checks[k][2](r), ids[r]) for r, k in first[:MAX_ERRORS]]
    raise rejected(422, items, total)


def to_lines(rows: list[dict], lookback: int) -> list[LineRows]:
    """Validated rows to one LineRows per line (sorted by minute), every check passed."""
    values = np.array([_VALUES(r) for r in rows], dtype=np.float64)  # null -> NaN
    seconds = np.fromiter(((d if d.tzinfo else d.replace(tzinfo=_UTC)).timestamp()
                           for d in (r["timestamp"] for r in rows)), np.float64, len(rows))
    ids = [r["line_id"] for r in rows]
    _raise_if_broken(_value_checks(values, seconds), ids)
    names, codes = np.unique(np.array(ids, dtype=object), return_inverse=True)
    minutes = (seconds // 60).astype(np.int64)
    order = np.lexsort((minutes, codes))
    _raise_if_broken([_duplicate_check(order, codes, minutes)], ids)
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    lines = [LineRows(str(names[k]), minutes[order[a:b]], values[order[a:b]])
             for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
    check_history(lines, lookback)
    return lines


def check_history(lines: list[LineRows], lookback: int) -> None:
    """Every line covers the lookback ending at its latest row, gaps short enough to fill."""
    items = []
    for line in lines:
        try:
            window_of(line, lookback)
        except InputError as exc:
            message = str(exc).removeprefix(f"line {line.line_id!r}: ")
            items.append(problem(None, "timestamp", f"{message}; send at least {lookback} "
                                 "consecutive minutes per line", line.line_id))
    if items:
        raise rejected(422, items)


def validate_body(body: bytes, adapter: TypeAdapter, max_rows: int, lookback: int
                  ) -> list[LineRows]:
    """A request body to lines ready for AmhsPredictor.predict_lines, or a RequestError."""
    return validate_request(body, adapter, max_rows, lookback)[0]


def validate_request(body: bytes, adapter: TypeAdapter, max_rows: int, lookback: int,
                     spans=None) -> tuple[list[LineRows], bool]:
    """A request body to lines ready for AmhsPredictor.predict_lines and whether it asks for
    explanations (its `explain` field), or a RequestError (`spans`: see parse_request)."""
    request = parse_request(body, adapter, max_rows, spans)
    return to_lines(request["rows"], lookback), bool(request.get("explain", False))
