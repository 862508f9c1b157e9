"""The persistence baseline: the current value carried forward, and the state it implies now."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amhs_assets.models.dataset import N_CLASSES, ModelDataset, baseline, fallback_level


def persistence_state(persistence: np.ndarray, alarms_now: np.ndarray, thresholds: dict
                      ) -> np.ndarray:
    """The state the current minute would have if nothing changed (the baseline's state)."""
    state = np.zeros(len(persistence), dtype=np.int8)
    state[persistence >= thresholds["warning_s"]] = 1
    state[(persistence >= thresholds["critical_s"]) | (alarms_now > 0)] = 2
    return state


@dataclass
class PersistenceModel:
    """The baseline: the current value carried forward, and the state it implies now."""

    persistence_index: int
    alarms_index: int
    fallback: float
    thresholds: dict
    horizons: tuple[int, ...]

    @classmethod
    def from_dataset(cls, ds: ModelDataset) -> "PersistenceModel":
        fallback = fallback_level(ds)
        return cls(ds.persistence_index, ds.alarms_index, fallback, ds.thresholds, ds.horizons)

    def predict(self, X: np.ndarray, h: int) -> dict[str, np.ndarray]:
        value = baseline(X[:, self.persistence_index].astype(float), self.fallback)
        state = persistence_state(value, X[:, self.alarms_index], self.thresholds)
        return {"min": value, "max": value, "avg": value,
                "proba": np.eye(N_CLASSES)[state]}
