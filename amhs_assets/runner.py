"""`amhs run`: materialize the whole asset graph in the persistent Dagster instance."""

from __future__ import annotations

from typing import Callable

import dagster as dg

from amhs_assets.definitions import defs


def run_pipeline(echo: Callable[[str], None] = print) -> bool:
    """Materialize every asset (each partition of partitioned ones); report where outputs are."""
    instance = dg.DagsterInstance.get()
    settings = defs.resources["settings"]
    result = dg.materialize(
        list(defs.assets or []), instance=instance, resources=defs.resources,
        raise_on_error=False,
    )
    echo(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    reports = settings.reports_dir
    for path in sorted(reports.glob("*")):
        echo(f"  {path}")
    return result.success
