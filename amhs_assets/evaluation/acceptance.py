"""The acceptance policy, stated once: the bars a model's test metrics must meet to be served
(no MLflow, no Dagster). The evaluation judges its candidate with them (evaluation.json's
``acceptance`` and ``accepted``), registration makes only an accepted candidate challenger, and
`amhs run` says whether the champion meets them.

Each bar applies at every horizon, on the test window: avg MAE at least ``mae_vs_persistence``
below persistence's (and, when set, under ``max_avg_mae_s``), R² of avg, state accuracy and
CRITICAL recall at the operating point at or above their floors. A metric the test window cannot
measure (no CRITICAL minute: recall undefined) is recorded with ``passed: null`` and does not
fail the model. The fab's V8 figures are a reference on the fab's own metric, never a bar here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from amhs_assets.config import setting


@dataclass(frozen=True)
class AcceptanceConfig:
    """The bars a model's test metrics must meet, at every horizon, to become challenger."""

    mae_vs_persistence: float = setting(
        0.05, "avg MAE must be at least this share below persistence's at each horizon "
              "(0.05: 5 % smaller error than carrying the current value forward)")
    max_avg_mae_s: float | None = setting(
        None, "avg MAE must be at most this many seconds at each horizon (none: no absolute bar; "
              "the scale of the transfer times is the site's)")
    min_avg_r2: float = setting(0.25, "R² of the avg transfer time at least this at each horizon")
    min_state_accuracy: float = setting(
        0.60, "state accuracy at least this at each horizon (the operating point trades "
              "accuracy for CRITICAL recall: a good model's is often below persistence's)")
    min_critical_recall: float = setting(
        0.35, "CRITICAL recall at the operating point at least this at each horizon (the share "
              "of CRITICAL minutes alarmed; 0.35: what a useful 25-minute forecast reaches)")


# metric name -> (evaluation target, record field, does a lower value pass)
BAR_METRICS = {
    "avg_mae": ("avg", "mae", True),
    "avg_r2": ("avg", "r2", False),
    "state_accuracy": ("state", "accuracy", False),
    "critical_recall": ("state", "critical_recall", False),
}


def _value(record: dict | None, field: str) -> float:
    """A record's figure as a float (NaN when missing or undefined)."""
    if record is None:
        return math.nan
    value = record.get(field)
    if field == "critical_recall" and value is None:
        value = (record.get("recall") or {}).get("CRITICAL")
    return float(value) if isinstance(value, (int, float)) else math.nan


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _bars(config: AcceptanceConfig, persistence_mae: float
          ) -> list[tuple[str, str, float, str]]:
    """The bars at one horizon: (bar name, metric, bar, rule in words)."""
    out = []
    if _finite(persistence_mae):
        out.append(("avg_mae", "avg_mae", persistence_mae * (1 - config.mae_vs_persistence),
                    f"<= persistence {persistence_mae:.4g} s - {config.mae_vs_persistence:.0%}"))
    if config.max_avg_mae_s is not None:
        out.append(("avg_mae_max", "avg_mae", float(config.max_avg_mae_s),
                    f"<= {config.max_avg_mae_s:g} s"))
    out += [(m, m, bar, f">= {bar:g}") for m, bar in (
        ("avg_r2", config.min_avg_r2), ("state_accuracy", config.min_state_accuracy),
        ("critical_recall", config.min_critical_recall))]
    return out


def judge(records: list[dict], model: str, config: AcceptanceConfig) -> list[dict]:
    """One row per bar and horizon for a model's test records: name (e.g. avg_mae_h10),
    metric, horizon, value, bar, rule, passed (None where the test window cannot measure it)."""
    by_key = {(r["model"], int(r["horizon"]), r["target"]): r for r in records}
    horizons = sorted({int(r["horizon"]) for r in records if r["model"] == model})
    rows = []
    for h in horizons:
        persistence = _value(by_key.get(("persistence", h, "avg")), "mae")
        for name, metric, bar, rule in _bars(config, persistence):
            target, field, lower = BAR_METRICS[metric]
            value = _value(by_key.get((model, h, target)), field)
            passed = None if not _finite(value) else bool(value <= bar if lower else value >= bar)
            rows.append({"name": f"{name}_h{h}", "metric": metric, "horizon": h, "value": value if _finite(value) else None,
                         "bar": float(bar), "rule": rule, "passed": passed})
    return rows


def accepted(rows: list[dict]) -> bool:
    """Whether a model meets every bar it could be measured on (and was judged at all)."""
    return bool(rows) and all(r["passed"] is not False for r in rows)


def failures(rows: list[dict]) -> list[str]:
    """Each failed bar in words, e.g. 'avg_r2_h25 0.21 < bar 0.25 (>= 0.25)'."""
    out = []
    for r in rows:
        if r["passed"] is False:
            sign = ">" if r["metric"] == "avg_mae" else "<"
            out.append(f"{r['name']} {r['value']:.4g} {sign} bar {r['bar']:.4g} ({r['rule']})")
    return out


def verdict(rows: list[dict]) -> str:
    """The policy's verdict in one phrase: meets every bar, or which fail."""
    if not rows:
        return "not judged (no test metrics)"
    failed = failures(rows)
    if failed:
        return f"fails {len(failed)} of {len(rows)} acceptance bars: {'; '.join(failed)}"
    unmeasured = [r["name"] for r in rows if r["passed"] is None]
    return (f"meets every acceptance bar ({len(rows) - len(unmeasured)} of {len(rows)}"
            + (f"; not measurable on this window: {', '.join(unmeasured)})" if unmeasured else ")"))


def policy(config: AcceptanceConfig) -> dict:
    """The bars in force, for evaluation.json's acceptance_policy."""
    return dataclasses.asdict(config)


def describe(values: dict) -> str:
    """The policy in one sentence, from acceptance_policy (AcceptanceConfig's fields)."""
    config = AcceptanceConfig(**{k: v for k, v in values.items()
                                 if k in AcceptanceConfig.__dataclass_fields__})
    parts = [f"avg MAE at least {config.mae_vs_persistence:.0%} below persistence's"]
    if config.max_avg_mae_s is not None:
        parts.append(f"avg MAE at most {config.max_avg_mae_s:g} s")
    parts += [f"R² of avg at least {config.min_avg_r2:g}",
              f"state accuracy at least {config.min_state_accuracy:.0%}",
              f"CRITICAL recall at the operating point at least {config.min_critical_recall:.0%}"]
    return ", ".join(parts) + ", at every horizon on the test window"
