"""REST API latency and throughput: `amhs serve` against `mlflow models serve` on the same model.

Both run as real server processes on loopback with one worker each; the same 2 lines x 150 rows
go to each (our /v1/predict takes the contract's JSON rows; MLflow's /invocations takes them as
`dataframe_split`, with the types of the model's signature). Prints p50/p99 latency and
requests per second at concurrency 1 and 8, and the ratio MLflow / ours.

    python benchmarks/bench_api.py                       # builds a tiny champion in a temp dir
    python benchmarks/bench_api.py --tracking-uri sqlite:///data/mlflow/mlflow.db
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import orjson

from amhs_assets.contract import NUMERIC_COLUMNS, RAW_COLUMNS
from amhs_assets_tests.support import build_tiny_champion, request_rows

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 180.0) -> None:
    """Poll url until it answers 200 (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s")


def mlflow_body(rows: list[dict]) -> bytes:
    """The rows as MLflow's scoring server takes them: dataframe_split, numbers as doubles and
    naive UTC timestamps (the model's signature)."""
    data = [[(r[c].replace("Z", "").split(".")[0] if c == "timestamp" else
              None if r[c] is None else float(r[c]) if c in NUMERIC_COLUMNS else r[c])
             for c in RAW_COLUMNS] for r in rows]
    return orjson.dumps({"dataframe_split": {"columns": list(RAW_COLUMNS), "data": data}})


def measure(url: str, body: bytes, concurrency: int, n: int, max_s: float) -> dict:
    """Fire up to n POSTs (stopping after max_s) from `concurrency` threads; latency figures."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + max_s
    headers = {"Content-Type": "application/json"}

    def worker(count: int) -> None:
        with httpx.Client(timeout=60) as client:
            for _ in range(count):
                if time.monotonic() > stop_at:
                    return
                t0 = time.perf_counter()
                status = client.post(url, content=body, headers=headers).status_code
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    failures[0] += status != 200

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, [n // concurrency] * concurrency))
    wall = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {"n": len(lat), "failures": failures[0], "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "rps": len(lat) / wall}


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A server process, its output in a log file."""
    return subprocess.Popen(cmd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server process and wait for it."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_server(name: str, cmd: list[str], ready: str, url: str, body: bytes, env: dict,
                 work: Path, args: argparse.Namespace) -> dict[int, dict]:
    """Start one server, warm it up, measure at concurrency 1 and 8, stop it."""
    log = work / f"{name}.log"
    proc = start(cmd, env, log)
    try:
        try:
            wait_ready(ready, proc)
        except (RuntimeError, TimeoutError):
            sys.stderr.write(log.read_text(errors="replace")[-3000:])
            raise
        warm = measure(url, body, 1, args.warmup, 60)
        if warm["failures"]:
            sys.stderr.write(log.read_text(errors="replace")[-3000:])
            raise RuntimeError(f"{name}: {warm['failures']} failed warm-up request(s)")
        n = args.requests if name == "amhs" else args.mlflow_requests
        figures = {c: measure(url, body, c, n, args.max_seconds) for c in (1, 8)}
        answer = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        return {**figures, "answer": answer.json()}
    finally:
        stop(proc)


def same_answers(ours: dict, theirs: dict) -> bool:
    """Both servers forecast the same 10-minute average for the same lines."""
    flat = {p["line_id"]: p["h10_avg"] for p in theirs["predictions"]}
    return {p["line_id"]: p["horizons"]["10"]["avg"] for p in ours["predictions"]} == flat


def report(results: dict[str, dict]) -> None:
    """The figures as a table, and MLflow / ours."""
    print(f"{'server':<8} {'conc':>4} {'n':>6} {'fail':>4} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for name, by_c in results.items():
        for c, r in ((c, r) for c, r in by_c.items() if c != "answer"):
            print(f"{name:<8} {c:>4} {r['n']:>6} {r['failures']:>4} {r['p50']:>8.2f} "
                  f"{r['p99']:>8.2f} {r['rps']:>8.1f}")
    if "mlflow" in results:
        for c in (1, 8):
            ours, theirs = results["amhs"][c], results["mlflow"][c]
            print(f"concurrency {c}: MLflow / ours p50 = {theirs['p50'] / ours['p50']:.1f}x, "
                  f"p99 = {theirs['p99'] / ours['p99']:.1f}x, "
                  f"ours / MLflow req/s = {ours['rps'] / theirs['rps']:.1f}x")
        agree = same_answers(results["amhs"]["answer"], results["mlflow"]["answer"])
        print(f"same forecasts from both servers: {'yes' if agree else 'NO'}")
        ok = results["amhs"][1]["p50"] <= results["mlflow"][1]["p50"] / 2
        print(f"goal p50 <= half of MLflow's at concurrency 1: {'met' if ok else 'NOT met'}")
    p99 = results["amhs"][1]["p99"]
    print(f"goal p99 < 20 ms at concurrency 1: {'met' if p99 < 20 else 'NOT met'} ({p99:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", help="an MLflow store with amhs-predictor@champion "
                                               "[default: build a tiny one in a temp dir]")
    parser.add_argument("--requests", type=int, default=400, help="requests per run, ours")
    parser.add_argument("--mlflow-requests", type=int, default=120, help="per run, MLflow's")
    parser.add_argument("--warmup", type=int, default=20, help="requests before measuring")
    parser.add_argument("--max-seconds", type=float, default=60, help="time limit per run")
    parser.add_argument("--skip-mlflow", action="store_true", help="measure our server only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        work = Path(tmp)
        uri = args.tracking_uri
        if not uri:
            uri = f"sqlite:///{work / 'mlflow.db'}"
            t0 = time.perf_counter()
            version = build_tiny_champion(uri, work)
            print(f"tiny champion v{version} built in {time.perf_counter() - t0:.0f} s")
        rows = request_rows(150, ("A", "B"))
        (work / "tmp").mkdir()
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "AMHS_DATA_DIR": str(work / "data"),
               "AMHS_RELOAD_INTERVAL_S": "0", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
               "TMPDIR": str(work / "tmp"),  # MLflow's model downloads go away with the rest
               "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # mlflow runs `uvicorn`
        results = {}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        results["amhs"] = bench_server(
            "amhs", [str(BIN / "amhs"), "serve", "--port", str(port)], f"{base}/health",
            f"{base}/v1/predict", orjson.dumps({"rows": rows}), env, work, args)
        if not args.skip_mlflow:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            results["mlflow"] = bench_server(
                "mlflow", [str(BIN / "mlflow"), "models", "serve", "-m",
                           "models:/amhs-predictor@champion", "--env-manager", "local",
                           "-h", "127.0.0.1", "-p", str(port)], f"{base}/ping",
                f"{base}/invocations", mlflow_body(rows), env, work, args)
        print(f"request: 2 lines x 150 rows; one worker per server; {os.cpu_count()} CPU(s)")
        report(results)


if __name__ == "__main__":
    main()
