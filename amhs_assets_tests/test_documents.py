"""Reports and documents are written whole or not at all."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from amhs_assets.documents import write_json, write_text


def test_a_write_replaces_the_file_whole_and_a_failed_one_leaves_the_old_file(tmp_path):
    path = tmp_path / "reports" / "evaluation.html"
    write_text(path, "<html>old</html>")
    assert path.read_text() == "<html>old</html>"
    with pytest.raises(UnicodeEncodeError):
        write_text(path, "<html>new \udc80 half</html>")  # fails while being written
    assert path.read_text() == "<html>old</html>"  # the old page, whole
    assert [p.name for p in path.parent.iterdir()] == ["evaluation.html"]  # no temp file left
    write_text(path, "<html>new</html>")
    assert path.read_text() == "<html>new</html>"


def test_json_documents_are_strict_json_with_undefined_figures_as_null(tmp_path):
    document = {"results": [{"model": "xgb", "mae": float("nan"), "r2": np.float64("nan"),
                             "recall": {"CRITICAL": math.inf}, "n": 0, "accuracy": 0.5}],
                "pair": (float("-inf"), 1.5), "note": "NaN stays a word"}
    path = write_json(tmp_path / "evaluation.json", document)

    def refuse(token: str):
        raise ValueError(f"non-standard JSON token {token}")

    back = json.loads(path.read_text(), parse_constant=refuse)  # what a strict parser reads
    assert back["results"] == [{"model": "xgb", "mae": None, "r2": None,
                                "recall": {"CRITICAL": None}, "n": 0, "accuracy": 0.5}]
    assert back["pair"] == [None, 1.5] and back["note"] == "NaN stays a word"
    assert math.isnan(document["results"][0]["mae"])  # the caller's document is left alone
