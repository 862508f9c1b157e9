"""pydantic models of the JSON documents other programs read (SPEC sections 1 and 4)."""

from __future__ import annotations

from typing import Literal, Optional

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


class Forecast(_Open):
    min: float
    max: float
    avg: float
    state: Literal["NORMAL", "WARNING", "CRITICAL"]
    proba: dict[str, Optional[float]]


class LatestForecast(_Open):
    line_id: str
    as_of: str
    model_version: str
    source: Literal["api", "backtest"]
    horizons: dict[str, Forecast]


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
