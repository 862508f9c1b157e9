"""A cheap look at a request body's JSON structure before any parser builds it: `check_shape`.

pydantic-core parses the whole body, then copies a row into every error about it: one row of
10^6 keys missing the 32 columns cost 22 s and 3.5 GB. numpy finds the structure instead (string
spans from the quotes, depth from the brackets; its loops release the GIL), and a body whose rows
are too large, whose objects hold too many keys or whose rows array is too long is refused
before the parser sees it. Bodies that are not well-formed JSON pass: the parser reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amhs_assets.serve.validation import RequestError

MAX_DEPTH = 64  # a request is 3 deep ({"rows": [{...}]}); a nested extra column adds a few
ROW_DEPTH = 3  # containers at this depth are the rows
_QUOTE, _BACKSLASH, _COLON, _COMMA = 34, 92, 58, 44
_OPEN, _CLOSE = (123, 91), (125, 93)  # { [ and } ]


def _unescaped(a: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """`positions` without the quotes escaped by an odd run of backslashes before them."""
    slashes = np.flatnonzero(a == _BACKSLASH)
    starts = slashes[np.r_[True, np.diff(slashes) != 1]]
    ends = slashes[np.r_[np.diff(slashes) != 1, True]] + 1  # one past each run
    escaped = ends[(ends - starts) % 2 == 1]
    return positions[~np.isin(positions, escaped)]


def _any(kind: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    """Where kind is one of the values."""
    out = kind == values[0]
    for value in values[1:]:
        out |= kind == value
    return out


def _structure(body: bytes) -> tuple[np.ndarray, ...] | None:
    """(byte position, byte, depth after it, opens, closes) of each bracket, colon and comma
    outside strings, or None when the body is not balanced JSON."""
    a = np.frombuffer(body, np.uint8)
    where = np.flatnonzero(_any(a, (_QUOTE, _COLON, _COMMA, *_OPEN, *_CLOSE)))
    if body.find(b"\\") >= 0:
        where = _unescaped(a, where)
    kind = a.take(where)
    quote = kind == _QUOTE
    outside = (np.cumsum(quote, dtype=np.int32) & 1) == 0  # an even number of quotes so far
    if not outside[-1:].all():
        return None  # a string never closed
    keep = np.flatnonzero(outside & ~quote)
    where, kind = where.take(keep), kind.take(keep)
    opens, closes = _any(kind, _OPEN), _any(kind, _CLOSE)
    depth = np.cumsum(opens, dtype=np.int32)
    depth -= np.cumsum(closes, dtype=np.int32)
    if not len(depth) or depth.min() < 0 or depth[-1] != 0:
        return None
    return where, kind, depth, opens, closes


@dataclass(frozen=True)
class RowSpans:
    """Where each row of a body {"rows": [row, ...], ...} lies: body[starts[i]:ends[i]]."""

    starts: np.ndarray
    ends: np.ndarray


def check_shape(body: bytes, max_keys: int, max_row_bytes: int, max_rows: int
                ) -> RowSpans | None:
    """Refuse (413) a body with a row (or the body itself) of more than `max_keys` keys, a row
    of more than `max_row_bytes` bytes or more than `max_rows` rows (0: that limit is off).

    Returns the rows' byte spans when the body was scanned and holds one array of containers
    only (what `validation.parse_request` can check a piece at a time), else None."""
    if (not max_keys or body.count(b":") <= max_keys) and (
            not max_row_bytes or len(body) <= max_row_bytes) and (
            not max_rows or body.count(b",") < max_rows):
        return None  # too small to break any limit: no scan
    found = _structure(body)
    if found is None:
        return None
    where, kind, depth, opens, closes = found
    if depth.max() > MAX_DEPTH:
        raise RequestError(413, f"JSON nested more than {MAX_DEPTH} deep; a row is a flat "
                                "object of the contract's columns")
    in_rows = depth == ROW_DEPTH  # rows' own keys, and the opening of each row
    separators = np.count_nonzero((kind == _COMMA) & (depth == ROW_DEPTH - 1))
    if max_rows and separators >= max_rows:
        raise RequestError(413, f"too many rows: at most {max_rows} per request; split the lines "
                                "over several requests (AMHS_MAX_ROWS)")
    first = np.flatnonzero(opens & in_rows)  # token index of each row's { (or [)
    last = np.flatnonzero(closes & (depth == ROW_DEPTH - 1))  # and of its } (or ])
    if max_keys:
        colon = kind == _COLON
        own = np.count_nonzero(colon & (depth < ROW_DEPTH))  # keys of the body itself
        if own > max_keys:
            raise RequestError(413, f"{own} keys outside the rows, at most {max_keys} "
                                    '(AMHS_MAX_ROW_KEYS); the body is {"rows": [...]}')
        keys = np.cumsum(colon & in_rows, dtype=np.int32)
        counts = keys.take(last) - keys.take(first)
        bad = np.flatnonzero(counts > max_keys)
        if len(bad):
            raise _row_error(int(bad[0]), f"{int(counts[bad[0]])} keys, at most {max_keys} "
                             "per row (AMHS_MAX_ROW_KEYS); the contract has 32 columns")
    if max_row_bytes:
        sizes = where.take(last) + 1 - where.take(first)
        big = np.flatnonzero(sizes > max_row_bytes)
        if len(big):
            raise _row_error(int(big[0]), f"{int(sizes[big[0]])} bytes of JSON, at most "
                             f"{max_row_bytes} per row (AMHS_MAX_ROW_BYTES)")
    outer = np.flatnonzero(opens & (depth == ROW_DEPTH - 1))
    one_array = len(outer) == 1 and kind[outer[0]] == _OPEN[1]
    if one_array and len(first) == separators + 1:  # nothing but containers in it
        return RowSpans(where.take(first), where.take(last) + 1)
    return None


def _row_error(row: int, what: str) -> RequestError:
    """A 413 naming the row."""
    return RequestError(413, f"row {row}: {what}",
                        [{"row": row, "line_id": None, "field": None, "message": what}], 1)
