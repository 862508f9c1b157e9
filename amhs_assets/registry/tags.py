"""The registry's vocabulary: every tag a model version carries (provenance, test window and
metrics, checks, training window, trigger, gate decisions) and the functions that write and
read them. No MLflow, no Dagster: the CLI, the API and the gate read the same names."""

from __future__ import annotations

import hashlib
import json
import subprocess
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
TAG_LEDGER_ENTRY = "ledger_entry"  # the alias ledger's sequence number of the latest move to it
TAG_ROLLED_BACK_AT = "rolled_back_at"
TAG_ROLLED_BACK_BY = "rolled_back_by"
TAG_ROLLBACK_REASON = "rollback_reason"
TEST_PREFIX = "test_"
BASELINE_PREFIX = "baseline_"
TAG_TRAIN_WINDOW = "train_window"  # JSON {line_id: [start, train_end (exclusive)]}
TRAIN_SPAN_TAGS = ("train_window_start", "train_window_end")  # over every line
TAG_TRIGGER = "trigger"  # what launched the training run: data, drift, performance, schedule, manual
TAG_TRIGGER_REASON = "trigger_reason"
TAG_ACCEPTED = "accepted"  # "true" when the test metrics meet every acceptance bar
ACCEPTANCE_PREFIX = "acceptance_"  # per bar: acceptance_avg_mae_h10 = "pass 12.9 (<= ...)"
CHECK_ACCEPTANCE = "meets_acceptance_bars"  # the check (in TAG_CHECK_DETAIL) the bars decide
MAX_TAG_CHARS = 5000  # MLflow's limit on a tag value
# decisions recorded in TAG_DECISION
PROMOTED = "promoted"  # the gate made it champion
KEPT_CHAMPION = "kept_champion"  # compared, not better by the margin
REFUSED = "refused"  # could not be compared fairly, or not eligible
REJECTED = "rejected"  # failed the asset checks at registration: never a challenger
MANUAL = "manual_promote"  # `amhs registry promote`
ROLLBACK = "rollback"  # `amhs registry rollback` restored it
NOTHING = "nothing_to_do"  # not recorded: no challenger, or already decided
# kinds of alias move in the alias ledger (registry/ledger.py)
MOVE_GATE = "gate_promotion"  # the promotion gate made the challenger champion
MOVE_MANUAL = MANUAL  # `amhs registry promote`
MOVE_ROLLBACK = ROLLBACK  # `amhs registry rollback`
MOVE_CHALLENGER_SET = "challenger_set"  # a new version passed its checks
MOVE_CHALLENGER_CLEARED = "challenger_cleared"  # its registration failed, or it was rolled back


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
                 checks: dict[str, bool], baseline: tuple[str, dict[str, float]] | None,
                 why: dict[str, str] | None = None) -> dict[str, str]:
    """Every tag a new version carries: provenance, test window, test metrics, checks, baseline;
    `why`: what a failed check found, by check name, for the rejection's reason."""
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
        failed = [f"{k}: {why[k]}" if why and why.get(k) else k
                  for k, v in checks.items() if not v] or ["no checks ran"]
        reason = f"failed the asset checks ({'; '.join(failed)}): never a challenger"
        tags |= {TAG_DECISION: REJECTED, TAG_DECIDED_AT: now_iso(),
                 TAG_REASON: reason[:MAX_TAG_CHARS]}
    return tags


def acceptance_tags(rows: list[dict], accepted: bool) -> dict[str, str]:
    """The acceptance bars' verdicts (evaluation.acceptance.judge's rows) as tags: accepted,
    and per bar its outcome, value and rule (acceptance_avg_r2_h25 = "FAIL 0.21 (>= 0.25)")."""
    words = {True: "pass", False: "FAIL", None: "not measured"}
    tags = {TAG_ACCEPTED: str(bool(accepted)).lower()}
    for r in rows:
        value = "n/a" if r["value"] is None else f"{r['value']:.4g}"
        tags[f"{ACCEPTANCE_PREFIX}{r['name']}"] = f"{words[r['passed']]} {value} ({r['rule']})"
    return tags


ALARM_PREFIX = "alarm_"


def operating_point_tags(points: dict[int, dict]) -> dict[str, str]:
    """Each horizon's operating point (HorizonPolicy.summary()) as tags:
    alarm_critical_threshold_h10, alarm_warning_threshold_h10, alarm_calibration_h10, and the
    target it was chosen for (alarm_target, e.g. 'precision>=0.5')."""
    tags = {}
    for h, p in sorted(points.items()):
        tags[f"{ALARM_PREFIX}critical_threshold_h{h}"] = repr(float(p["critical_threshold"]))
        tags[f"{ALARM_PREFIX}warning_threshold_h{h}"] = repr(float(p["warning_threshold"]))
        tags[f"{ALARM_PREFIX}calibration_h{h}"] = str(p["calibration"])
        sign = ">=" if p["target"] == "precision" else "<="
        tags[f"{ALARM_PREFIX}target"] = f"{p['target']}{sign}{p['target_value']:g}"
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
    here = Path(__file__).resolve().parents[1]  # the package folder
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
