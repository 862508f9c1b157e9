"""The layer rules of the package: Dagster only in defs/ (and definitions, the CLI, the runner),
the API and the pure stages never import the Dagster layer (import-linter, contracts in
pyproject.toml), and no module imports another module's private names."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                              "lint_imports_command()", "--no-cache"]


def lint(root: Path) -> subprocess.CompletedProcess:
    """lint-imports over the amhs_assets package found first under root."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(LINT, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_layer_contracts_hold():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_the_layer_check_fails_on_a_pure_module_that_imports_dagster(tmp_path):
    shutil.copytree(REPO / "amhs_assets", tmp_path / "amhs_assets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    spec = tmp_path / "amhs_assets" / "features" / "spec.py"
    spec.write_text(spec.read_text() + "\nimport dagster  # a deliberate violation\n")
    served = tmp_path / "amhs_assets" / "serve" / "routes.py"
    served.write_text(served.read_text() + "\nimport amhs_assets.defs.jobs  # another\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "1 kept, 2 broken" in result.stdout, result.stdout
    assert "amhs_assets.features.spec -> dagster" in result.stdout
    assert "amhs_assets.serve.routes -> amhs_assets.defs.jobs" in result.stdout


def private_imports(root: Path) -> list[str]:
    """Every `from amhs_assets... import _name` under root, as file:line name."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("amhs_assets"):
                found += [f"{path.relative_to(REPO)}:{node.lineno} {a.name}"
                          for a in node.names if a.name.startswith("_")]
    return found


def test_no_module_imports_the_private_names_of_another():
    found = [f for d in ("amhs_assets", "amhs_assets_tests", "benchmarks")
             for f in private_imports(REPO / d)]
    assert not found, f"private names imported across modules: {found}"
