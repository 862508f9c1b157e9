"""The promotion gate and the tags a model version carries, in plain Python (no MLflow, no Dagster).

A registered version records its test metrics (``test_*``), its test window and, when
evaluation_report could evaluate the registry's champion on the same rows, that champion's
metrics (``baseline_*`` and ``baseline_version``). ``decide`` turns the challenger's and the
champion's tags into a decision with a reason:

- no challenger, or one already decided: nothing to do (a challenger is decided once);
- no champion yet, or a champion whose feature version is older than the code's: promote;
- same test window (start, end, rows): compare the recorded test metrics;
- different windows: compare with the champion re-evaluated on the challenger's window (the
  baseline, if it is of the current champion), else refuse and say to re-materialize
  evaluation_report and registered_model (which re-evaluates the champion on the new window);
- promote only if every configured metric is better by the relative margin.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd

# --- tag names (the registry's vocabulary; the CLI and the REST API read them too) ----------
TAG_DATA = "data_fingerprint"
TAG_FEATURES = "feature_version"
TAG_CODE = "code_version"
TAG_DAGSTER_RUN = "dagster_run_id"
TAG_KIND = "candidate_kind"
TAG_CHECKS = "passed_checks"
TAG_CHECK_DETAIL = "checks"
WINDOW_TAGS = ("test_window_start", "test_window_end", "test_window_rows")
TAG_BASELINE = "baseline_version"
TAG_DECISION = "promotion_decision"
TAG_REASON = "promotion_reason"
TAG_DECIDED_AT = "decided_at"
TAG_DECIDED_BY = "decided_by"
TAG_PREVIOUS = "previous_champion"
TAG_ROLLED_BACK_AT = "rolled_back_at"
TAG_ROLLED_BACK_BY = "rolled_back_by"
TAG_ROLLBACK_REASON = "rollback_reason"
TEST_PREFIX = "test_"
BASELINE_PREFIX = "baseline_"
TAG_TRAIN_WINDOW = "train_window"  # JSON {line_id: [start, train_end (exclusive)]}
TRAIN_SPAN_TAGS = ("train_window_start", "train_window_end")  # over every line
TAG_TRIGGER = "trigger"  # what launched the training run: data, drift, performance, schedule, manual
TAG_TRIGGER_REASON = "trigger_reason"
MAX_TAG_CHARS = 5000  # MLflow's limit on a tag value

# decisions recorded in TAG_DECISION
PROMOTED = "promoted"  # the gate made it champion
KEPT_CHAMPION = "kept_champion"  # compared, not better by the margin
REFUSED = "refused"  # could not be compared fairly, or not eligible
REJECTED = "rejected"  # failed the asset checks at registration: never a challenger
MANUAL = "manual_promote"  # `amhs registry promote`
ROLLBACK = "rollback"  # `amhs registry rollback` restored it
NOTHING = "nothing_to_do"  # not recorded: no challenger, or already decided

# key metrics per horizon: (name, evaluation target, how to read it from a record)
KEY_METRICS = (
    ("avg_mae", "avg", lambda r: r.get("mae")),
    ("state_accuracy", "state", lambda r: r.get("accuracy")),
    ("critical_recall", "state", lambda r: (r.get("recall") or {}).get("CRITICAL")),
)


@dataclass(frozen=True)
class GateConfig:
    """What a challenger must beat: every metric better than the champion's by a relative margin."""

    metrics: tuple[str, ...] = ("mean_avg_mae",)
    margin: float = 0.01


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


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def metric_tags(metrics: dict[str, float], prefix: str) -> dict[str, str]:
    """Metrics as version tags (prefix + name -> repr of the float)."""
    return {f"{prefix}{k}": repr(float(v)) for k, v in metrics.items()}


def metrics_from_tags(tags: dict[str, str], prefix: str) -> dict[str, float]:
    """Metrics back from version tags written by metric_tags."""
    out = {}
    for key, value in tags.items():
        if key.startswith(prefix):
            try:
                out[key[len(prefix):]] = float(value)
            except ValueError:
                continue
    return out


def version_tags(*, kind: str, metrics: dict[str, float], window: dict, fingerprint: str,
                 feature_version: str, code_version: str, dagster_run_id: str,
                 checks: dict[str, bool], baseline: tuple[str, dict[str, float]] | None
                 ) -> dict[str, str]:
    """Every tag a new version carries: provenance, test window, test metrics, checks, baseline."""
    passed = bool(checks) and all(checks.values())
    tags = {TAG_DATA: fingerprint, TAG_FEATURES: feature_version, TAG_CODE: code_version,
            TAG_DAGSTER_RUN: dagster_run_id, TAG_KIND: kind,
            TAG_CHECKS: str(passed).lower(),
            TAG_CHECK_DETAIL: ", ".join(f"{k}={'pass' if v else 'FAIL'}" for k, v in checks.items()),
            **{t: str(window.get(t.removeprefix("test_window_"))) for t in WINDOW_TAGS},
            **metric_tags(metrics, TEST_PREFIX)}
    if baseline is not None:
        tags[TAG_BASELINE] = str(baseline[0])
        tags |= metric_tags(baseline[1], BASELINE_PREFIX)
    if not passed:
        failed = [k for k, v in checks.items() if not v] or ["no checks ran"]
        tags |= {TAG_DECISION: REJECTED, TAG_DECIDED_AT: now_iso(),
                 TAG_REASON: f"failed the asset checks ({', '.join(failed)}): never a challenger"}
    return tags


def train_window_tags(boundaries: list[dict]) -> dict[str, str]:
    """The training window of every line (from the evaluation document's boundaries) as tags:
    per line in JSON (when it fits a tag) and the overall first and last minute."""
    if not boundaries:
        return {}
    per_line = {str(b["line_id"]): [str(b["start"]), str(b["train_end"])] for b in boundaries}
    tags = {TRAIN_SPAN_TAGS[0]: min(v[0] for v in per_line.values()),
            TRAIN_SPAN_TAGS[1]: max(v[1] for v in per_line.values())}
    text = json.dumps(per_line, separators=(",", ":"))
    if len(text) <= MAX_TAG_CHARS:
        tags[TAG_TRAIN_WINDOW] = text
    return tags


def train_window_from_tags(tags: dict[str, str]) -> pd.DataFrame | None:
    """A version's training window back from its tags: line_id, start, train_end per line (a
    line not listed gets the overall span, with line_id "*"); None when the tags have none."""
    if tags.get(TAG_TRAIN_WINDOW):
        per_line = json.loads(tags[TAG_TRAIN_WINDOW])
        rows = [(line, start, end) for line, (start, end) in per_line.items()]
    elif all(tags.get(t) for t in TRAIN_SPAN_TAGS):
        rows = [("*", tags[TRAIN_SPAN_TAGS[0]], tags[TRAIN_SPAN_TAGS[1]])]
    else:
        return None
    frame = pd.DataFrame(rows, columns=["line_id", "start", "train_end"])
    return frame.assign(start=pd.to_datetime(frame["start"], utc=True),
                        train_end=pd.to_datetime(frame["train_end"], utc=True))


def trigger_tags(run_tags: dict[str, str], trigger_key: str, reason_key: str) -> dict[str, str]:
    """What launched a training run (from its Dagster run tags) as version tags; a run without
    them was started by hand."""
    trigger = run_tags.get(trigger_key) or "manual"
    reason = run_tags.get(reason_key) or ("launched by hand" if trigger == "manual" else "")
    return {TAG_TRIGGER: trigger, TAG_TRIGGER_REASON: reason[:MAX_TAG_CHARS]}


# --- provenance -----------------------------------------------------------------------------
def code_version() -> str:
    """The git commit of the package (+dirty when changed), else the installed package version."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        if head.returncode == 0 and head.stdout.strip():
            dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", "."],
                                   capture_output=True, text=True, timeout=5)
            return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"amhs_assets {metadata.version('amhs_assets')}"
    except metadata.PackageNotFoundError:
        return "unknown"


def data_fingerprint(frame: pd.DataFrame) -> str:
    """A short hash of a frame's columns and values (same data, same fingerprint)."""
    digest = hashlib.sha256("|".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def lower_is_better(metric: str) -> bool:
    """MAE-like metrics fall as models improve; accuracy and recall rise."""
    return "mae" in metric


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
    better, rows = compare(metrics_from_tags(challenger.tags, TEST_PREFIX), baseline, config)
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


def version_description(tags: dict[str, str], lookback_min: int, horizons: tuple[int, ...]) -> str:
    """What a registered version is, in words, for the MLflow UI."""
    passed = tags.get(TAG_CHECKS) == "true"
    return (f"AMHS predictor ({tags.get(TAG_KIND)} models) as an MLflow pyfunc: raw contract rows "
            f"in (at least {lookback_min} minutes per line), out for the latest minute of each "
            f"line and every horizon {list(horizons)} min the min/max/avg transfer time, the "
            f"state and its probabilities. Features {tags.get(TAG_FEATURES)}, data "
            f"{tags.get(TAG_DATA)}, code {tags.get(TAG_CODE)}, Dagster run "
            f"{tags.get(TAG_DAGSTER_RUN)}. "
            + ("Passed the asset checks: challenger." if passed
               else "Failed the asset checks: never served."))
