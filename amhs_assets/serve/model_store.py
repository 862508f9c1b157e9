"""The served champion: loaded once from the MLflow registry, swapped atomically on reload.

A request reads `ModelStore.current` once and keeps that object to the end, so requests in
flight finish on the model they started with while a reload replaces the reference. A version
that fails to load leaves the served one in place; the error is logged, counted and kept in
`last_reload_error` until a later load succeeds.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import xgboost as xgb

from amhs_assets.contract import NUMERIC_COLUMNS, TRANSFER_TIME_COLUMNS
from amhs_assets.redact import redact
from amhs_assets.registry.predictor import AmhsPredictor, LineRows, load_registered
from amhs_assets.serve.config import ServeSettings
from amhs_assets.serve.prometheus import ServeMetrics

log = logging.getLogger(__name__)


# what GET /health and GET /ready say about the served model
LOADING = "loading"  # nothing served yet: the first look at the alias, or a load, in progress
NO_CHAMPION = "no_champion"  # no version carries the alias
LOAD_FAILED = "load_failed"  # the alias's version failed to load (last_reload_error says why)
READY = "ready"  # a model is served (a later failed reload leaves it served: still ready)


class NoChampion(Exception):
    """No model version carries the served alias."""


class ReloadFailed(Exception):
    """The champion's version could not be loaded; the served model stays."""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ServedModel:
    """One loaded version: the in-process predictor and what /v1/model says about it."""

    name: str
    version: str
    alias: str
    predictor: AmhsPredictor
    run_id: str | None = None
    metrics: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    loaded_at: str = field(default_factory=_now)

    @property
    def ref(self) -> dict:
        """The {"name", "version", "alias"} of answers and logs."""
        return {"name": self.name, "version": self.version, "alias": self.alias}

    def info(self) -> dict:
        """The GET /v1/model document (without last_reload_error)."""
        p = self.predictor
        return {**self.ref, "lookback_minutes": p.lookback, "horizons": list(p.horizons),
                "feature_count": len(p.model_feature_names),
                "feature_version": str(p.info.get("feature_version")),
                "line_ids": None if p.line_ids is None else sorted(p.line_ids),
                "run_id": self.run_id, "metrics": self.metrics, "tags": self.tags,
                "loaded_at": self.loaded_at}


def _boosters(obj: object, depth: int = 0):
    """Every XGBoost booster inside a model (dataclasses, dicts, lists), whatever its kind."""
    if isinstance(obj, xgb.Booster):
        yield obj
    elif depth < 4 and dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _boosters(getattr(obj, f.name), depth + 1)
    elif depth < 4 and isinstance(obj, (dict, list, tuple)):
        for item in (obj.values() if isinstance(obj, dict) else obj):
            yield from _boosters(item, depth + 1)


def tune_for_latency(predictor: AmhsPredictor) -> None:
    """One thread per XGBoost call: a request holds a few rows, where a thread pool only costs."""
    for booster in _boosters(predictor.model):
        booster.set_param({"nthread": 1})


def smoke_test(predictor: AmhsPredictor) -> None:
    """Predict one synthetic line: a version that cannot answer is never swapped in."""
    n = predictor.lookback
    values = np.zeros((n, len(NUMERIC_COLUMNS)))
    values[:, [NUMERIC_COLUMNS.index(c) for c in TRANSFER_TIME_COLUMNS]] = np.nan
    minutes = np.arange(29_500_000, 29_500_000 + n, dtype=np.int64)
    out = predictor.predict_lines([LineRows("smoke-test", minutes, values)])
    if len(out) != 1 or set(out[0]["horizons"]) != {str(h) for h in predictor.horizons}:
        raise ValueError(f"the model answered {out!r} for one line")


class ModelStore:
    """Resolves the alias, loads versions and holds the one being served."""

    def __init__(self, settings: ServeSettings, metrics: ServeMetrics | None = None) -> None:
        self.settings, self.metrics = settings, metrics
        self.current: ServedModel | None = None
        self.last_reload_error: str | None = None
        self._state = LOADING  # while nothing is served
        self._failed_version: str | None = None
        self._lock = threading.Lock()  # one load at a time
        self._client = None

    @property
    def state(self) -> str:
        """READY while a model is served, else LOADING, NO_CHAMPION or LOAD_FAILED."""
        return READY if self.current is not None else self._state

    @property
    def client(self):
        """The MLflow client of the configured store (created on first use)."""
        if self._client is None:
            import mlflow
            from mlflow import MlflowClient

            uri = self.settings.resolved_tracking_uri
            mlflow.set_tracking_uri(uri)  # models:/ URIs resolve against them
            mlflow.set_registry_uri(uri)
            self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return self._client

    def champion_version(self) -> str:
        """The version the alias points at now, or NoChampion."""
        name, alias = self.settings.model_name, self.settings.alias
        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except Exception as exc:  # MlflowException, or a store that does not answer
            detail = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            raise NoChampion(redact(f"no version of {name!r} carries the alias {alias!r} in "
                                    f"{self.settings.resolved_tracking_uri}: {detail}")) from None

    def refresh(self, force: bool = False) -> tuple[str, ServedModel, str | None]:
        """Load the alias's version if it is not the one served: (status, served, previous).

        Without force, a version that failed before is not tried again (the periodic check);
        raises NoChampion or ReloadFailed."""
        with self._lock:
            try:
                version = self.champion_version()
            except NoChampion:
                self._state = NO_CHAMPION
                raise
            current = self.current
            if current is not None and current.version == version:
                self._count("unchanged")
                return "unchanged", current, current.version
            if not force and version == self._failed_version and current is not None:
                raise ReloadFailed(self.last_reload_error or f"version {version} failed before")
            if version != self._failed_version:  # a retry of a failed one stays LOAD_FAILED
                self._state = LOADING
            try:
                served = self.load(version)
            except Exception as exc:  # any failure of a model's code or files: keep serving
                self._state = LOAD_FAILED
                self._failed_version = version
                self.last_reload_error = redact(f"{_now()}: version {version} of "
                                                f"{self.settings.model_name!r} failed to load: "
                                                f"{type(exc).__name__}: {exc}")
                log.exception("reload failed; still serving %s",
                              current.version if current else "nothing")
                self._count("failure")
                raise ReloadFailed(self.last_reload_error) from exc
            self.current, self._failed_version, self.last_reload_error = served, None, None
            # the libraries and the model live as long as the process: a full garbage collection
            # over them held the GIL ~350 ms (a /health stall); frozen, it skips them
            gc.freeze()
            if self.metrics:
                self.metrics.model_swapped(current.ref if current else None, served.ref)
            self._count("success")
            log.info("serving %s version %s", served.name, served.version)
            return "reloaded", served, current.version if current else None

    def load(self, version: str) -> ServedModel:
        """Download, verify, load, tune and smoke-test one version; read its run metrics and
        tags. Only the predictor folder is read (checked against the version's checksum tag):
        no pickle, no code from the artifacts."""
        name = self.settings.model_name
        predictor = load_registered(self.client, name, version)
        tune_for_latency(predictor)
        smoke_test(predictor)
        mv = self.client.get_model_version(name, version)
        metrics = {}
        if mv.run_id:
            try:
                metrics = dict(self.client.get_run(mv.run_id).data.metrics)
            except Exception:  # a deleted run leaves the model servable
                log.warning("run %s of version %s is not readable", mv.run_id, version)
        return ServedModel(name, version, self.settings.alias, predictor, mv.run_id,
                           metrics, dict(mv.tags or {}))

    def refresh_quietly(self) -> None:
        """The periodic check: refresh, logging instead of raising."""
        try:
            self.refresh()
        except NoChampion as exc:
            log.warning("%s", exc)
        except ReloadFailed:
            pass  # logged where it happened; last_reload_error shows it
        except Exception:
            log.exception("champion check failed")

    def _count(self, result: str) -> None:
        if self.metrics:
            self.metrics.reloads.labels(result).inc()
