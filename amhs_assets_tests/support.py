"""Helpers shared by the tests and the API benchmark (no tests here): contract-valid raw rows
built by hand, a tiny champion trained in seconds on simulated logs, and real `amhs serve`
processes on free loopback ports."""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from amhs_assets.contract import (
    CHAMPION_ALIAS,
    FAB_TIMEZONE,
    HORIZONS,
    RAW_COLUMNS,
    REGISTERED_MODEL_NAME,
    TARGET_COLUMN,
)


# --- raw rows built by hand -------------------------------------------------------------------
def valid_rows(n: int = 30, line_id: str = "L1", start: str = "2026-03-01T00:00:00Z",
               seed: int = 0) -> pd.DataFrame:
    """n consecutive minutes of one line that satisfy every rule of the contract."""
    rng = np.random.default_rng(seed)
    total = np.full(n, 200)
    completed = rng.integers(0, 40, n)
    completed[::7] = 0  # some minutes complete nothing: transfer times empty
    avg = rng.uniform(90, 400, n).round(2)
    frame = pd.DataFrame({
        "timestamp": pd.date_range(start, periods=n, freq="min").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "line_id": line_id,
        "vehicles_total": total,
        "vehicles_active": rng.integers(50, 150, n),
        "vehicles_idle": rng.integers(0, 40, n),
        "vehicles_down": rng.integers(0, 10, n),
        "jobs_requested": rng.integers(10, 50, n),
        "jobs_completed": completed,
        "jobs_queued": rng.integers(0, 30, n),
        "jobs_cancelled": rng.integers(0, 2, n),
        "wait_time_avg_s": rng.uniform(5, 100, n).round(2),
        "travel_time_avg_s": rng.uniform(60, 200, n).round(2),
        "transfer_time_avg_s": avg,
        "transfer_time_max_s": (avg + rng.uniform(0, 100, n)).round(2),
        "transfer_time_min_s": (avg - rng.uniform(0, 80, n)).round(2),
        "vehicle_speed_avg_mps": rng.uniform(2, 5, n).round(3),
        "congested_segments": rng.integers(0, 5, n),
        "blocked_segments": rng.integers(0, 2, n),
        "rail_utilization_pct": rng.uniform(20, 90, n).round(2),
        "stocker_in": rng.integers(0, 10, n),
        "stocker_out": rng.integers(0, 10, n),
        "stocker_util_pct": rng.uniform(40, 90, n).round(2),
        "port_busy_pct": rng.uniform(20, 90, n).round(2),
        "hoist_ops": rng.integers(10, 80, n),
        "hoist_time_avg_s": rng.uniform(10, 20, n).round(2),
        "alarms_minor": rng.integers(0, 3, n),
        "alarms_major": (rng.random(n) < 0.05).astype(int),
        "comm_errors": rng.integers(0, 4, n),
        "retry_count": rng.integers(0, 4, n),
        "wip_lots": rng.integers(500, 900, n),
        "tool_down_count": rng.integers(0, 6, n),
        "pm_active": (rng.random(n) < 0.1).astype(int),
    })
    for col in ("transfer_time_avg_s", "transfer_time_max_s", "transfer_time_min_s"):
        frame[col] = frame[col].astype(object).where(completed > 0, "")
    assert list(frame.columns) == list(RAW_COLUMNS)
    return frame


# --- a tiny champion on simulated logs ---------------------------------------------------------
START = pd.Timestamp("2026-02-02", tz="UTC")
EXPERIMENT = "amhs-tiny"
THRESHOLDS = {"warning_s": 300.0, "critical_s": 600.0, "target_column": TARGET_COLUMN}


def simulated_rows(line_ids: tuple[str, ...] = ("A", "B"), days: float = 2, seed: int = 21
                   ) -> pd.DataFrame:
    """Raw contract rows of simulated lines (timestamps as UTC datetimes)."""
    from amhs_assets.simulate.lines import simulate_lines

    frames = simulate_lines(list(line_ids), START, days, seed)
    return pd.concat(frames.values(), ignore_index=True)[list(RAW_COLUMNS)]


def train_tiny_predictor(raw: pd.DataFrame):
    """An AmhsPredictor of per-horizon XGBoost models with a handful of shallow trees."""
    from amhs_assets.features.spec import FEATURE_NAMES
    from amhs_assets.models.dataset import dataset_from_raw
    from amhs_assets.models.xgb import XgbConfig, fit_xgb_model
    from amhs_assets.registry.predictor import AmhsPredictor

    dataset = dataset_from_raw(raw, HORIZONS, THRESHOLDS)[1]
    config = XgbConfig(num_boost_round=5, early_stopping_rounds=5, max_depth=3, max_bin=16,
                       device="cpu", seed=3)
    model = fit_xgb_model(dataset, config)
    return AmhsPredictor(model, {"feature_names": list(FEATURE_NAMES)})


def register_version(predictor, raw: pd.DataFrame, tracking_uri: str, workdir: Path,
                     alias: str | None = CHAMPION_ALIAS, metrics: dict | None = None) -> str:
    """Log and register the predictor as a new version of amhs-predictor; point alias at it."""
    import mlflow
    from mlflow import MlflowClient

    from amhs_assets.registry.predictor import log_predictor

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri, tracking_uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:  # artifacts beside the store
        client.create_experiment(EXPERIMENT, artifact_location=str(Path(workdir) / "artifacts"))
    mlflow.set_experiment(EXPERIMENT)
    example = raw[raw["line_id"] == raw["line_id"].iloc[0]].tail(130).copy()
    # MLflow's signature takes naive datetimes only: naive means UTC in the contract
    example["timestamp"] = pd.to_datetime(example["timestamp"], utc=True).dt.tz_convert(None)
    with mlflow.start_run():
        if metrics:
            mlflow.log_metrics(metrics)
        info = log_predictor(predictor, example, Path(workdir), REGISTERED_MODEL_NAME)
    version = str(info.registered_model_version)
    if alias:
        client.set_registered_model_alias(REGISTERED_MODEL_NAME, alias, version)
    return version


def build_tiny_champion(tracking_uri: str, workdir: Path) -> str:
    """Simulate, train and register a champion in the given store; returns its version."""
    raw = simulated_rows()
    return register_version(train_tiny_predictor(raw), raw, tracking_uri, workdir,
                            metrics={"test_mae_avg_h10": 12.3})


def json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as the API takes them: ISO 8601 timestamps, null for empty values."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def request_rows(minutes: int = 150, line_ids: tuple[str, ...] = ("A", "B")) -> list[dict]:
    """The latest `minutes` simulated rows of each line, ready for POST /v1/predict."""
    raw = simulated_rows(line_ids, days=1, seed=5)
    return json_records(raw.groupby("line_id").tail(minutes))


# --- a shared champion and real API processes ----------------------------------------------------
TOKEN = "test-token-3f9a"


@dataclass(frozen=True)
class Champion:
    """A trained predictor, a store where it is champion v1, and the logged model's files."""

    predictor: object
    uri: str
    model_dir: str
    checksum: str = ""  # its artifact_sha256 tag: a version made of model_dir needs it to load


@functools.cache
def tiny_champion() -> Champion:
    """Train, log and register once per test session (about 20 s); removed at exit."""
    workdir = Path(tempfile.mkdtemp(prefix="amhs-serve-tests-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    raw = simulated_rows()
    predictor = train_tiny_predictor(raw)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    version = register_version(predictor, raw, uri, workdir, metrics={"test_mae_avg_h10": 12.3})
    client = MlflowClient(uri, uri)
    registered = client.get_model_version(REGISTERED_MODEL_NAME, version)
    logged = registered.source.removeprefix("models:/")
    model_dir = client.get_logged_model(logged).artifact_location
    return Champion(predictor, uri, model_dir, registered.tags["artifact_sha256"])


def new_store(tmp_path: Path) -> str:
    """An empty MLflow store of its own (a test that moves aliases must not share one), its
    tables made now: a server and a test creating them at once would collide."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri, uri).search_registered_models()
    return uri


def stub_store(data: Path) -> types.SimpleNamespace:
    """An embedded store in the data folder `data` and a stub logged model to register versions
    of (no training: the registry and its ledger never look inside a version): data, tracking,
    client, info (what register_version takes), uri, env (for `amhs` against this store)."""
    from amhs_assets.defs.resources import MlflowTracking
    from amhs_assets.registry import store as reg

    tracking = MlflowTracking.for_data_dir(data)
    client = tracking.client()
    experiment = reg.ensure_experiment(client, "amhs", tracking.artifact_location)
    run = client.create_run(experiment)
    client.log_text(run.info.run_id, "stub", "model/MLmodel")
    client.set_terminated(run.info.run_id)
    info = types.SimpleNamespace(model_uri=f"runs:/{run.info.run_id}/model",
                                 run_id=run.info.run_id, model_id=None)
    return types.SimpleNamespace(data=data, tracking=tracking, client=client, info=info,
                                 uri=tracking.tracking_uri,
                                 env={"AMHS_DATA_DIR": str(data), "MLFLOW_TRACKING_URI": ""})


def champion_of(store, name: str = REGISTERED_MODEL_NAME) -> str | None:
    """The version the champion alias points at in a stub_store, or None."""
    from amhs_assets.registry import store as reg

    ref = reg.version_ref(store.client, name, CHAMPION_ALIAS)
    return ref.version if ref else None


def register(champion: Champion, uri: str, alias: str | None = CHAMPION_ALIAS) -> str:
    """A new version of amhs-predictor in `uri` made of the champion's logged files (no
    retraining, no re-logging); alias moved to it. Returns the version."""
    client = MlflowClient(uri, uri)
    with contextlib.suppress(MlflowException):  # already there
        client.create_registered_model(REGISTERED_MODEL_NAME)
    version = str(client.create_model_version(
        REGISTERED_MODEL_NAME, champion.model_dir,
        tags={"artifact_sha256": champion.checksum}).version)
    if alias:
        client.set_registered_model_alias(REGISTERED_MODEL_NAME, alias, version)
    return version


@functools.cache
def rows(minutes: int = 150) -> tuple:
    """2 lines x `minutes` contract rows as JSON records (cached; copy before changing)."""
    return tuple(request_rows(minutes, ("A", "B")))


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running `amhs serve` process."""

    url: str
    process: subprocess.Popen
    log: Path
    data_dir: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def wait_for(self, path: str = "/health", status: int = 200, timeout_s: float = 90) -> None:
        """Poll until path answers status (the process must stay alive)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=5).status_code == status:
                    return
            time.sleep(0.25)
        raise TimeoutError(f"{path} never answered {status}: {self.log.read_text()[-3000:]}")


@contextlib.contextmanager
def serving(tmp_path: Path, uri: str, wait_model: bool = True, **env: str) -> Iterator[Server]:
    """`amhs serve --port N` over the store at uri, data under tmp_path; stopped at the end."""
    port, data_dir, log = free_port(), tmp_path / "data", tmp_path / f"server-{time.time_ns()}.log"
    full_env = {**os.environ, "AMHS_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": uri,
                "AMHS_RELOAD_INTERVAL_S": "0", "AMHS_API_TOKEN": TOKEN, **env}
    cmd = [sys.executable, "-c", "from amhs_assets.cli import main; main()", "serve",
           "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", proc, log, data_dir)
    try:
        server.wait_for("/openapi.json")
        if wait_model:
            server.wait_for("/health")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- scored forecasts for the performance check ------------------------------------------------
def simulated_scored(offset: float, seed: int = 1) -> pd.DataFrame:
    """Two lines x 6 hours x 3 horizons: predictions = actual + noise (+ offset)."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2026-03-01", periods=360, freq="min", tz="UTC")
    keys = pd.MultiIndex.from_product([["A", "B"], stamps, [10, 15, 25]],
                                      names=["line_id", "timestamp", "horizon"]).to_frame(index=False)
    actual = rng.gamma(20, 10, len(keys))
    pred = actual + rng.normal(0, 10, len(keys)) + offset
    return keys.assign(model_version="3", source="backtest", actual_avg=actual, pred_avg=pred,
                       actual_min=actual * 0.8, pred_min=pred * 0.8, actual_max=actual * 1.2,
                       pred_max=pred * 1.2, actual_state=0, pred_state=0)

def with_critical_minutes(scored: pd.DataFrame, share: float, caught: float, seed: int = 2
                          ) -> pd.DataFrame:
    """Scored rows where a share of minutes is CRITICAL and the model catches `caught` of them."""
    rng = np.random.default_rng(seed)
    critical = rng.random(len(scored)) < share
    hit = critical & (rng.random(len(scored)) < caught)
    return scored.assign(actual_state=np.where(critical, 2, 0), pred_state=np.where(hit, 2, 0))


def write_local_days(rows: pd.DataFrame, raw_dir: Path, timezone: str = FAB_TIMEZONE
                     ) -> dict[str, Path]:
    """Raw rows as one CSV per line and fab-local day (raw_dir/<line>/<line>_<day>.csv), the
    way a fab whose loggers rotate at local midnight writes them; {day: path} of the last line."""
    stamps = pd.to_datetime(rows["timestamp"], utc=True)
    days = stamps.dt.tz_convert(timezone).dt.strftime("%Y-%m-%d")
    text = rows.assign(timestamp=stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    paths = {}
    for (line, day), part in text.groupby([rows["line_id"], days], sort=True):
        path = Path(raw_dir) / str(line) / f"{line}_{day}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        part.to_csv(path, index=False, na_rep="")
        paths[day] = path
    return paths
