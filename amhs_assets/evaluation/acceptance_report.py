"""The evaluation report's Acceptance section: the policy stated once, each bar with the
candidate's value and pass or fail (the only pass/fail colours of the page; the fab's V8
figures stay a neutral reference in the summary). Pure functions over evaluation.json."""

from __future__ import annotations

from typing import Callable

from amhs_assets.evaluation.acceptance import describe, verdict
from amhs_assets.html import esc, note

CSS = (".pass{color:#00734f;font-weight:600}.fail{color:#b34700;font-weight:600}"
       ".unmeasured{color:#666}")
OUTCOMES = {True: ("pass", "pass"), False: ("fail", "FAIL"), None: ("unmeasured", "not measured")}


def acceptance_html(evaluation: dict, table: Callable, name_cell: Callable) -> str:
    """The policy in one sentence, the verdict on the candidate, one row per bar and horizon."""
    rows = evaluation.get("acceptance")
    if rows is None:
        return note("This evaluation was not judged against acceptance bars (written before "
                    "they existed, or by another program).")
    candidate = (evaluation.get("candidate") or {}).get("source", "the candidate")
    statement = describe(evaluation.get("acceptance_policy") or {})
    head = (f'<p id="acceptance-policy">A candidate becomes challenger (and may then be promoted) '
            f"only if it meets every bar: {esc(statement)} (settings <code>acceptance:</code>). "
            "One that fails any bar is registered without the challenger alias, with the failed "
            "bars in its <code>promotion_reason</code>. The fab's V8 figures in the summary are a "
            "reference on the fab's own metric, not a bar.</p>")
    passed = evaluation.get("accepted")
    css, word = OUTCOMES[bool(passed) if passed is not None else None]
    verdict_line = (f'<p id="acceptance-verdict">Candidate <b>{esc(candidate)}</b>: '
                    f'<span class="{css}">{"accepted" if passed else "not accepted"}</span> '
                    f"({esc(verdict(rows))}).</p>")
    body = []
    for r in rows:
        css, word = OUTCOMES[r.get("passed")]
        value = r.get("value")
        body.append([name_cell(r.get("name")), f"<td>{esc(r.get('horizon'))} min</td>",
                     f"<td>{'—' if value is None else format(value, '.4g')}</td>",
                     f"<td>{format(r.get('bar'), '.4g')}</td>", name_cell(r.get("rule")),
                     f'<td class="{css}">{word}</td>'])
    return "\n".join([head, verdict_line,
                      table(["bar", "horizon", "value", "bar value", "rule", "result"], 1, body)])
