"""Loading and hot-reloading the champion in a real `amhs serve` process: 503 without one, the
token on POST /v1/reload, a swap under load with no failed request, a broken version refused."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from amhs_assets.contract import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from amhs_assets_tests.support import (
    TOKEN,
    new_store,
    register,
    rows,
    serving,
    tiny_champion,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def predict(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/predict", json={"rows": list(rows())})


def served_state(client: httpx.Client) -> tuple[int, int, str]:
    """(status of /health, status of /ready, the state both name, or "changing" when it changed
    between the two answers)."""
    health, ready = client.get("/health"), client.get("/ready")
    states = {health.json()["state"], ready.json()["state"]}
    return health.status_code, ready.status_code, states.pop() if len(states) == 1 else "changing"


def wait_state(client: httpx.Client, state: str, timeout_s: float = 60) -> tuple[int, int, str]:
    """Poll /health and /ready until they name `state`."""
    deadline = time.monotonic() + timeout_s
    while (seen := served_state(client))[2] != state and time.monotonic() < deadline:
        time.sleep(0.2)
    return seen


def test_health_and_ready_tell_no_champion_a_failed_load_and_ready_apart(tmp_path):
    uri = new_store(tmp_path)
    with serving(tmp_path, uri, wait_model=False, AMHS_RELOAD_INTERVAL_S="1",
                 AMHS_API_TOKEN="") as server, server.client() as client:
        assert wait_state(client, "no_champion") == (503, 503, "no_champion")
        for answer in (client.get("/health"), client.get("/ready"), predict(client),
                       client.get("/v1/model")):
            assert answer.status_code == 503, answer.text
            assert answer.json()["detail"].startswith("no model loaded: no version of")
        disabled = client.post("/v1/reload", headers=AUTH)
        assert disabled.status_code == 403 and "AMHS_API_TOKEN" in disabled.json()["detail"]
        register(tiny_champion(), uri, alias=None)  # the registered model, no alias yet
        bad = broken_version(uri, tmp_path)  # the periodic alias check tries it
        assert wait_state(client, "load_failed") == (503, 503, "load_failed")
        failed = client.get("/ready").json()
        assert "failed to load" in failed["detail"] and f"version {bad}" in failed[
            "last_reload_error"]
        register(tiny_champion(), uri)  # a loadable champion: picked up by the next check
        assert wait_state(client, "ready") == (200, 200, "ready")
        assert client.get("/ready").json() == client.get("/health").json() == {
            "status": "ok", "state": "ready", "model": {
                "name": REGISTERED_MODEL_NAME, "version": "3", "alias": CHAMPION_ALIAS}}
        assert predict(client).json()["model"]["version"] == "3"


class StallingTracking(http.server.BaseHTTPRequestHandler):
    """An MLflow tracking server that holds every request until `release` is set, then answers
    404: a store too slow to say which version is champion, then one without it."""

    release = threading.Event()

    def do_GET(self) -> None:
        self.release.wait(120)
        body = b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such alias"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


def test_health_and_ready_answer_loading_at_once_while_the_store_is_slow(tmp_path):
    tracking = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StallingTracking)
    threading.Thread(target=tracking.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{tracking.server_address[1]}"
    try:
        with serving(tmp_path, uri, wait_model=False) as server, server.client() as client:
            time.sleep(1)  # the champion check is waiting on the store by now
            started = time.perf_counter()
            assert served_state(client) == (503, 503, "loading")
            assert time.perf_counter() - started < 1.0  # two answers, neither waits on the store
            assert "still loading" in client.get("/ready").json()["detail"]
            StallingTracking.release.set()
            assert wait_state(client, "no_champion") == (503, 503, "no_champion")
    finally:
        StallingTracking.release.set()
        with contextlib.suppress(Exception):
            tracking.shutdown()


@pytest.fixture(scope="module")
def reloadable(tmp_path_factory):
    """A server with the token over a store of its own, serving version 1."""
    tmp = tmp_path_factory.mktemp("reload")
    uri = new_store(tmp)
    register(tiny_champion(), uri)
    with serving(tmp, uri) as server:
        yield server, uri, tmp


def test_reload_refuses_a_missing_or_wrong_token(reloadable):
    server, _, _ = reloadable
    with server.client() as client:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
            answer = client.post("/v1/reload", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"] == "Bearer"
        assert client.post("/v1/reload", headers=AUTH).json()["status"] == "unchanged"


def fire(server, answers: list, stop: threading.Event) -> None:
    """Predict in a loop until stopped, keeping (status, version) of every answer."""
    with server.client() as client:
        while not stop.is_set():
            answer = predict(client)
            version = answer.json()["model"]["version"] if answer.status_code == 200 else None
            answers.append((answer.status_code, version))


def test_reload_during_a_stream_of_requests_fails_none(reloadable):
    server, uri, tmp = reloadable
    with server.client() as client:
        before = client.get("/v1/model").json()["version"]
        new = register(tiny_champion(), uri)  # moves the alias
        answers: list = []
        stop = threading.Event()
        thread = threading.Thread(target=fire, args=(server, answers, stop))
        thread.start()
        time.sleep(0.5)
        reload = client.post("/v1/reload", headers=AUTH)
        time.sleep(0.5)
        stop.set()
        thread.join(30)
        assert reload.status_code == 200, reload.text
        assert reload.json() == {"status": "reloaded", "previous_version": before,
                                 "model": {"name": REGISTERED_MODEL_NAME, "version": new,
                                           "alias": CHAMPION_ALIAS}}
        assert answers and all(status == 200 for status, _ in answers), answers
        versions = [v for _, v in answers]
        assert versions[0] == before and versions[-1] == new
        assert versions == sorted(versions, key=versions.index)  # never back to the old one
        assert set(versions) <= {before, new}
        assert client.get("/v1/model").json()["version"] == new
        assert 'amhs_model_reloads_total{result="success"} 2.0' in client.get("/metrics").text


def broken_version(uri: str, tmp: Path) -> str:
    """A registered version whose files cannot be loaded (no checksum tag, no predictor)."""
    folder = tmp / "broken-model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors:\n  python_function:\n"
                                    "    loader_module: mlflow.pyfunc.model\n"
                                    "    python_model: python_model.pkl\n")
    client = MlflowClient(uri, uri)
    version = client.create_model_version(REGISTERED_MODEL_NAME, str(folder)).version
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, version)
    return str(version)


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(reloadable):
    server, uri, tmp = reloadable
    with server.client() as client:
        served = client.get("/v1/model").json()["version"]
        bad = broken_version(uri, tmp)
        answer = client.post("/v1/reload", headers=AUTH)
        assert answer.status_code == 502 and f"version {bad}" in answer.json()["detail"]
        info = client.get("/v1/model").json()
        assert info["version"] == served
        assert f"version {bad}" in info["last_reload_error"]
        assert "artifact_sha256" in info["last_reload_error"]
        ok = predict(client)
        assert ok.status_code == 200 and ok.json()["model"]["version"] == served
        assert 'amhs_model_reloads_total{result="failure"} 1.0' in client.get("/metrics").text
