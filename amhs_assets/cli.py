"""The `amhs` command: simulate data, run the pipeline, serve the API, manage the registry."""

from __future__ import annotations

import os
from pathlib import Path

import click

from amhs_assets import simulate as sim


def data_dir() -> Path:
    """AMHS_DATA_DIR, default data/."""
    return Path(os.environ.get("AMHS_DATA_DIR", "data"))


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
    out = out or data_dir() / "raw"
    paths = sim.write_simulation(out, lines=lines, days=days, seed=seed, drift_day=drift_day,
                                 start=start, progress=True)
    click.echo(f"wrote {len(paths)} file(s) under {out}")


@main.command()
@click.option("--lines", default=sim.DEFAULT_LINES, show_default=True, type=int,
              help="lines to simulate when data/raw is empty")
@click.option("--days", default=sim.DEFAULT_DAYS, show_default=True, type=int,
              help="days to simulate when data/raw is empty")
def run(lines: int, days: int) -> None:
    """Run the whole asset graph (simulating a default data set first if raw/ is empty)."""
    from amhs_assets.runner import run_pipeline

    root = data_dir()
    raw = root / "raw"
    if not raw.exists() or not any(p.is_file() for p in raw.rglob("*")):
        click.echo(f"{raw} is empty: simulating {lines} line(s) x {days} day(s)")
        sim.write_simulation(raw, lines=lines, days=days, seed=sim.DEFAULT_SEED, progress=True)
    ok = run_pipeline(echo=click.echo)
    if not ok:
        raise SystemExit(1)
