"""The production profile on one machine, for a trial: `amhs up` / `amhs down` (`make up`).

PostgreSQL (Dagster's runs, event logs and schedules; MLflow's tracking store and registry),
Redis (the Celery broker and result backend), the MLflow server (proxied artifacts), the Dagster
webserver and daemon, Celery workers and the API, each a local process with its log under
``<stack>/logs`` and its PID under ``<stack>/pids``. On a cluster the same topology comes from
deploy/docker-compose.yml or Dagster's Helm chart (deploy/README.md); here every part is the
Debian or PyPI package itself, started in a folder of its own.

Secrets come from the environment (AMHS_PG_PASSWORD, AMHS_REDIS_PASSWORD); when unset, `amhs up`
makes them once and keeps them in ``<stack>/secrets.env`` (mode 0600, outside git).
``<stack>/stack.env`` holds the environment of every service: ``source`` it to point the CLI at
the stack. PostgreSQL refuses to run as root: as root, it runs as the OS user ``amhs-pg``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from amhs_assets.config import DEPLOY_DIR

REPO_DIR = DEPLOY_DIR.parent
PG_OS_USER = "amhs-pg"  # PostgreSQL refuses to run as root
PG_DB_USER = "amhs"
MARKER = "AMHS_STACK_DIR"  # every process of a stack carries it: `down` finds stragglers by it
POOL_LIMITS = {"amhs_training": 2, "amhs_ingest": 4}  # steps at once (pools of defs.partitions)


class StackError(RuntimeError):
    """A service that could not be installed, started or reached, with the reason."""


@dataclass
class Stack:
    """One machine's production-profile stack under `root` (ports from the environment)."""

    root: Path
    data_dir: Path
    pg_port: int = 55432
    redis_port: int = 56379
    mlflow_port: int = 5050
    dagster_port: int = 3000
    api_port: int = 8000
    workers: int = 2
    settings_file: Path | None = None
    artifacts: str = ""  # MLflow's --artifacts-destination; default <root>/mlflow-artifacts
    celery_config: Path = DEPLOY_DIR / "celery.yaml"  # the executor's and the workers' YAML
    extra_env: dict[str, str] = field(default_factory=dict)
    _log_offsets: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Stack:
        """The stack the environment describes (AMHS_STACK_DIR, AMHS_*_PORT, AMHS_DATA_DIR)."""
        env = os.environ if env is None else env
        settings = env.get("AMHS_SETTINGS") or str(DEPLOY_DIR / "settings.yaml")
        return cls(root=Path(env.get(MARKER) or REPO_DIR / ".amhs_stack").resolve(),
                   data_dir=Path(env.get("AMHS_DATA_DIR") or REPO_DIR / "data").resolve(),
                   pg_port=int(env.get("AMHS_PG_PORT") or 55432),
                   redis_port=int(env.get("AMHS_REDIS_PORT") or 56379),
                   mlflow_port=int(env.get("AMHS_MLFLOW_PORT") or 5050),
                   dagster_port=int(env.get("AMHS_DAGSTER_PORT") or 3000),
                   api_port=int(env.get("AMHS_API_PORT") or 8000),
                   workers=int(env.get("AMHS_WORKERS") or 2),
                   settings_file=Path(settings),
                   artifacts=env.get("AMHS_ARTIFACTS_DESTINATION") or "",
                   celery_config=Path(env.get("AMHS_CELERY_CONFIG") or DEPLOY_DIR / "celery.yaml"))

    # --- places ---------------------------------------------------------------------------
    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def pg_data(self) -> Path:
        return self.root / "postgres"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def services(self) -> tuple[str, ...]:
        workers = tuple(f"worker-{i + 1}" for i in range(self.workers))
        return ("postgres", "redis", "mlflow", "dagster-webserver", "dagster-daemon",
                *workers, "api")

    def urls(self) -> dict[str, str]:
        return {"mlflow": f"http://127.0.0.1:{self.mlflow_port}",
                "dagster-webserver": f"http://127.0.0.1:{self.dagster_port}",
                "api": f"http://127.0.0.1:{self.api_port}"}

    # --- secrets and the services' environment ------------------------------------------
    def secrets(self) -> dict[str, str]:
        """AMHS_PG_PASSWORD and AMHS_REDIS_PASSWORD: from the environment, else made once and
        kept in <root>/secrets.env (0600)."""
        path = self.root / "secrets.env"
        kept = _read_env_file(path)
        values = {name: os.environ.get(name) or kept.get(name) or secrets.token_urlsafe(24)
                  for name in ("AMHS_PG_PASSWORD", "AMHS_REDIS_PASSWORD")}
        if values != kept:
            _write_private(path, "".join(f"{k}={v}\n" for k, v in values.items()))
        return values

    def env(self) -> dict[str, str]:
        """The environment of every service (and of a CLI pointed at the stack)."""
        s = self.secrets()
        redis = f"redis://:{s['AMHS_REDIS_PASSWORD']}@127.0.0.1:{self.redis_port}"
        return {
            MARKER: str(self.root),
            "DAGSTER_HOME": str(self.dagster_home),
            "AMHS_DATA_DIR": str(self.data_dir),
            "AMHS_SETTINGS": str(self.settings_file or DEPLOY_DIR / "settings.yaml"),
            "AMHS_EXECUTOR": "celery",
            "AMHS_CELERY_CONFIG": str(self.celery_config),
            "AMHS_CELERY_BROKER": f"{redis}/0",
            "AMHS_CELERY_BACKEND": f"{redis}/1",
            "AMHS_PG_HOST": "127.0.0.1", "AMHS_PG_PORT": str(self.pg_port),
            "AMHS_PG_USER": PG_DB_USER, "AMHS_PG_PASSWORD": s["AMHS_PG_PASSWORD"],
            "AMHS_PG_DAGSTER_DB": "dagster",
            "AMHS_COMPUTE_LOGS": str(self.root / "compute_logs"),
            "MLFLOW_TRACKING_URI": self.urls()["mlflow"],
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **self.extra_env,
        }

    def process_env(self) -> dict[str, str]:
        return {**os.environ, **self.env()}

    # --- up --------------------------------------------------------------------------------
    def up(self, echo: Callable[[str], None] = print) -> None:
        """Start every service that is not running, in dependency order; each is ready
        (answers) before the next starts. Idempotent."""
        for folder in (self.root, self.logs, self.pids, self.dagster_home,
                       self.root / "compute_logs", self.data_dir / "raw"):
            folder.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # the PostgreSQL user walks through it to its data folder
        env = self.env()
        _write_private(self.root / "stack.env",
                       "".join(f"export {k}={_quoted(v)}\n" for k, v in env.items()))
        shutil.copy(DEPLOY_DIR / "dagster.yaml", self.dagster_home / "dagster.yaml")
        for name in self.services:
            if self.running(name):
                echo(f"{name:18s} already running (pid {self.pid(name)})")
                continue
            started = time.perf_counter()
            self.start(name)
            echo(f"{name:18s} up in {time.perf_counter() - started:5.1f} s  "
                 f"pid {self.pid(name)}  {self.urls().get(name, '')}")
        echo(f"logs: {self.logs}   pids: {self.pids}   environment: source {self.root}/stack.env")

    def start(self, name: str) -> None:
        """Start one service (it answers when this returns)."""
        if name.startswith("worker-"):
            return self.start_worker(int(name.removeprefix("worker-")))
        starts = {"postgres": self._start_postgres, "redis": self._start_redis,
                  "mlflow": self._start_mlflow, "dagster-webserver": self._start_webserver,
                  "dagster-daemon": self._start_daemon, "api": self._start_api}
        starts[name]()

    def _spawn(self, name: str, cmd: list[str], cwd: Path | None = None,
               env: Mapping[str, str] | None = None) -> subprocess.Popen:
        """A service in a session of its own (its children stop with it), logged to
        logs/<name>.log, its PID in pids/<name>.pid."""
        log = open(self.logs / f"{name}.log", "ab")
        self._log_offsets[name] = log.seek(0, os.SEEK_END)  # readiness reads what comes after
        with log:
            proc = subprocess.Popen(cmd, cwd=cwd or REPO_DIR, env=env or self.process_env(),
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        (self.pids / f"{name}.pid").write_text(f"{proc.pid}\n")
        return proc

    def _wait(self, name: str, ready: Callable[[], bool], timeout_s: float = 120) -> None:
        deadline, last = time.monotonic() + timeout_s, "no answer"
        while time.monotonic() < deadline:
            if not self.running(name):
                raise StackError(f"{name} exited while starting; see {self.logs / name}.log:\n"
                                 + _tail(self.logs / f"{name}.log"))
            try:
                if ready():
                    return
            except Exception as error:  # not up yet: keep the reason for the message
                last = f"{type(error).__name__}: {error}"
            time.sleep(0.5)
        raise StackError(f"{name} did not answer within {timeout_s:.0f} s (last: {last}); see "
                         f"{self.logs / name}.log:\n" + _tail(self.logs / f"{name}.log"))

    # PostgreSQL --------------------------------------------------------------------------
    def _start_postgres(self) -> None:
        bin_dir = postgres_bin_dir()
        run_as = pg_runner()
        password = self.secrets()["AMHS_PG_PASSWORD"]
        if not (self.pg_data / "PG_VERSION").exists():
            self.pg_data.mkdir(mode=0o700, exist_ok=True)
            pwfile = self.root / "pg.pwfile"
            _write_private(pwfile, password + "\n")
            _chown_to_pg([self.pg_data, pwfile])
            try:
                _check([*run_as, str(bin_dir / "initdb"), "-D", str(self.pg_data), "-U",
                        PG_DB_USER, "--auth-local=trust", "--auth-host=scram-sha-256",
                        f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"], "initdb")
            finally:
                pwfile.unlink(missing_ok=True)
            with open(self.pg_data / "postgresql.conf", "a") as conf:
                conf.write(f"\n# amhs up\nlisten_addresses = '127.0.0.1'\nport = {self.pg_port}\n"
                           f"unix_socket_directories = '{self.pg_data}'\nmax_connections = 200\n")
        log = self.logs / "postgres.log"
        log.touch()
        _chown_to_pg([log])
        _check([*run_as, str(bin_dir / "pg_ctl"), "-D", str(self.pg_data), "-l", str(log),
                "-w", "-t", "60", "start"], "pg_ctl start")
        pid = (self.pg_data / "postmaster.pid").read_text().split()[0]
        (self.pids / "postgres.pid").write_text(f"{pid}\n")
        self._wait("postgres", self._pg_answers)
        for db in ("dagster", "mlflow"):
            self.create_database(db)

    def _pg_answers(self) -> bool:
        self.pg_connect().close()
        return True

    def pg_connect(self, db: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.pg_port, user=PG_DB_USER,
                                password=self.secrets()["AMHS_PG_PASSWORD"], dbname=db,
                                connect_timeout=5)

    def create_database(self, name: str) -> None:
        conn = self.pg_connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    # Redis -------------------------------------------------------------------------------
    def _start_redis(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise StackError("redis-server is not installed (apt-get install redis-server)")
        folder = self.root / "redis"
        folder.mkdir(exist_ok=True)
        conf = folder / "redis.conf"  # the password stays off the command line
        _write_private(conf, f"bind 127.0.0.1\nport {self.redis_port}\ndir {folder}\n"
                             "appendonly yes\nsave \"\"\n"
                             f"requirepass {self.secrets()['AMHS_REDIS_PASSWORD']}\n")
        self._spawn("redis", [server, str(conf)])
        self._wait("redis", self._redis_ping)

    def _redis_ping(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=2,
                             password=self.secrets()["AMHS_REDIS_PASSWORD"])
        return bool(client.ping())

    # MLflow ------------------------------------------------------------------------------
    def _start_mlflow(self) -> None:
        password = self.secrets()["AMHS_PG_PASSWORD"]
        artifacts = self.artifacts or str(self.root / "mlflow-artifacts")
        env = self.process_env() | {  # the store's URI (and password) stays off the command line
            "MLFLOW_BACKEND_STORE_URI":
                f"postgresql+psycopg2://{PG_DB_USER}:{password}@127.0.0.1:{self.pg_port}/mlflow",
            "MLFLOW_ARTIFACTS_DESTINATION": artifacts}
        self._spawn("mlflow", [_venv_bin("mlflow"), "server", "--host", "127.0.0.1", "--port",
                               str(self.mlflow_port), "--workers", "1"], env=env)
        self._wait("mlflow", lambda: _http_ok(self.urls()["mlflow"] + "/health"), 180)

    # Dagster -----------------------------------------------------------------------------
    def _start_webserver(self) -> None:
        self._set_pool_limits()
        self._spawn("dagster-webserver", [
            _venv_bin("dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.dagster_port),
            "-w", str(REPO_DIR / "workspace.yaml")])
        self._wait("dagster-webserver",
                   lambda: _http_ok(self.urls()["dagster-webserver"] + "/server_info"), 240)

    def _set_pool_limits(self) -> None:
        for pool, limit in POOL_LIMITS.items():
            _check([_venv_bin("dagster"), "instance", "concurrency", "set", pool, str(limit)],
                   f"dagster instance concurrency set {pool}", env=self.process_env())

    def _start_daemon(self) -> None:
        self._spawn("dagster-daemon", [_venv_bin("dagster-daemon"), "run", "-w",
                                       str(REPO_DIR / "workspace.yaml")])
        self._wait("dagster-daemon", lambda: "daemons:" in self.new_log("dagster-daemon"), 240)

    def start_worker(self, number: int) -> None:
        """Celery worker `number` (one step at a time: XGBoost and pandas use the cores)."""
        name = f"worker-{number}"
        self._spawn(name, [_venv_bin("dagster-celery"), "worker", "start", "-A",
                           "dagster_celery.app", "-y", str(self.celery_config),
                           "-n", name, "--", "--concurrency", "1"])
        self._wait(name, lambda: f"{name}@" in self.new_log(name) and
                   "ready." in self.new_log(name), 180)

    # the API -----------------------------------------------------------------------------
    def _start_api(self) -> None:
        self._spawn("api", [_venv_bin("amhs"), "serve", "--host", "127.0.0.1", "--port",
                            str(self.api_port)])
        self._wait("api", lambda: _http_ok(self.urls()["api"] + "/openapi.json"), 120)

    def new_log(self, name: str) -> str:
        """What a service logged since this object last started it."""
        with open(self.logs / f"{name}.log", "rb") as log:
            log.seek(self._log_offsets.get(name, 0))
            return log.read().decode(errors="replace")

    # --- state and down ---------------------------------------------------------------------
    def pid(self, name: str) -> int | None:
        path = self.pids / f"{name}.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().split()[0])
        return None

    def running(self, name: str) -> bool:
        pid = self.pid(name)
        return pid is not None and _alive(pid)

    def stop(self, name: str, timeout_s: float = 30) -> bool:
        """Stop one service (and its children); True when it was running."""
        pid = self.pid(name)
        if pid is None or not _alive(pid):
            (self.pids / f"{name}.pid").unlink(missing_ok=True)
            return False
        if name == "postgres":
            with contextlib.suppress(StackError):
                _check([*pg_runner(), str(postgres_bin_dir() / "pg_ctl"), "-D",
                        str(self.pg_data), "-m", "fast", "-w", "stop"], "pg_ctl stop")
        _terminate(pid, timeout_s)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)
        return True

    def down(self, echo: Callable[[str], None] = print) -> list[int]:
        """Stop every service in reverse order, then any process still marked with this stack
        (runs the daemon launched); the PIDs of processes left (none, normally)."""
        started = {p.stem for p in self.pids.glob("*.pid")} if self.pids.exists() else set()
        extra = sorted(started - set(self.services))  # workers of an `up` with more of them
        *before_api, api = self.services
        for name in reversed([*before_api, *extra, api]):
            if self.stop(name):
                echo(f"{name:18s} stopped")
        for pid in self.stragglers():
            _terminate(pid, 10, group=False)
        left = self.stragglers()
        echo("every process of the stack stopped" if not left
             else f"still running: {left}")
        return left

    def stragglers(self) -> list[int]:
        """Processes whose environment carries this stack's marker."""
        mark = f"{MARKER}={self.root}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
        return found


# --- helpers ---------------------------------------------------------------------------------
def postgres_bin_dir() -> Path:
    """The folder of initdb and pg_ctl (Debian keeps them under /usr/lib/postgresql/N/bin)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if not versions:
        raise StackError("PostgreSQL is not installed (apt-get install postgresql)")
    return versions[-1].parent


def pg_runner() -> list[str]:
    """The command prefix that runs PostgreSQL's programs as a non-root user."""
    if os.geteuid() != 0:
        return []
    if subprocess.run(["id", "-u", PG_OS_USER], capture_output=True).returncode != 0:
        _check(["useradd", "--system", "--user-group", "--no-create-home", "--shell",
                "/usr/sbin/nologin", PG_OS_USER], f"useradd {PG_OS_USER}")
    return ["runuser", "-u", PG_OS_USER, "--"]


def _chown_to_pg(paths: list[Path]) -> None:
    if os.geteuid() == 0:
        for path in paths:
            shutil.chown(path, PG_OS_USER, PG_OS_USER)


def _check(cmd: list[str], what: str, env: Mapping[str, str] | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_DIR)
    if done.returncode != 0:
        raise StackError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")


def _venv_bin(name: str) -> str:
    """A console script of this environment (the one `amhs` itself runs in)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=3) as answer:
        return answer.status == 200


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    return True


def _terminate(pid: int, timeout_s: float, group: bool = True) -> None:
    """SIGTERM (to the process group of a service), then SIGKILL after timeout_s."""
    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid) or group:
        send(signal.SIGKILL)  # the group: children that outlived their parent
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _tail(path: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


def _read_env_file(path: Path) -> dict[str, str]:
    with contextlib.suppress(OSError):
        return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {}


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


@contextlib.contextmanager
def running_stack(stack: Stack, echo: Callable[[str], None] = print) -> Iterator[Stack]:
    """A stack that is up for the block and down after it (tests, benchmarks)."""
    try:
        stack.up(echo)
        yield stack
    finally:
        stack.down(echo)
