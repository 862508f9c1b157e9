"""Shared by the API tests (no tests here): a tiny trained champion built once per session, and
real `amhs serve` processes on free loopback ports."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from amhs_assets.contract import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from amhs_assets.serve.tiny import register_version, request_rows, simulated_rows, train_tiny_predictor

TOKEN = "test-token-3f9a"


@dataclass(frozen=True)
class Champion:
    """A trained predictor, a store where it is champion v1, and the logged model's files."""

    predictor: object
    uri: str
    model_dir: str


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
    logged = client.get_model_version(REGISTERED_MODEL_NAME, version).source
    model_dir = client.get_logged_model(logged.removeprefix("models:/")).artifact_location
    return Champion(predictor, uri, model_dir)


def new_store(tmp_path: Path) -> str:
    """An empty MLflow store of its own (a test that moves aliases must not share one), its
    tables made now: a server and a test creating them at once would collide."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri, uri).search_registered_models()
    return uri


def register(champion: Champion, uri: str, alias: str | None = CHAMPION_ALIAS) -> str:
    """A new version of amhs-predictor in `uri` made of the champion's logged files (no
    retraining, no re-logging); alias moved to it. Returns the version."""
    client = MlflowClient(uri, uri)
    with contextlib.suppress(MlflowException):  # already there
        client.create_registered_model(REGISTERED_MODEL_NAME)
    version = str(client.create_model_version(REGISTERED_MODEL_NAME, champion.model_dir).version)
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
