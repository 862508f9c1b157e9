"""The promotion gate, in plain Python (no MLflow, no Dagster); the tags it reads are in tags.py.

A registered version records its test metrics (``test_*``), its test window and, when
evaluation_report could evaluate the registry's champion on the same rows, that champion's
metrics (``baseline_*`` and ``baseline_version``). ``decide`` turns the challenger's and the
champion's tags into a decision with a reason:

- no challenger, or one already decided: nothing to do (a challenger is decided once);
- a challenger the champion was rolled back from: nothing to do, ever (a rollback takes its
  challenger alias too; should the alias come back, the gate still leaves it: only a person
  promotes it again, with `amhs registry promote`);
- no champion yet, or a champion whose feature version is older than the code's: promote;
- same test window (start, end, rows): compare the recorded test metrics;
- different windows: compare with the champion re-evaluated on the challenger's window (the
  baseline, if it is of the current champion), else refuse and say to re-materialize
  evaluation_report and registered_model (which re-evaluates the champion on the new window);
- promote only if every configured metric is better by the relative margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from amhs_assets.config import setting
from amhs_assets.registry.tags import (
    BASELINE_PREFIX,
    KEPT_CHAMPION,
    NOTHING,
    PROMOTED,
    REFUSED,
    TAG_BASELINE,
    TAG_CHECKS,
    TAG_DECIDED_AT,
    TAG_DECISION,
    TAG_FEATURES,
    TAG_KIND,
    TAG_REASON,
    TAG_ROLLBACK_REASON,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLED_BACK_BY,
    TEST_PREFIX,
    WINDOW_TAGS,
    metrics_from_tags,
)

# key metrics per horizon: (name, evaluation target, how to read it from a record)
KEY_METRICS = (
    ("avg_mae", "avg", lambda r: r.get("mae")),
    ("state_accuracy", "state", lambda r: r.get("accuracy")),
    ("critical_recall", "state",
     lambda r: r.get("critical_recall", (r.get("recall") or {}).get("CRITICAL"))),
    ("critical_precision", "state", lambda r: r.get("critical_precision")),
    ("false_alarms_per_shift", "state", lambda r: r.get("false_alarms_per_shift")),
    ("lead_time_median_min", "state", lambda r: r.get("lead_time_median_min")),
    ("brier", "state", lambda r: r.get("brier")),
)
LOWER_IS_BETTER = ("mae", "false_alarms", "brier")


@dataclass(frozen=True)
class GateConfig:
    """What a challenger must beat: every metric better than the champion's by a relative margin."""

    metrics: tuple[str, ...] = setting(
        ("mean_avg_mae",), "test metrics a challenger must beat the champion on (mean_avg_mae, "
                           "avg_mae_h10, mean_state_accuracy, mean_critical_recall, ...)")
    margin: float = setting(0.01, "relative margin: 0.01 = at least 1 % better on every metric")
    critical_recall_margin: float = setting(
        0.05, "a challenger whose CRITICAL recall at its operating point is lower than the "
              "champion's by more than this (absolute, at any horizon) is not promoted, "
              "whatever its MAE")


@dataclass(frozen=True)
class VersionRef:
    """A registered version as the gate sees it: its number and tags."""

    version: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on the challenger, with the reason and the figures it compared."""

    outcome: str
    reason: str
    challenger: str | None = None
    champion: str | None = None
    comparison: tuple[dict, ...] = ()

    @property
    def promote(self) -> bool:
        return self.outcome == PROMOTED

    @property
    def recorded(self) -> bool:
        return self.outcome != NOTHING


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def candidate_metrics(records: list[dict], model: str) -> dict[str, float]:
    """A model's key test metrics per horizon (avg MAE, state accuracy, CRITICAL recall) and means."""
    out: dict[str, float] = {}
    for name, target, read in KEY_METRICS:
        values = {int(r["horizon"]): read(r) for r in records
                  if r["model"] == model and r["target"] == target}
        for h, v in sorted(values.items()):
            out[f"{name}_h{h}"] = float(v) if _finite(v) else math.nan
        known = [v for v in values.values() if _finite(v)]
        out[f"mean_{name}"] = float(sum(known) / len(known)) if known else math.nan
    return out


def persistence_verdicts(summary: pd.DataFrame, candidates: tuple[str, ...]) -> dict[str, dict]:
    """Per candidate: whether its avg MAE beats persistence at every horizon, with the figures."""
    pers = summary[summary["model"] == "persistence"].set_index("horizon")["mae"]
    out = {}
    for model in candidates:
        mine = summary[summary["model"] == model].set_index("horizon")["mae"]
        beaten = {int(h): bool(mine[h] < pers[h]) for h in mine.index if h in pers.index}
        out[model] = {"passed": bool(beaten) and all(beaten.values()),
                      "mae": {int(h): float(mine[h]) for h in mine.index},
                      "persistence_mae": {int(h): float(pers[h]) for h in pers.index}}
    return out


def lower_is_better(metric: str) -> bool:
    """MAE, false alarms and the Brier score fall as models improve; the others rise."""
    return any(word in metric for word in LOWER_IS_BETTER)


def compare(challenger: dict[str, float], champion: dict[str, float], config: GateConfig
            ) -> tuple[bool, tuple[dict, ...]]:
    """Whether every configured metric beats the champion's by the margin, and the figures."""
    rows = []
    for metric in config.metrics:
        mine, theirs = challenger.get(metric, math.nan), champion.get(metric, math.nan)
        if not (_finite(mine) and _finite(theirs)):
            rows.append({"metric": metric, "challenger": mine, "champion": theirs,
                         "required": None, "better": False})
            continue
        low = lower_is_better(metric)
        required = theirs * (1 - config.margin) if low else theirs * (1 + config.margin)
        better = mine <= required if low else mine >= required
        rows.append({"metric": metric, "challenger": mine, "champion": theirs,
                     "required": required, "better": bool(better)})
    return bool(rows) and all(r["better"] for r in rows), tuple(rows)


def _describe(rows: tuple[dict, ...], margin: float) -> str:
    """One phrase per compared metric."""
    parts = []
    for r in rows:
        if r["required"] is None:
            parts.append(f"{r['metric']}: not comparable ({r['challenger']} vs {r['champion']})")
            continue
        change = 100 * (r["challenger"] / r["champion"] - 1) if r["champion"] else math.inf
        sign = "<=" if lower_is_better(r["metric"]) else ">="
        parts.append(f"{r['metric']} {r['challenger']:.4g} vs {r['champion']:.4g} ({change:+.2f}%; "
                     f"needs {sign} {r['required']:.4g}, margin {100 * margin:g}%)")
    return "; ".join(parts)


def _version_key(text: str | None) -> tuple[int, ...]:
    """A dotted version as a tuple of ints (missing or odd parts count as 0)."""
    return tuple(int(p) if p.isdigit() else 0 for p in (text or "0").split("."))


def comparable_metrics(challenger: VersionRef, champion: VersionRef
                       ) -> tuple[dict[str, float] | None, str]:
    """The champion's metrics on the challenger's test window, and where they come from."""
    same_window = all(challenger.tags.get(t) == champion.tags.get(t) for t in WINDOW_TAGS)
    if same_window:
        return metrics_from_tags(champion.tags, TEST_PREFIX), "recorded on the same test window"
    if challenger.tags.get(TAG_BASELINE) == champion.version:
        return (metrics_from_tags(challenger.tags, BASELINE_PREFIX),
                "re-evaluated on the challenger's test window")
    return None, (
        f"test windows differ (challenger {_window(challenger)}, champion {_window(champion)}) and "
        f"champion v{champion.version} was not re-evaluated on the challenger's window; "
        "materialize evaluation_report and registered_model again to compare them")


def recall_losses(challenger: dict[str, float], champion: dict[str, float], margin: float
                  ) -> list[str]:
    """The horizons where the challenger's CRITICAL recall is below the champion's by more than
    margin, described (e.g. 'h10 0.41 < 0.62 - 0.05')."""
    out = []
    for metric, theirs in sorted(champion.items()):
        if not metric.startswith("critical_recall_h"):
            continue
        mine = challenger.get(metric, math.nan)
        if _finite(theirs) and _finite(mine) and mine < theirs - margin:
            out.append(f"{metric.removeprefix('critical_recall_')} {mine:.3f} < "
                       f"{theirs:.3f} - {margin:g}")
    return out


def _window(ref: VersionRef) -> str:
    start, end, rows = (ref.tags.get(t) for t in WINDOW_TAGS)
    return f"{start}..{end}, {rows} rows"


def decide(challenger: VersionRef | None, champion: VersionRef | None, feature_version: str,
           config: GateConfig) -> Decision:
    """The gate: should the challenger replace the champion, and why (see GateConfig)."""
    if challenger is None:
        return Decision(NOTHING, "no challenger: no validated version waits for a decision",
                        champion=champion.version if champion else None)
    ids = {"challenger": challenger.version, "champion": champion.version if champion else None}
    if champion is not None and champion.version == challenger.version:
        return Decision(NOTHING, f"v{challenger.version} is already champion", **ids)
    if challenger.tags.get(TAG_ROLLED_BACK_AT):
        t = challenger.tags
        return Decision(NOTHING, f"v{challenger.version} was rolled back from at "
                        f"{t[TAG_ROLLED_BACK_AT]} by {t.get(TAG_ROLLED_BACK_BY)} "
                        f"({t.get(TAG_ROLLBACK_REASON)}): the gate never promotes it again; "
                        f"`amhs registry promote {challenger.version} --reason ...` can", **ids)
    if challenger.tags.get(TAG_DECISION):
        t = challenger.tags
        return Decision(NOTHING, f"v{challenger.version} was already decided: {t[TAG_DECISION]} at "
                        f"{t.get(TAG_DECIDED_AT)} ({t.get(TAG_REASON)})", **ids)
    if challenger.tags.get(TAG_CHECKS) != "true":
        return Decision(REFUSED, "challenger did not pass the asset checks", **ids)
    mine = challenger.tags.get(TAG_FEATURES)
    if mine != feature_version:
        return Decision(REFUSED, f"challenger's feature version {mine} is not the current "
                        f"{feature_version}", **ids)
    if champion is None:
        return Decision(PROMOTED, "no champion yet", **ids)
    theirs = champion.tags.get(TAG_FEATURES)
    if _version_key(theirs) < _version_key(feature_version):
        return Decision(PROMOTED, f"champion v{champion.version} has feature version {theirs}, "
                        f"older than the current {feature_version}", **ids)
    if theirs != feature_version:
        return Decision(REFUSED, f"champion v{champion.version} has feature version {theirs}, "
                        f"newer than the current {feature_version}", **ids)
    baseline, source = comparable_metrics(challenger, champion)
    if baseline is None:
        return Decision(REFUSED, source, **ids)
    mine = metrics_from_tags(challenger.tags, TEST_PREFIX)
    lost = recall_losses(mine, baseline, config.critical_recall_margin)
    if lost:
        return Decision(KEPT_CHAMPION, f"challenger lowers CRITICAL recall at its operating point "
                        f"against champion v{champion.version} ({source}) by more than "
                        f"{config.critical_recall_margin:g}: {'; '.join(lost)}; not promoted, "
                        "whatever its MAE", **ids)
    better, rows = compare(mine, baseline, config)
    verdict = "beats" if better else "does not beat"
    reason = (f"challenger {verdict} champion v{champion.version} ({source}): "
              f"{_describe(rows, config.margin)}")
    return Decision(PROMOTED if better else KEPT_CHAMPION, reason, comparison=rows, **ids)


def champion_entry(best: str, champion: VersionRef | None, usable: bool, feature_version: str
                   ) -> dict:
    """The evaluation document's champion: the registry's when it can be evaluated on these
    features, else the best candidate on validation (with the reason)."""
    if champion is not None and usable:
        return {"version": champion.version, "source": champion.tags.get(TAG_KIND),
                "selected_by": "registry alias 'champion'",
                "feature_version": champion.tags.get(TAG_FEATURES)}
    if champion is None:
        return {"version": None, "source": best,
                "selected_by": "lowest validation avg MAE (no registry champion yet)"}
    return {"version": None, "source": best, "registry_version": champion.version,
            "selected_by": f"lowest validation avg MAE: registry champion v{champion.version} has "
                           f"feature version {champion.tags.get(TAG_FEATURES)}, not "
                           f"{feature_version}, and cannot be evaluated on these features"}


