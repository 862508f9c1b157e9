"""The command line starts light: `amhs --help` and every subcommand's --help load click and
the CLI module, never Dagster's definitions, MLflow or the numeric stack (they took 11.6 s).
Checked on the modules a fresh interpreter holds, not on a time, so a busy machine cannot fail it;
benchmarks/bench_cli.py measures the time."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import amhs_assets

# what an import of the CLI must not bring (any of their submodules either)
HEAVY = ("dagster", "dagster_mlflow", "mlflow", "xgboost", "sklearn", "pandas", "numpy",
         "pandera", "scipy", "fastapi", "sqlalchemy", "amhs_assets.definitions",
         "amhs_assets.defs")
HELPS = (["--help"], ["registry", "--help"], ["registry", "list", "--help"],
         ["registry", "rollback", "--help"], ["simulate", "--help"], ["serve", "--help"],
         ["run", "--help"], ["up", "--help"], ["backfill", "--help"])

PROBE = """
import json, os, sys
from click.testing import CliRunner
from amhs_assets.cli import main
outputs = {}
for args in json.loads(sys.argv[1]):
    result = CliRunner().invoke(main, args)
    outputs[" ".join(args)] = [result.exit_code, result.output]
print(json.dumps({"modules": sorted(sys.modules), "outputs": outputs,
                  "telemetry_off": os.environ.get("MLFLOW_DISABLE_TELEMETRY")}))
"""


def _loaded_after_help() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HELPS)], capture_output=True,
                         text=True, timeout=120, check=True, env=env)
    return json.loads(out.stdout)


def test_help_loads_neither_dagster_nor_mlflow_nor_the_numeric_stack():
    probe = _loaded_after_help()
    heavy = sorted(m for m in probe["modules"]
                   if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == [], f"`amhs --help` imports {heavy[:12]}: import them inside the command"
    for args, (code, output) in probe["outputs"].items():
        assert code == 0 and "Usage:" in output, (args, output)
    # the defaults shown come from their one home, without loading the simulator
    assert "[default: 2026-01-05]" in probe["outputs"]["simulate --help"][1]
    # MLflow's usage telemetry (a thread fetching its config over the internet, ~0.7 s of CPU
    # per command) is off unless the user turns it on
    assert probe["telemetry_off"] == "true"


def test_the_package_still_gives_defs_to_users_and_to_dagster_loaders():
    assert "defs" in dir(amhs_assets) and "defs" in amhs_assets.__all__
    from dagster import Definitions

    assert isinstance(amhs_assets.defs, Definitions)
    from amhs_assets import defs

    assert defs is amhs_assets.defs  # built once
    importlib.import_module("amhs_assets.defs.sensors")  # binding the subpackage: defs stays

    assert amhs_assets.defs is defs
    # what `dagster dev` (workspace.yaml) and `-m amhs_assets` run: exactly one Definitions
    from dagster._core.workspace.autodiscovery import loadable_targets_from_loaded_module

    assert [t.attribute for t in loadable_targets_from_loaded_module(amhs_assets)] == ["defs"]
