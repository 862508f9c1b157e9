"""Loading and hot-reloading the champion in a real `amhs serve` process: 503 without one, the
token on POST /v1/reload, a swap under load with no failed request, a broken version refused."""

from __future__ import annotations

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


def test_no_champion_is_a_503_until_one_is_registered_and_found(tmp_path):
    uri = new_store(tmp_path)
    with serving(tmp_path, uri, wait_model=False, AMHS_RELOAD_INTERVAL_S="1",
                 AMHS_API_TOKEN="") as server, server.client() as client:
        for answer in (client.get("/health"), predict(client), client.get("/v1/model")):
            assert answer.status_code == 503, answer.text
            assert "no model loaded" in answer.json()["detail"]
        disabled = client.post("/v1/reload", headers=AUTH)
        assert disabled.status_code == 403 and "AMHS_API_TOKEN" in disabled.json()["detail"]
        register(tiny_champion(), uri)  # the periodic alias check picks it up
        server.wait_for("/health", 200, timeout_s=60)
        assert predict(client).json()["model"]["version"] == "1"


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
