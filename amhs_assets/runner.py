"""`amhs run`: materialize the whole asset graph in the persistent Dagster instance.

Partitioned assets (one partition per horizon) cannot share a run with unpartitioned ones,
so the graph runs in three stages: everything upstream of the partitioned assets, each
partition, then everything downstream.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import dagster as dg
import pandas as pd

from amhs_assets.definitions import defs
from amhs_assets.evaluation import summary_table


def stages() -> list[tuple[dg.AssetSelection, str | None]]:
    """(selection, partition key) pairs that together materialize every asset once."""
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    partitioned = [k for k in keys if graph.get(k).partitions_def is not None]
    if not partitioned:
        return [(dg.AssetSelection.all(), None)]
    parts = dg.AssetSelection.assets(*partitioned)
    upstream = parts.upstream() - parts
    out: list[tuple[dg.AssetSelection, str | None]] = [(upstream, None)]
    for key in graph.get(partitioned[0]).partitions_def.get_partition_keys():
        out.append((parts, key))
    out.append((dg.AssetSelection.all() - upstream - parts, None))
    return out


def run_pipeline(echo: Callable[[str], None] = print) -> bool:
    """Materialize every asset (each partition of partitioned ones); report where outputs are."""
    instance = dg.DagsterInstance.get()
    assets = list(defs.assets or [])
    checks = list(defs.asset_checks or [])
    for selection, partition in stages():
        started = time.perf_counter()
        result = dg.materialize([*assets, *checks], instance=instance, resources=defs.resources,
                                selection=selection, partition_key=partition,
                                raise_on_error=False, tags={"amhs/trigger": "amhs run"})
        label = f"partition {partition}" if partition else "assets"
        echo(f"run {result.run_id[:8]} ({label}): "
             f"{'ok' if result.success else 'FAILED'} in {time.perf_counter() - started:.1f} s")
        if not result.success:
            return False
    print_summary(echo)
    return True


def print_summary(echo: Callable[[str], None]) -> None:
    """A one-screen table of the evaluation, and where every report is."""
    reports = defs.resources["settings"].reports_dir
    path = reports / "evaluation.json"
    if path.exists():
        table = summary_table(json.loads(path.read_text())["results"])
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            echo("\n" + table.round(3).to_string(index=False) + "\n")
    echo(f"reports in {reports}:")
    for item in sorted(reports.glob("*")):
        echo(f"  {item}")
