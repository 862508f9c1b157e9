"""Hostile clients of a real `amhs serve`: a row of 10^6 keys, slow and oversized requests, too
many at once, secrets in the tracking URI, and who may write the prediction log."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import orjson
import psutil
import pytest

from amhs_assets.redact import redact
from amhs_assets_tests.support import TOKEN, free_port, rows, serving, tiny_champion

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOG_TOKEN = "log-token-7c1e5d"
MAX_BODY = 24_000_000
HEAD_TIMEOUT_S, BODY_TIMEOUT_S = 1.5, 2.0
JSON = {"Content-Type": "application/json"}


def day(days_ago: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


PASSWORD = "pa55-w0rd-s3cret"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server: the tiny champion, a log token, short timeouts, two predictions at once, and
    a prediction log holding a day 30 days old (pruned at start) and one 3 days old (kept)."""
    tmp = tmp_path_factory.mktemp("hostile-api")
    for old in (30, 3):
        folder = tmp / "data" / "predictions" / f"date={day(old)}"
        folder.mkdir(parents=True)
        (folder / "part-old-1.jsonl").write_text("{}\n")
    with serving(tmp, tiny_champion().uri, AMHS_LOG_TOKEN=LOG_TOKEN, AMHS_MAX_IN_FLIGHT="2",
                 AMHS_MAX_BODY_BYTES=str(MAX_BODY), AMHS_HEADER_TIMEOUT_S=str(HEAD_TIMEOUT_S),
                 AMHS_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S)) as s:
        yield s


def raw_connection(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_all(sock: socket.socket, limit_s: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (or limit_s)."""
    sock.settimeout(limit_s)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


# --- one request must not freeze the API ------------------------------------------------------

def test_a_row_of_a_million_keys_is_refused_cheaply_while_health_answers(server):
    body = orjson.dumps({"rows": [{f"k{i:07d}": i for i in range(10**6)}]})  # no contract key
    process = psutil.Process(server.process.pid)
    with server.client() as client:
        client.get("/health")
        before = process.memory_info().rss
        answer: dict = {}

        def post() -> None:
            started = time.perf_counter()
            with server.client() as other:
                answer["response"] = other.post("/v1/predict", content=body, headers=JSON)
            answer["seconds"] = time.perf_counter() - started

        thread = threading.Thread(target=post)
        thread.start()
        latencies, peak = [], before
        while thread.is_alive():
            started = time.perf_counter()
            assert client.get("/health").status_code == 200
            latencies.append(time.perf_counter() - started)
            peak = max(peak, process.memory_info().rss)
        thread.join()
    response = answer["response"]
    assert response.status_code == 413, response.text
    assert "1000000 keys" in response.json()["detail"] and "AMHS_MAX_ROW_KEYS" in response.text
    print(f"\n10^6-key row ({len(body) / 1e6:.1f} MB): refused in {answer['seconds']:.3f} s; "
          f"/health x{len(latencies)} max {max(latencies) * 1000:.1f} ms; RSS "
          f"{before / 2**20:.0f} -> peak {peak / 2**20:.0f} MiB")
    assert answer["seconds"] < 5
    assert max(latencies) < 0.1, latencies
    assert peak - before < 400 * 2**20  # the body and the scan's arrays, not gigabytes


def test_a_slow_body_is_cut_off_with_a_408(server):
    sock = raw_connection(server)
    started = time.perf_counter()
    sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n{\"rows\": [")

    def trickle() -> None:
        try:
            for _ in range(40):
                time.sleep(0.2)
                sock.sendall(b" ")
        except OSError:
            pass  # the server closed the connection

    threading.Thread(target=trickle, daemon=True).start()
    answer = read_all(sock)
    elapsed = time.perf_counter() - started
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"AMHS_BODY_TIMEOUT_S" in answer
    assert BODY_TIMEOUT_S <= elapsed < BODY_TIMEOUT_S + 3


def test_slow_or_endless_headers_are_cut_off(server):
    slow, idle, flood = (raw_connection(server) for _ in range(3))
    started = time.perf_counter()
    slow.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
    flood.sendall(b"GET /health HTTP/1.1\r\n" + b"X-Padding: " + b"a" * 40_000 + b"\r\n")
    assert read_all(flood).startswith(b"HTTP/1.1 431")
    for _ in range(4):
        time.sleep(0.2)
        slow.sendall(b"X-Slow: 1\r\n")
    assert read_all(slow).startswith(b"HTTP/1.1 408")
    assert read_all(idle) == b""  # an idle connection is closed without a word
    assert time.perf_counter() - started < HEAD_TIMEOUT_S + 3
    for sock in (slow, idle, flood):
        sock.close()


def test_an_oversized_body_gets_its_413_even_on_a_closing_connection(server):
    body = b'{"rows": [' + b" " * (MAX_BODY + 1_000_000) + b"]}"
    for expect in (b"", b"Expect: 100-continue\r\n"):
        sock = raw_connection(server)
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\n" + expect +
                     f"Content-Length: {len(body)}\r\n\r\n".encode())
        if not expect:
            sock.sendall(body)  # all of it: the server reads it to the end before answering
        answer = read_all(sock)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 413"), (expect, answer[:200])
        assert b"AMHS_MAX_BODY_BYTES" in answer


def test_requests_over_the_in_flight_limit_get_a_503_with_retry_after(server):
    held = [raw_connection(server) for _ in range(2)]
    for sock in held:  # two requests whose bodies never come hold both places
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")
    time.sleep(0.3)
    with server.client() as client:
        busy = client.post("/v1/predict", json={"rows": list(rows())})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert "AMHS_MAX_IN_FLIGHT" in busy.json()["detail"]
        assert client.get("/health").status_code == 200
        for sock in held:  # clients that go away free their places
            sock.close()
        deadline = time.monotonic() + 5
        while (answer := client.post("/v1/predict", json={"rows": list(rows())})).status_code \
                == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answer.status_code == 200, answer.text


# --- the prediction log -----------------------------------------------------------------------

def logged_lines(server) -> set[str]:
    folder = server.data_dir / "predictions" / f"date={day(0)}"
    return {json.loads(line)["line_id"] for path in folder.glob("part-*.jsonl")
            for line in path.read_text().splitlines()}


def test_old_log_days_are_pruned_at_start_and_recent_ones_kept(server):
    predictions = server.data_dir / "predictions"
    deadline = time.monotonic() + 5  # the writer thread prunes as it starts
    while (predictions / f"date={day(30)}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (predictions / f"date={day(30)}").exists()
    assert (predictions / f"date={day(3)}" / "part-old-1.jsonl").exists()


def test_only_requests_with_the_log_token_feed_the_prediction_log(server):
    def request(line: str, headers: dict) -> None:
        records = [dict(r, line_id=line) for r in rows() if r["line_id"] == "A"]
        answer = client.post("/v1/predict", json={"rows": records}, headers=headers)
        assert answer.status_code == 200, answer.text  # answered either way

    def unlogged() -> float:
        text = client.get("/metrics").text
        return float(text.split("\namhs_predictions_unlogged_total ")[1].split()[0])

    with server.client() as client:
        before = unlogged()
        request("ANONYMOUS", {})
        request("WRONG", {"X-AMHS-Log-Token": "guess"})
        request("TRUSTED", {"X-AMHS-Log-Token": LOG_TOKEN})
        deadline = time.monotonic() + 10
        while "TRUSTED" not in logged_lines(server) and time.monotonic() < deadline:
            time.sleep(0.3)  # the writer flushes about every second
        assert logged_lines(server) & {"TRUSTED", "ANONYMOUS", "WRONG"} == {"TRUSTED"}
        assert unlogged() == before + 2


# --- secrets ----------------------------------------------------------------------------------

def test_a_tracking_uri_password_is_never_logged_or_answered(tmp_path):
    uri = f"http://amhs-user:{PASSWORD}@127.0.0.1:{free_port()}"  # nobody listens there
    with serving(tmp_path, uri, wait_model=False, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                 MLFLOW_HTTP_REQUEST_TIMEOUT="5") as server, server.client() as client:
        reload = client.post("/v1/reload", headers=AUTH)
        assert reload.status_code == 409 and "amhs-user:***@127.0.0.1" in reload.text
        answers = [reload, client.get("/v1/model"), client.get("/health"),
                   client.post("/v1/predict", json={"rows": list(rows())})]
        assert [a.status_code for a in answers[1:]] == [503, 503, 503]
        log = server.log.read_text()
    assert "amhs-user:***@" in log  # the URI was logged, masked
    for text in [log, *(a.text for a in answers)]:
        assert PASSWORD not in text


def test_redact_masks_passwords_tokens_and_known_secrets():
    assert redact("http://u:p%40ss@h:5000/x") == "http://u:***@h:5000/x"
    assert redact("https://ghp_token@host/api") == "https://***@host/api"
    assert redact("postgresql://db/x?sslmode=require&password=hunter2") == \
        "postgresql://db/x?sslmode=require&password=***"
    assert redact("sqlite:////data/mlflow.db and bob@example.com") == \
        "sqlite:////data/mlflow.db and bob@example.com"
    assert redact(ValueError("token abc123xyz"), ["abc123xyz"]) == "token ***"
