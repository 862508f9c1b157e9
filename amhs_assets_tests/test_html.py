"""The report kit: long series as plotly's x0/dx grid, and the shared files written once."""

from __future__ import annotations

import pandas as pd

from amhs_assets.html import ASSETS_DIR, PLOTLY_JS, on_grid, plotly_script, write_asset, write_page


def test_a_minute_series_with_a_gap_becomes_a_grid_with_nulls_in_the_gap():
    minutes = [0, 1, 2, 3, 4, 7, 8, 9]  # 05 and 06 missing
    x = pd.Series(pd.Timestamp("2026-03-01 08:00") + pd.to_timedelta(minutes, unit="min"))
    spec, y = on_grid(x, pd.DataFrame({"v": [100.4, 200.6, 1, 2, 3, 4, 5, 300.0]}))
    assert spec == {"x0": "2026-03-01 08:00:00", "dx": 60_000.0}  # ms: a plotly date axis step
    assert y == {"v": [100, 201, 1, 2, 3, None, None, 4, 5, 300]}  # whole seconds, gaps null


def test_uneven_or_repeated_times_keep_their_x():
    uneven = pd.Series(pd.to_datetime(["2026-03-01 08:00:00", "2026-03-01 08:01:00", "2026-03-01 08:02:30"]))
    twice = pd.Series(pd.to_datetime(["2026-03-01 08:00", "2026-03-01 08:00", "2026-03-01 08:01"]))
    sparse = pd.Series(pd.to_datetime(["2026-03-01 08:00", "2026-03-01 08:01", "2026-03-01 12:00"]))
    for x in (uneven, twice, sparse):
        spec, y = on_grid(x, pd.DataFrame({"v": [1.0, float("nan"), 3.0]}), digits=1)
        assert list(spec) == ["x"] and spec["x"].tolist() == x.tolist()
        assert y == {"v": [1.0, None, 3.0]}


def test_the_shared_file_is_written_once_and_pages_load_it_relatively(tmp_path):
    page = write_page(tmp_path / "reports" / "a.html", f"<html>{plotly_script()}</html>")
    shared = tmp_path / "reports" / ASSETS_DIR / PLOTLY_JS
    assert plotly_script() == f'<script src="{ASSETS_DIR}/{PLOTLY_JS}"></script>'
    assert page.is_file() and shared.stat().st_size > 3_000_000
    written = shared.stat().st_mtime_ns
    write_page(tmp_path / "reports" / "b.html", "<html></html>")
    assert shared.stat().st_mtime_ns == written  # the same bytes: left alone
    write_asset(tmp_path / "reports", PLOTLY_JS, b"changed")
    assert shared.read_bytes() == b"changed"
    assert not [p for p in shared.parent.iterdir() if p.name.startswith(".")]  # no temporary left
