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
