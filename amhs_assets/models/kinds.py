"""The model kinds, listed once: what each is called (in evaluation.json, tags and the registry),
its class and the asset that trains it. Adding a kind is one entry here (plus its fit and its
asset); evaluation, registration, storage, monitoring and the reports follow this list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from amhs_assets.models.ensemble import EnsembleModel
from amhs_assets.models.unified import UnifiedModel
from amhs_assets.models.xgb import XgbModel


def _per_horizon(value: dict) -> XgbModel:
    """horizon_models' partitions ({"10": HorizonModels, ...}) as one model."""
    return XgbModel({int(h): models for h, models in value.items()})


@dataclass(frozen=True)
class ModelKind:
    """One kind of candidate model."""

    name: str
    model_class: type
    asset: str  # the asset whose value is (or makes) the model
    from_asset: Callable[[Any], Any] = lambda value: value
    partitioned: bool = False  # the asset is partitioned by horizon


KINDS: tuple[ModelKind, ...] = (
    ModelKind("xgb", XgbModel, "horizon_models", _per_horizon, partitioned=True),
    ModelKind("unified", UnifiedModel, "unified_model"),
    ModelKind("ensemble", EnsembleModel, "ensemble_model"),
)
KIND_NAMES: tuple[str, ...] = tuple(k.name for k in KINDS)
Model = XgbModel | UnifiedModel | EnsembleModel


def kind_name(model: Any) -> str:
    """The kind of a model object."""
    for kind in KINDS:
        if isinstance(model, kind.model_class):
            return kind.name
    raise TypeError(f"{type(model).__name__} is not a model kind of {KIND_NAMES}")


def candidate_models(asset_values: dict[str, Any]) -> dict[str, Any]:
    """The trained model of every kind, by kind name, from the values of their assets."""
    return {kind.name: kind.from_asset(asset_values[kind.asset]) for kind in KINDS}
