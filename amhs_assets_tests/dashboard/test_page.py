"""The dashboard page: why each forecast says what it says, beside its traffic light."""

from __future__ import annotations

import re

import pandas as pd

from amhs_assets.dashboard.page import DashboardInputs, render_dashboard, status_board

AS_OF = "2026-03-01T01:15:00+00:00"


def forecast(line: str, state: str) -> dict:
    """A line's latest forecast as the performance document lists it (one horizon)."""
    return {"line_id": line, "as_of": AS_OF, "model_version": "3", "source": "api",
            "horizons": {"10": {"min": 100.0, "max": 700.0, "avg": 320.0, "state": state,
                                "proba": {"NORMAL": 0.1, "WARNING": 0.2, "CRITICAL": 0.7}}}}


def answer(line: str, as_of: str) -> dict:
    """The API's answer for the line with explanations asked for (explain's shape)."""
    top = [{"column": "comm_errors", "contribution": 0.83, "text": "comm_errors pushes CRITICAL up"},
           {"column": "vehicles_down", "contribution": 0.41, "text": "…"},
           {"column": "pm_active", "contribution": -0.2, "text": "…"},
           {"column": "wip_lots", "contribution": 0.1, "text": "…"}]
    explained = {"model": "xgb", "CRITICAL": {"margin": 0.9, "bias": -0.24, "top": top, "other": 0.0},
                 "avg": {"margin": 12.0, "bias": 1.0, "baseline": 300.0, "top": [], "other": 11.0}}
    return {"line_id": line, "as_of": as_of, "horizons": {"10": {"state": "CRITICAL",
                                                                 "explain": explained}}}


def test_each_forecast_names_the_three_columns_that_pushed_critical_most():
    latest = [forecast("A", "CRITICAL"), forecast("B", "NORMAL"), forecast("C", "NORMAL")]
    board = status_board(latest, "UTC", [answer("A", "2026-03-01T01:15:00Z"),
                                         answer("B", "2026-03-01T01:14:00Z")])  # B: a minute older
    why = re.findall(r'<small class="why"[^>]*>([^<]*)</small>', board)
    assert why == ["why: comm_errors ↑ · vehicles_down ↑ · pm_active ↓"]  # A only, top 3
    assert 'title="CRITICAL score: comm_errors +0.83; vehicles_down +0.41; pm_active -0.20"' in board
    assert board.count('class="light"') == 3 and status_board(latest, "UTC") == status_board(
        latest, "UTC", [])


def test_the_page_shows_the_why_beside_the_lights_and_draws_no_more_charts():
    doc = {"latest": [forecast("A", "CRITICAL")], "generated_at": AS_OF}
    empty = pd.DataFrame()
    plain, charts = render_dashboard(DashboardInputs(doc, empty, empty))
    page, charts_explained = render_dashboard(DashboardInputs(doc, empty, empty,
                                                              explanations=[answer("A", AS_OF)]))
    assert charts == charts_explained
    assert "why: comm_errors ↑" in page and "why: comm_errors" not in plain
    assert re.findall(r'<span class="light"[^>]*>([^<]*)</span>', page) == ["■ CRITICAL"]
