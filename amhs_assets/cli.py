"""The `amhs` command: simulate data, run the pipeline, serve the API, manage the registry.

Only click and the simulator's defaults load with this module: each command imports what it
needs when it runs, so `amhs --help` never loads Dagster, MLflow, pandas or XGBoost
(amhs_assets_tests/test_cli_imports.py keeps it so; benchmarks/bench_cli.py times it).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator

import click

from amhs_assets import simulate as sim


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """AMHS failure prediction: simulate logs, run the asset graph, serve the champion model."""


@main.command()
@click.option("--lines", default=sim.DEFAULT_LINES, show_default=True, type=click.IntRange(1, 500),
              help="number of production lines (OHT systems)")
@click.option("--days", default=sim.DEFAULT_DAYS, show_default=True, type=click.IntRange(1, 3660),
              help="days of minute logs per line")
@click.option("--seed", default=sim.DEFAULT_SEED, show_default=True, type=int,
              help="random seed; same seed, same logs")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="output folder [default: $AMHS_DATA_DIR/raw]")
@click.option("--drift-day", type=click.IntRange(0, None), default=None,
              help="from this day on: more demand, fewer vehicles (a regime change)")
@click.option("--start", default=sim.DEFAULT_START, show_default=True,
              help="first day, YYYY-MM-DD (UTC)")
def simulate(lines: int, days: int, seed: int, out: Path | None, drift_day: int | None,
             start: str) -> None:
    """Write simulated raw logs: one CSV per line and day, in the 32-column contract."""
    from amhs_assets.config import read_environment
    from amhs_assets.simulate.lines import write_simulation

    out = out or read_environment().layout.raw
    paths = write_simulation(out, lines=lines, days=days, seed=seed, drift_day=drift_day,
                                 start=start, progress=True)
    click.echo(f"wrote {len(paths)} file(s) under {out}")


@main.command()
@click.option("--lines", default=sim.DEFAULT_LINES, show_default=True, type=int,
              help="lines to simulate when data/raw is empty")
@click.option("--days", default=sim.DEFAULT_DAYS, show_default=True, type=int,
              help="days to simulate when data/raw is empty")
def run(lines: int, days: int) -> None:
    """Run the whole asset graph (simulating a default data set first if raw/ is empty)."""
    from amhs_assets.config import read_environment
    from amhs_assets.progress import show_bars
    from amhs_assets.runner import run_pipeline
    from amhs_assets.simulate.lines import write_simulation

    raw = read_environment().layout.raw
    if not raw.exists() or not any(p.is_file() for p in raw.rglob("*")):
        click.echo(f"{raw} is empty: simulating {lines} line(s) x {days} day(s)")
        write_simulation(raw, lines=lines, days=days, seed=sim.DEFAULT_SEED, progress=True)
    show_bars(sys.stderr.isatty())  # progress bars in a terminal; the Dagster log always has lines
    ok = run_pipeline(echo=click.echo)
    if not ok:
        raise SystemExit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="worker processes; each loads the model and checks the alias on its own")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="log every request (figures are in /metrics either way)")
def serve(host: str, port: int, workers: int, access_log: bool) -> None:
    """The REST API over models:/amhs-predictor@champion (docs at /docs).

    Environment: AMHS_DATA_DIR; MLFLOW_TRACKING_URI (default: SQLite under
    $AMHS_DATA_DIR/mlflow/); AMHS_API_TOKEN (enables POST /v1/reload); AMHS_RELOAD_INTERVAL_S
    (alias check, default 60, 0 = off); AMHS_LOG_TOKEN (only requests carrying it feed the
    prediction log), AMHS_PREDICTION_LOG_DAYS (default 14); the limits AMHS_MAX_ROWS,
    AMHS_MAX_BODY_BYTES, AMHS_MAX_ROW_KEYS, AMHS_MAX_ROW_BYTES, AMHS_MAX_IN_FLIGHT,
    AMHS_WORKER_THREADS, AMHS_HEADER_TIMEOUT_S, AMHS_MAX_HEADER_BYTES, AMHS_BODY_TIMEOUT_S,
    AMHS_KEEP_ALIVE_S (docs/api.md)."""
    from amhs_assets.serve.config import ServeSettings
    from amhs_assets.serve.server import run_server

    try:
        ServeSettings.from_env()  # a bad AMHS_* value stops here, with its name
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    run_server(host, port, workers, access_log)


@main.group()
def registry() -> None:
    """The model registry (amhs-predictor in MLflow): list versions, move the champion alias,
    read the alias ledger."""


@contextlib.contextmanager
def _registry_client() -> Iterator[tuple]:
    """The deployment and a registry client; registry errors become clean messages."""
    from mlflow.exceptions import MlflowException

    from amhs_assets.config import read_environment
    from amhs_assets.registry import store as reg

    deployment = read_environment()
    try:
        yield deployment, reg.connect(deployment.resolved_tracking_uri)
    except (reg.TrackingUnreachable, reg.ConcurrentPromotion, ValueError, TimeoutError,
            MlflowException) as exc:
        raise click.ClickException(str(exc)) from exc


@registry.command("list")
@click.option("--tags", "show_tags", is_flag=True, help="also print every tag of every version")
def registry_list(show_tags: bool) -> None:
    """Versions, newest first: aliases, the test window each was scored on, its test metrics
    (avg_mae_h10: MAE in s of the 10-minute window-mean transfer time; *_mean: mean over the
    horizons), decision and provenance tags."""
    import pandas as pd

    from amhs_assets.contract import REGISTERED_MODEL_NAME as NAME
    from amhs_assets.redact import redact
    from amhs_assets.registry.ledger import read_ledger
    from amhs_assets.registry.listing import version_table

    with _registry_client() as (deployment, client):
        table, windows = version_table(client, NAME)
        click.echo(f"{NAME} at {redact(deployment.resolved_tracking_uri)}: {len(table)} "
                   "version(s)")
        if table.empty:
            return
        with pd.option_context("display.width", 250, "display.max_columns", 40,
                               "display.max_colwidth", 60):
            click.echo(table.to_string(index=False))
        click.echo("metrics: each version on its own test window, below; compare figures only "
                   "between versions of one window (the gate re-evaluates the champion on the "
                   "challenger's window)")
        for label, words in windows.items():
            click.echo(f"  {label}: {words}")
        moves = read_ledger(client, NAME).moves()
        click.echo(f"alias ledger: {len(moves)} move(s)" + (
            f", the latest {moves[-1].describe()}" if moves else "")
            + " (`amhs registry history`)")
        for v in (client.search_model_versions(f"name='{NAME}'") if show_tags else []):
            click.echo(f"\nv{v.version}:")
            for key, value in sorted(v.tags.items()):
                click.echo(f"  {key} = {value}")


@registry.command("history")
@click.option("--refused", is_flag=True, help="also the attempts that lost to another move")
@click.option("--full", is_flag=True, help="reasons in full (else cut at 60 characters)")
def registry_history(refused: bool, full: bool) -> None:
    """The alias ledger, newest first: every move of champion and challenger with who, when,
    why and the kind of move (kept in the MLflow store, never overwritten)."""
    import pandas as pd

    from amhs_assets.contract import REGISTERED_MODEL_NAME as NAME
    from amhs_assets.redact import redact
    from amhs_assets.registry.ledger import LEDGER_EXPERIMENT, read_ledger
    from amhs_assets.registry.listing import history_table

    with _registry_client() as (deployment, client):
        table = history_table(read_ledger(client, NAME), refused, 10**6 if full else 60)
        click.echo(f"alias ledger of {NAME} (experiment {LEDGER_EXPERIMENT}) at "
                   f"{redact(deployment.resolved_tracking_uri)}: {len(table)} entr"
                   f"{'y' if len(table) == 1 else 'ies'}")
        if not table.empty:
            with pd.option_context("display.width", 250, "display.max_columns", 30,
                                   "display.max_colwidth", 10**6 if full else 60):
                click.echo(table.to_string(index=False))


@registry.command("promote")
@click.argument("version")
@click.option("--reason", required=True, help="why; recorded in the ledger with who and when")
@click.option("--expect", "expected", default=None, metavar="VERSION",
              help="refuse unless the champion is still this version ('none': no champion) "
                   "[default: the champion when the command starts]")
def registry_promote(version: str, reason: str, expected: str | None) -> None:
    """Make VERSION the champion by hand (refused if the champion moves meanwhile)."""
    from amhs_assets.contract import CHAMPION_ALIAS
    from amhs_assets.contract import REGISTERED_MODEL_NAME as NAME
    from amhs_assets.registry.ledger import caller
    from amhs_assets.registry.store import promote, version_ref

    with _registry_client() as (deployment, client):
        if expected is None:
            before = version_ref(client, NAME, CHAMPION_ALIAS)
            expected = before.version if before else None
        elif expected.lower() == "none":
            expected = None
        who = caller(deployment.resolved_tracking_uri)
        promote(client, NAME, version, reason, who, expected)
        click.echo(f"champion of {NAME}: v{expected} -> v{version} ({reason}; by {who})")


@registry.command("rollback")
@click.option("--reason", required=True, help="why; recorded in the ledger with who and when")
def registry_rollback(reason: str) -> None:
    """Return the champion to the one before it, according to the alias ledger; the version
    rolled back from loses the challenger alias and is never promoted by the gate again."""
    from amhs_assets.contract import REGISTERED_MODEL_NAME as NAME
    from amhs_assets.registry.ledger import caller
    from amhs_assets.registry.store import rollback

    with _registry_client() as (deployment, client):
        who = caller(deployment.resolved_tracking_uri)
        old, new = rollback(client, NAME, reason, who)
        click.echo(f"champion of {NAME}: v{old} -> v{new} (rolled back: {reason}; by {who})")
        click.echo(f"v{old} holds no challenger alias and the promotion gate never promotes it "
                   f"again; only `amhs registry promote {old} --reason ...` can")


@main.command()
@click.option("--workers", default=None, type=click.IntRange(1, 64),
              help="Celery workers [default: $AMHS_WORKERS or 2]")
def up(workers: int | None) -> None:
    """Start the production profile on this machine: PostgreSQL, Redis, the MLflow server, the
    Dagster webserver and daemon, Celery workers and the API (logs and PIDs under
    $AMHS_STACK_DIR, default .amhs_stack; ports from AMHS_*_PORT)."""
    from amhs_assets.stack import Stack, StackError

    stack = Stack.from_env()
    if workers:
        stack.workers = workers
    try:
        stack.up(click.echo)
    except StackError as exc:
        raise click.ClickException(f"{exc}\n(`amhs down` stops what did start)") from exc


@main.command()
def down() -> None:
    """Stop every process `amhs up` started (and the runs they launched); data stays."""
    from amhs_assets.stack import Stack

    if Stack.from_env().down(click.echo):
        sys.exit(1)


@main.command()
@click.option("--first", "first_day", default=None, help="first fab-local day (YYYY-MM-DD) "
              "[default: the first day of the raw files]")
@click.option("--last", "last_day", default=None, help="last fab-local day [default: the last "
              "day of the raw files]")
@click.option("--url", envvar="AMHS_DAGSTER_URL", default="http://127.0.0.1:3000",
              show_default=True, help="the Dagster webserver (env AMHS_DAGSTER_URL)")
@click.option("--wait/--no-wait", default=False, show_default=True,
              help="follow the backfill until it ends")
def backfill(first_day: str | None, last_day: str | None, url: str, wait: bool) -> None:
    """Backfill the day partitions (cleaned logs, features, targets) of the raw files' days
    through the webserver: the daemon runs it, days_per_run days per run, on the workers."""
    from amhs_assets.config import read_environment
    from amhs_assets.ingest.days import update_stored_index
    from amhs_assets.webserver_client import WebserverError, launch_backfill, wait_for_backfill

    env = read_environment()
    _, index = update_stored_index(env.layout.warehouse, env.layout.raw, env.fab_timezone)
    days = [d for d in index.days() if (first_day or "") <= d <= (last_day or "9999")]
    if not days:
        raise click.ClickException(f"no raw rows between {first_day or 'the start'} and "
                                   f"{last_day or 'the end'} under {env.layout.raw}")
    try:
        backfill_id = launch_backfill(url, ("cleaned_amhs_logs", "amhs_features",
                                            "amhs_targets"), days, {"amhs/stage": "ingest"})
        click.echo(f"backfill {backfill_id}: {len(days)} day(s), {days[0]} to {days[-1]} "
                   f"({url}/runs/b/{backfill_id})")
        if wait:
            status = wait_for_backfill(url, backfill_id, timeout_s=24 * 3600, poll_s=5)
            click.echo(f"backfill {backfill_id}: {status}")
            if status != "COMPLETED_SUCCESS":
                sys.exit(1)
    except (OSError, WebserverError, TimeoutError) as exc:
        raise click.ClickException(f"{url}: {exc}") from exc
