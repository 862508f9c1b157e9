"""The README's operating instructions stay true: its two set-up commands, how to stop what
runs, how to run part of the tests (paths, markers and names that exist), and timing figures
that say what was measured."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def section(title: str) -> str:
    """The text of a `##`/`###` section, up to the next heading of any level."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_the_two_set_up_commands_are_unchanged():
    block = section("Set up and run")
    assert "make run    # simulate data if data/raw is empty, then materialize the whole asset " \
           "graph\nmake test   # the whole test suite\n" in block


def test_stopping_names_a_way_for_everything_that_starts_and_make_down_exists():
    text = section("Stopping what runs")
    for started in ("`make run`", "`make ui`", "`amhs serve`", "`make mlflow-ui`", "`amhs up`"):
        assert started in text
    assert "`amhs down`" in text and "Ctrl-C" in text
    assert re.search(r"^down:", (REPO / "Makefile").read_text(), re.M)


def test_the_quick_test_commands_name_paths_markers_and_tests_that_exist():
    text = section("Running part of the tests")
    declared = {m.split(":")[0] for m in tomllib.loads((REPO / "pyproject.toml").read_text())
                ["tool"]["pytest"]["ini_options"]["markers"]}
    commands = [line.split("#")[0] for line in text.splitlines()
                if line.startswith((".venv/bin/python -m pytest", "make test"))]
    assert len(commands) >= 3
    for command in commands:
        words = [w.removeprefix("PYTEST_ARGS=") for w in shlex.split(command)]
        for i, word in enumerate(words):
            if word.startswith("amhs_assets_tests"):
                assert (REPO / word).exists(), word
            if word == "-m" and words[i + 1] != "pytest":
                used = set(re.findall(r"\w+", words[i + 1])) - {"not", "and", "or"}
                assert used <= declared, (used, declared)
            if word == "-k":
                tests = (REPO / words[i - 1]).read_text()
                assert re.search(rf"def test_\w*{words[i + 1]}", tests), words[i + 1]


def test_timing_figures_of_the_file_drop_say_what_was_measured():
    assert not re.search(r"\d+ s from file drop", README)  # the old, unconditioned claim
    for match in re.finditer(r"\d+ s after the file drop", README):
        paragraph = README[match.start():README.find("\n\n", match.start())]
        assert "Conditions:" in paragraph and "lines" in paragraph and "machine" in paragraph
