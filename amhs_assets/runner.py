"""`amhs run`: materialize the whole asset graph in the persistent Dagster instance, as the
named jobs a user would launch (they show by name in the UI's run list):

1. ingest_job over every day the raw files cover (one run over the range of days: each data
   asset in one step, a day at a time; days already stored are rewritten, as the data may have
   changed by hand);
2. training_job: every asset before the promotion gate, every horizon of horizon_models
   included (the run covers the partition range; the asset trains each horizon in one step);
3. promotion_job, so that a first model becomes champion (later ones only if they beat it);
4. monitoring_job: drift against the champion now served, live performance, the dashboard.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import dagster as dg
import pandas as pd

from amhs_assets.defs.jobs import INGEST_JOB, MONITORING_JOB, PROMOTION_ASSETS, reason_tags
from amhs_assets.config import environment
from amhs_assets.defs.partitions import all_partitions_tags, offered_days, range_tags
from amhs_assets.defs.recovery import process_tags, recover
from amhs_assets.defs.resources import MlflowTracking
from amhs_assets.ingest.days import update_stored_index
from amhs_assets.evaluation.acceptance import AcceptanceConfig, judge, verdict
from amhs_assets.evaluation.evaluate import metrics_by_horizon

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
    recover_crashed_runs(instance, echo)
    if not ingest_raw_files(definitions, instance, echo):
        return False
    training = _run_job(echo, definitions, instance, "training_job", all_partitions_tags(),
                        "every model of every horizon, evaluation, registration, drift")
    if training is None:
        return False
    result = _run_job(echo, definitions, instance, "promotion_job", {}, "the promotion gate")
    if result is None:
        return False
    registered = training.output_for_node("registered_model")["version"]
    gate = result.output_for_node("champion_model")
    echo(f"champion: v{gate['champion']} ({gate['decision']}: {gate['reason']})")
    if _has_job(definitions, MONITORING_JOB) and _run_job(
            echo, definitions, instance, MONITORING_JOB, {},
            "drift, live performance and the dashboard of the champion") is None:
        return False
    print_summary(echo, definitions, gate["champion"], registered)
    return True


def recover_crashed_runs(instance: dg.DagsterInstance, echo: Callable[[str], None]) -> None:
    """Runs an earlier `amhs run` left STARTED when it was killed: failed, and their MLflow
    runs KILLED (the MLflow part is skipped, and said, when the store does not answer)."""
    try:
        client = MlflowTracking.from_environment(environment()).client()
    except Exception as exc:  # noqa: BLE001 - recovery must not stop the run it precedes
        echo(f"could not reach the MLflow store to close runs a crash left open: {exc}")
        client = None
    recover(instance, client, echo)


def ingest_raw_files(definitions: dg.Definitions, instance: dg.DagsterInstance,
                     echo: Callable[[str], None] = print) -> bool:
    """ingest_job over every day the raw files cover, in one run; False when there is nothing
    to ingest or the run failed."""
    days = ingest_days(definitions.resources["settings"], echo)
    if not days:
        echo("no raw rows on any day the day partitions offer: nothing to ingest")
        return False
    return _run_job(echo, definitions, instance, INGEST_JOB, range_tags(days[0], days[-1]),
                    f"{len(days)} day(s), {days[0]} to {days[-1]}") is not None


def ingest_days(settings, echo: Callable[[str], None]) -> list[str]:
    """The days the raw files cover that the day partitions offer (the others are reported)."""
    _, index = update_stored_index(settings.layout.warehouse, settings.raw_dir,
                                   settings.fab_timezone)
    days, outside = offered_days(index.days())
    if outside:
        echo(f"warning: {len(outside)} day(s) of raw rows outside the day partitions "
             f"({settings.history_start} to tomorrow) are not ingested: {outside[:5]}")
    return days


def _has_job(definitions: dg.Definitions, name: str) -> bool:
    return any(job.name == name for job in definitions.jobs or [])


def _run_job(echo: Callable[[str], None], definitions: dg.Definitions,
             instance: dg.DagsterInstance, name: str, tags: dict[str, str], label: str
             ) -> dg.ExecuteInProcessResult | None:
    """One run of a named job in this process; its result, or None when it failed."""
    started = time.perf_counter()
    result = definitions.resolve_job_def(name).execute_in_process(
        instance=instance, raise_on_error=False, tags=RUN_TAGS | process_tags() | tags,
        run_config=CONSOLE_INFO)
    echo(f"run {result.run_id[:8]} {name} ({label}): "
         f"{'ok' if result.success else 'FAILED'} in {time.perf_counter() - started:.1f} s")
    return result if result.success else None


def _default_definitions() -> dg.Definitions:
    """The deployment's Definitions (imported late: they read the environment)."""
    from amhs_assets.definitions import defs

    return defs


def print_summary(echo: Callable[[str], None], definitions: dg.Definitions,
                  champion: str | None = None, registered: str | None = None) -> None:
    """The evaluation's one labelled table, whether the champion meets the acceptance bars, and
    where every report is."""
    settings = definitions.resources["settings"]
    reports = settings.reports_dir
    path = reports / "evaluation.json"
    if path.exists():
        document = json.loads(path.read_text())
        echo("\n" + "\n".join(run_summary(document, settings.acceptance.pure(), champion,
                                           registered)) + "\n")
    echo(f"reports in {reports}:")
    for item in sorted(reports.glob("*")):
        echo(f"  {item}")


def champion_column(document: dict, champion: str | None, registered: str | None) -> str | None:
    """Which model of the evaluation the registry's champion is: the evaluated champion, or this
    run's candidate when the gate promoted its version; None when it was not evaluated."""
    if champion is None:
        return None
    if str(document["champion"].get("version")) == str(champion):
        return "champion"
    if registered is not None and str(registered) == str(champion):
        return (document.get("candidate") or {}).get("source")
    return None


def run_summary(document: dict, config: AcceptanceConfig, champion: str | None = None,
                registered: str | None = None) -> list[str]:
    """What `amhs run` ends with: one table of the test metrics (a row per metric, labelled with
    its target and horizon, e.g. avg_mae_h10; a column per model, and the candidate's bar) and
    one line saying whether the champion meets the acceptance bars, and which fail."""
    records = document["results"]
    table = metrics_by_horizon(records).round(3)
    candidate = (document.get("candidate") or {}).get("source", table.columns[-1])
    bars: dict[str, list[str]] = {}
    for r in judge(records, candidate, config):  # max_avg_mae_s bars the avg_mae row too
        row = r["name"].replace("avg_mae_max_", "avg_mae_")
        bars.setdefault(row, []).append(
            f"{'<=' if r['metric'] == 'avg_mae' else '>='} {r['bar']:.4g}")
    for h in {int(r["horizon"]) for r in records}:
        bars[f"avg_mae_vs_persistence_pct_h{h}"] = [f">= {100 * config.mae_vs_persistence:g}"]
    table["acceptance_bar"] = [" and ".join(bars.get(name, [])) for name in table.index]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        lines = [f"test metrics ({document['test_window'].get('rows')} rows; avg: window-mean "
                 "transfer time, MAE in s; _hN: N minutes ahead; state and CRITICAL recall at "
                 "each model's operating point, which trades accuracy for recall: docs/alarms.md):",
                 table.to_string()]
    column = champion_column(document, champion, registered)
    if champion is None:
        lines.append("no champion: " + candidate_line(document, config, registered))
    elif column is None:
        lines.append(f"champion v{champion} was not evaluated on this test window: "
                     "`amhs registry list --tags` shows its accepted and acceptance_* tags")
    else:
        lines.append(f"champion v{champion} ({column}): {verdict(judge(records, column, config))}")
    return lines


def candidate_line(document: dict, config: AcceptanceConfig, registered: str | None) -> str:
    """Why there is no champion: this run's candidate and its acceptance verdict."""
    kind = (document.get("candidate") or {}).get("source", "?")
    rows = document.get("acceptance") or judge(document["results"], kind, config)
    return f"the candidate {kind} (v{registered}) {verdict(rows)}"
