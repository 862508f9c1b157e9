"""Progress lines: done of total, rate, ETA; throttled, always at the end; bars only when asked."""

from __future__ import annotations

import re

from amhs_assets import progress as progress_module
from amhs_assets.models.dataset import dataset_from_raw
from amhs_assets.models.operating import AlarmConfig
from amhs_assets.models.xgb import XgbConfig, fit_xgb_model, model_steps
from amhs_assets.progress import Progress
from amhs_assets_tests.support import simulated_rows


def test_a_line_says_done_of_total_rate_and_eta(monkeypatch):
    clock = iter([0.0, 10.0, 10.0, 10.0, 10.0])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    lines: list[str] = []
    p = Progress("horizon_models", 4, "models", lines.append, every_s=5.0)
    p.advance(note="h10 min: 12 trees")  # at t = 10 s: 1 of 4 at 0.1/s, 30 s to go
    assert lines == ["horizon_models: 1/4 models (25%), 0.1 models/s, ETA 30 s, h10 min: 12 trees"]


def test_lines_are_throttled_but_the_last_one_is_always_written():
    lines: list[str] = []
    with Progress("rows", 1000, "rows", lines.append, every_s=3600) as p:
        for _ in range(10):
            p.advance(100)
    assert len(lines) == 1 and re.match(r"rows: 1,000/1,000 rows \(100%\), .* done in \d+ s",
                                        lines[0]), lines


def test_bars_only_when_turned_on():
    assert Progress("quiet", 3, "files").bar is None
    progress_module.show_bars(True)
    try:
        with Progress("loud", 3, "files") as p:
            assert p.bar is not None
            p.advance(3)
        assert p.bar is None  # closed with the block
    finally:
        progress_module.show_bars(False)


def test_training_reports_every_booster_of_every_horizon():
    _, ds = dataset_from_raw(simulated_rows(("A",), days=2))
    lines: list[str] = []
    alarms = AlarmConfig()  # with the refit: 4 boosters and 3 refitted regressors per horizon
    with Progress("horizon_models", model_steps(len(ds.horizons), alarms), "models",
                  lines.append, every_s=0) as p:
        fit_xgb_model(ds, XgbConfig(num_boost_round=3, max_depth=2, device="cpu"), progress=p,
                      alarms=alarms)
    assert p.done == 7 * len(ds.horizons) == len(lines)
    assert lines[0].startswith("horizon_models: 1/21 models") and "h10 min:" in lines[0]
    assert "21/21 models (100%)" in lines[-1] and "h25 avg: refit with" in lines[-1]
