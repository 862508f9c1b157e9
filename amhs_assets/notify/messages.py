"""The JSON messages the webhooks get (docs/notifications.md): every one has `kind`, `event`,
`sent_at`, a short `text` for a chat window, and the details of its kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

MAX_ERROR_CHARS = 500


def utc_now() -> str:
    """This moment in UTC, ISO 8601 with a Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def message(kind: str, event: str, text: str, **details: object) -> dict:
    """A message of a kind: its event, the moment it was made, the operator's text, details."""
    return {"kind": kind, "event": event, "sent_at": utc_now(), "text": text, **details}


def _minute(stamp: str) -> str:
    """'2026-03-01T08:05:00Z' -> '2026-03-01 08:05 UTC' (as an operator reads it)."""
    return f"{stamp[:10]} {stamp[11:16]} UTC" if len(stamp) >= 16 else stamp


def _model(model: Mapping) -> str:
    return f"{model.get('name', '?')} v{model.get('version', '?')}"


def _p(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "?"


def critical_entered(line_id: str, as_of: str, alarms: Mapping[str, Mapping], model: Mapping
                     ) -> dict:
    """A line's forecast entered a CRITICAL episode: the alarming horizons, P(CRITICAL) and the
    thresholds they reached."""
    parts = ", ".join(
        f"{h} min P={_p(a['p_critical'])}"
        + (f" >= {_p(a['threshold'])}" if a.get("threshold") is not None else "")
        for h, a in alarms.items())
    text = f"CRITICAL forecast on line {line_id} at {_minute(as_of)}: {parts} ({_model(model)})"
    return message("critical", "entered", text, line_id=line_id, as_of=as_of,
                   horizons=dict(alarms), model=dict(model))


def critical_cleared(line_id: str, as_of: str, started_at: str, last_alarm_at: str,
                     duration_min: float, alarm_minutes: int, peak_p_critical: float | None,
                     model: Mapping) -> dict:
    """A line's CRITICAL episode cleared: when it started, its last alarm, how long it lasted."""
    text = (f"Line {line_id} cleared at {_minute(as_of)}: the CRITICAL episode from "
            f"{_minute(started_at)} to {_minute(last_alarm_at)} lasted {duration_min:g} min "
            f"({alarm_minutes} alarming forecast(s), peak P={_p(peak_p_critical)})")
    return message("critical", "cleared", text, line_id=line_id, as_of=as_of,
                   started_at=started_at, last_alarm_at=last_alarm_at, duration_min=duration_min,
                   alarm_minutes=alarm_minutes, peak_p_critical=peak_p_critical,
                   model=dict(model))


MONITORS = {  # kind -> (asset, what an episode is, what its end means)
    "drift": ("drift_report", "Drift detected in the AMHS logs", "Drift cleared: the latest "
              "drift_report finds the recent logs like the reference again"),
    "degradation": ("performance_monitor", "Model performance degraded",
                    "Model performance back within its limits: the latest performance_monitor "
                    "is clean"),
}


def monitoring_episode(kind: str, started: bool, reason: str, storage_id: int,
                       run_id: str | None, run_url: str | None, metadata: Mapping) -> dict:
    """A drift or degradation episode started (event `detected`) or ended (`cleared`), from the
    materialization of the monitoring asset that says so."""
    asset, start_text, end_text = MONITORS[kind]
    text = f"{start_text}: {reason}" if started else end_text
    return message(kind, "detected" if started else "cleared", text, asset=asset,
                   reason=reason, storage_id=storage_id, run_id=run_id, run_url=run_url,
                   metadata=dict(metadata))


def run_failure(job_name: str, run_id: str, run_url: str, error: str,
                failed_steps: Sequence[Mapping], tags: Mapping[str, str]) -> dict:
    """A Dagster run failed: the job, the run, the failing steps and their errors."""
    steps = "; ".join(f"{s['step']}: {s['error']}" for s in failed_steps[:3]) or error
    text = f"Dagster run of {job_name} failed ({run_id[:8]}, {run_url}): {steps}"
    return message("run_failure", "failed", text[:MAX_ERROR_CHARS * 2], job_name=job_name,
                   run_id=run_id, run_url=run_url, error=error[:MAX_ERROR_CHARS],
                   failed_steps=[dict(s) for s in failed_steps], tags=dict(tags))
