"""`amhs run`: materialize the whole asset graph in the persistent Dagster instance.

Partitioned assets (one partition per horizon) cannot share a run with unpartitioned ones,
so the graph runs in three stages: everything upstream of the partitioned assets, each
partition, then everything downstream but the promotion gate. Then promotion_job runs once,
so that a first model becomes champion (later ones only if they beat it).
"""

from __future__ import annotations

import json
import time
from typing import Callable

import dagster as dg
import pandas as pd

from amhs_assets.automation import PROMOTION_ASSETS
from amhs_assets.evaluation import summary_table


def stages(definitions: dg.Definitions) -> list[tuple[dg.AssetSelection, str | None]]:
    """(selection, partition key) pairs that together materialize every asset but the
    promotion gate once."""
    graph = definitions.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    partitioned = [k for k in keys if graph.get(k).partitions_def is not None]
    rest = dg.AssetSelection.all() - PROMOTION_ASSETS
    if not partitioned:
        return [(rest, None)]
    parts = dg.AssetSelection.assets(*partitioned)
    upstream = parts.upstream() - parts
    out: list[tuple[dg.AssetSelection, str | None]] = [(upstream, None)]
    for key in graph.get(partitioned[0]).partitions_def.get_partition_keys():
        out.append((parts, key))
    out.append((rest - upstream - parts, None))
    return out


def run_pipeline(echo: Callable[[str], None] = print, definitions: dg.Definitions | None = None,
                 instance: dg.DagsterInstance | None = None) -> bool:
    """Materialize every asset (each partition of partitioned ones), then run promotion_job
    once; report where outputs are and which version is champion."""
    definitions = definitions or _default_definitions()
    instance = instance or dg.DagsterInstance.get()
    assets = list(definitions.assets or [])
    checks = list(definitions.asset_checks or [])
    for selection, partition in stages(definitions):
        started = time.perf_counter()
        result = dg.materialize([*assets, *checks], instance=instance,
                                resources=definitions.resources, selection=selection,
                                partition_key=partition, raise_on_error=False,
                                tags={"amhs/trigger": "amhs run"})
        label = f"partition {partition}" if partition else "assets"
        if not _report(echo, result, label, started):
            return False
    started = time.perf_counter()
    result = definitions.resolve_job_def("promotion_job").execute_in_process(
        instance=instance, raise_on_error=False, tags={"amhs/trigger": "amhs run"})
    if not _report(echo, result, "promotion_job", started):
        return False
    gate = result.output_for_node("champion_model")
    echo(f"champion: v{gate['champion']} ({gate['decision']}: {gate['reason']})")
    print_summary(echo, definitions)
    return True


def _default_definitions() -> dg.Definitions:
    """The deployment's Definitions (imported late: they read the environment)."""
    from amhs_assets.definitions import defs

    return defs


def _report(echo: Callable[[str], None], result, label: str, started: float) -> bool:
    """One line per Dagster run; whether it succeeded."""
    echo(f"run {result.run_id[:8]} ({label}): "
         f"{'ok' if result.success else 'FAILED'} in {time.perf_counter() - started:.1f} s")
    return result.success


def print_summary(echo: Callable[[str], None], definitions: dg.Definitions) -> None:
    """A one-screen table of the evaluation, and where every report is."""
    reports = definitions.resources["settings"].reports_dir
    path = reports / "evaluation.json"
    if path.exists():
        table = summary_table(json.loads(path.read_text())["results"])
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            echo("\n" + table.round(3).to_string(index=False) + "\n")
    echo(f"reports in {reports}:")
    for item in sorted(reports.glob("*")):
        echo(f"  {item}")
