"""`amhs run`: materialize the whole asset graph in the persistent Dagster instance.

One run materializes every asset before the promotion gate, every horizon of horizon_models
included (the run covers the partition range; the asset trains each horizon in one step).
Then promotion_job runs once, so that a first model becomes champion (later ones only if they
beat it), and a last run materializes what watches the champion (if any asset does).
"""

from __future__ import annotations

import json
import time
from typing import Callable

import dagster as dg
import pandas as pd

from amhs_assets.defs.jobs import PROMOTION_ASSETS, reason_tags
from amhs_assets.defs.partitions import all_partitions_tags
from amhs_assets.evaluation.evaluate import summary_table

AFTER_GATE = PROMOTION_ASSETS.downstream() - PROMOTION_ASSETS
BEFORE_GATE = dg.AssetSelection.all() - PROMOTION_ASSETS - AFTER_GATE
RUN_TAGS = reason_tags("manual", "amhs run")


# the terminal shows progress and warnings; every DEBUG event stays in the run's log in the UI
CONSOLE_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def run_pipeline(echo: Callable[[str], None] = print, definitions: dg.Definitions | None = None,
                 instance: dg.DagsterInstance | None = None) -> bool:
    """Materialize every asset before the gate (every partition) in one run, run promotion_job
    once, then what depends on the champion; report where outputs are and who is champion."""
    definitions = definitions or _default_definitions()
    instance = instance or dg.DagsterInstance.get()
    started = time.perf_counter()
    result = _materialize(definitions, instance, BEFORE_GATE, all_partitions_tags())
    if not _report(echo, result, "every asset before the gate, every horizon", started):
        return False
    started = time.perf_counter()
    result = definitions.resolve_job_def("promotion_job").execute_in_process(
        instance=instance, raise_on_error=False, tags=RUN_TAGS, run_config=CONSOLE_INFO)
    if not _report(echo, result, "promotion_job", started):
        return False
    gate = result.output_for_node("champion_model")
    echo(f"champion: v{gate['champion']} ({gate['decision']}: {gate['reason']})")
    if AFTER_GATE.resolve(definitions.resolve_asset_graph()):
        started = time.perf_counter()
        after = _materialize(definitions, instance, AFTER_GATE, {})
        if not _report(echo, after, "assets that watch the champion", started):
            return False
    print_summary(echo, definitions)
    return True


def _materialize(definitions: dg.Definitions, instance: dg.DagsterInstance,
                 selection: dg.AssetSelection, partitions: dict[str, str]
                 ) -> dg.ExecuteInProcessResult:
    """One run of the selected assets and their checks (over a partition range, if tagged)."""
    return dg.materialize([*(definitions.assets or []), *(definitions.asset_checks or [])],
                          instance=instance, resources=definitions.resources,
                          selection=selection, raise_on_error=False,
                          tags=RUN_TAGS | partitions, run_config=CONSOLE_INFO)


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
