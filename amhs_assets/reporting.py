"""Small helpers that turn results into files and Dagster-friendly markdown."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd


def write_json(path: Path, document: Any) -> Path:
    """Write a JSON document atomically (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str))
    tmp.replace(path)
    return path


def markdown_table(frame: pd.DataFrame, max_rows: int = 50) -> str:
    """A frame as a markdown table, cut to max_rows with a note."""
    shown = frame.head(max_rows)
    header = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in shown.columns) + " |"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    more = [f"\n_{len(frame) - max_rows} more rows not shown_"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *body, *more])


def _cell(value: Any) -> str:
    """One markdown cell: floats short, pipes escaped."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")
