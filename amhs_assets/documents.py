"""The JSON documents other programs read (data_quality.json, evaluation.json, performance.json):
one pydantic model per shape, and the atomic writer every document goes through."""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TestWindow(_Open):
    start: Optional[str]
    end: Optional[str]
    rows: int = Field(ge=0)


class ChampionRef(_Open):
    name: str
    version: Optional[str]


class RegressionResult(_Open):
    model: str
    horizon: int
    target: Literal["min", "max", "avg"]
    mae: float
    rmse: float
    r2: float


class StateRecall(BaseModel):
    NORMAL: Optional[float]
    WARNING: Optional[float]
    CRITICAL: Optional[float]


class StateResult(_Open):
    model: str
    horizon: int
    target: Literal["state"]
    accuracy: float
    macro_f1: float
    recall: StateRecall
    confusion_matrix: list[list[int]]
    # the alarm figures at the model's operating point (null where undefined)
    critical_threshold: Optional[float] = None
    critical_precision: Optional[float] = None
    critical_recall: Optional[float] = None
    false_alarms_per_shift: Optional[float] = None
    lead_time_median_min: Optional[float] = None
    caught_5min_share: Optional[float] = None
    critical_episodes: Optional[int] = None
    brier: Optional[float] = None
    argmax_accuracy: Optional[float] = None  # what the most probable class would have scored


class EvaluationDocument(_Open):
    generated_at: str
    test_window: TestWindow
    champion: ChampionRef
    results: list[RegressionResult | StateResult]


class FileQuality(_Open):
    path: str
    status: Literal["ok", "partial", "quarantined"]
    rows_read: int = Field(ge=0)
    rows_quarantined: int = Field(ge=0)
    reasons: list[str]


class DataQualityDocument(_Open):
    rows_read: int = Field(ge=0)
    rows_clean: int = Field(ge=0)
    rows_quarantined: int = Field(ge=0)
    rows_duplicate: int = Field(ge=0)
    duplicate_conflicts: int = Field(ge=0)
    files: list[FileQuality]


# --- performance.json (README, Monitoring) --------------------------------------------------
class WatchedModel(_Open):
    name: str
    version: Optional[str]  # None: the evaluation's candidate, not registered as champion
    version_label: str  # the version, or "candidate-<kind>"
    alias: Optional[str]
    kind: Optional[str]
    selected_by: str


class VerdictWindow(_Open):
    hours: float = Field(gt=0)
    start: Optional[str]
    end: Optional[str]
    rows: int = Field(ge=0)


class LiveLevel(_Open):
    rows: int = Field(ge=0)
    live_mae_avg: Optional[float]
    evaluated_mae_avg: Optional[float]
    ratio: Optional[float]
    degraded: bool
    judged: bool
    versions: str


class Metrics(_Open):
    mae_min: Optional[float]
    mae_max: Optional[float]
    mae_avg: Optional[float]
    accuracy: Optional[float]
    macro_f1: Optional[float]
    critical_recall: Optional[float]


class WindowMetrics(Metrics):
    rows: float = Field(ge=0)
    # the live CRITICAL alarms (a forecast of CRITICAL at the version's operating point)
    critical_precision: Optional[float] = None
    false_alarms_per_shift: Optional[float] = None
    lead_time_median_min: Optional[float] = None
    caught_5min_share: Optional[float] = None
    critical_episodes: Optional[int] = None


# --- a forecast: the API's answer and performance.json's latest forecasts share these ------------
class StateProba(BaseModel):
    """Class probabilities of the state."""

    NORMAL: float
    WARNING: float
    CRITICAL: float


class HorizonForecast(BaseModel):
    """One horizon's forecast of the target column over minutes t+1..t+h."""

    min: float
    max: float
    avg: float
    state: Literal["NORMAL", "WARNING", "CRITICAL"] = Field(
        description="the state the version's operating points decide: CRITICAL when "
                    "P(CRITICAL) reaches `threshold`, else WARNING when P(WARNING) reaches its "
                    "own, else NORMAL")
    alarm: bool = Field(False, description="P(CRITICAL) reached the operating-point threshold")
    threshold: Optional[float] = Field(
        None, description="the version's CRITICAL threshold at this horizon (null: a version "
                          "without operating points, where the most probable class wins)")
    proba: StateProba
    explain: Optional[dict[str, Any]] = Field(
        None, description="only when asked (?explain=true or the body's explain): per output "
                          "(CRITICAL margin, avg change), the margin, bias and the raw columns "
                          "that pushed it most, with signed contributions; top + other + bias "
                          "= margin")


class LineForecast(BaseModel):
    """Forecasts for a line's latest minute, keyed by horizon in minutes ("10", "15", "25")."""

    line_id: str
    as_of: str = Field(description="the line's latest minute, UTC, ISO 8601")
    horizons: dict[str, HorizonForecast]


class LatestForecast(LineForecast):
    """The newest forecast of a line that performance_monitor scored, and where it came from."""

    model_config = ConfigDict(extra="allow")
    model_version: str
    source: Literal["api", "backtest"]


class PeriodMetrics(Metrics):
    model_version: str
    source: Literal["api", "backtest"]
    line_id: str
    horizon: int
    period: Literal["hour", "day"]
    period_start: str
    rows: int = Field(ge=0)
    evaluated_mae_avg: Optional[float]
    mae_avg_ratio: Optional[float]


class PerformanceDocument(_Open):
    generated_at: str
    timezone: str
    model: WatchedModel
    sources: dict
    window: VerdictWindow
    degraded: bool
    judged: bool
    degradation_reason: str
    live: dict[str, LiveLevel]
    window_metrics: dict[str, WindowMetrics]
    evaluated: dict[str, Metrics]
    latest: list[LatestForecast]
    periods: list[PeriodMetrics]


def finite(value: Any) -> Any:
    """A document with every NaN or infinite float replaced by None: JSON has no NaN, and
    strict parsers (a browser's JSON.parse, Go, jq) refuse Python's bare NaN token."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, document: Any) -> Path:
    """Write a JSON document atomically (readers never see half a file), undefined figures
    (NaN, infinities) as null."""
    return write_text(path, json.dumps(finite(document), indent=2, default=str))


def write_text(path: Path, text: str) -> Path:
    """Write a text file atomically: to a temporary file beside it, then renamed over it, so a
    reader (or a run killed mid-way) never leaves or sees half a file."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> Path:
    """Write a file atomically (write_text's way); the temporary name carries the process and
    the thread, so two writers of one path never share it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
