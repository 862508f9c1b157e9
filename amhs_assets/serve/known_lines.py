"""Lines the served version was not trained on: a warning each in the answer, or, with
AMHS_STRICT_LINES, a 422 that names them.

The model's features carry no line id, so an unseen line gets a forecast made of other lines'
behaviour; the answer says so instead of passing it off as one like the others. A version
registered before its training lines were recorded (predictor.json without `line_ids`) knows
none: its answers carry no such warning.
"""

from __future__ import annotations

from amhs_assets.registry.predictor import AmhsPredictor, LineRows
from amhs_assets.serve.validation import RequestError, problem, rejected

UNTRAINED_LINE = "untrained_line"  # the code of a warning about such a line


def untrained_lines(predictor: AmhsPredictor, lines: list[LineRows]) -> list[str]:
    """The request's line ids that the version's training data did not hold, in request order
    (none when the version did not record its lines)."""
    known = predictor.line_ids
    if known is None:
        return []
    return [rows.line_id for rows in lines if rows.line_id not in known]


def _message(line_id: str, predictor: AmhsPredictor) -> str:
    known = sorted(predictor.line_ids or ())
    shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
    return (f"the model was not trained on line {line_id!r} (it knows {shown}); its forecast "
            "comes from other lines' behaviour: retrain with this line's logs to trust it")


def line_warnings(predictor: AmhsPredictor, unknown: list[str]) -> list[dict]:
    """One warning object per untrained line: {"code", "line_id", "message"}."""
    return [{"code": UNTRAINED_LINE, "line_id": line_id, "message": _message(line_id, predictor)}
            for line_id in unknown]


def refuse_untrained(predictor: AmhsPredictor, unknown: list[str]) -> RequestError:
    """The 422 of a request with untrained lines under AMHS_STRICT_LINES, naming each line."""
    items = [problem(None, "line_id", _message(line_id, predictor) + " (AMHS_STRICT_LINES is on)",
                     line_id) for line_id in unknown]
    return rejected(422, items)
