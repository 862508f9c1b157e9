"""Latency of explanations: every horizon's forecast for a typical request (1-2 lines), with and
without `models.explain.explain`, on models trained with the default settings.

The default path is the model's own `predict` per horizon, which explanations leave untouched;
the explained path is that plus `explain` per horizon. The default path is timed first before
any explanation was asked for, then in blocks of default-only requests that alternate with
blocks where default and explained requests interleave (every series of the blocks sees the
same machine load). The acceptance: the default path's p50 once explanations are served grows
by at most 10 % over its p50 before; the default path among explained requests shows what a
server answering both sees (caches shared with the explanations). Also prints the largest
|sum(contributions) + bias - the booster's margin| over the test rows (the bound is 1e-3).

    python benchmarks/bench_explain.py [--days 14] [--lines 2] [--rows 2] [--calls 300]
                                       [--kinds xgb unified ensemble]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from amhs_assets.models.dataset import dataset_from_raw
from amhs_assets.models.ensemble import EnsembleConfig, fit_ensemble_model
from amhs_assets.models.explain import OUTPUTS, contributions, explain, margins
from amhs_assets.models.splits import TEST
from amhs_assets.models.unified import fit_unified_model
from amhs_assets.models.xgb import XgbConfig, fit_xgb_model
from amhs_assets.simulate.lines import line_names, simulate_lines

BEFORE, ALONE = "default, none explained yet", "default alone"
AMONG, EXPLAINED = "default among explained", "explained"


def trained(kinds: list[str], lines: int, days: int, seed: int):
    """The dataset and a model of each kind asked for, with the default settings."""
    frames = simulate_lines(line_names(lines), pd.Timestamp("2026-01-05", tz="UTC"), days, seed)
    started = time.perf_counter()
    ds = dataset_from_raw(pd.concat(frames.values(), ignore_index=True))[1]
    config = XgbConfig(seed=seed)
    models = {}
    if {"xgb", "ensemble"} & set(kinds):
        models["xgb"] = fit_xgb_model(ds, config)
    if "unified" in kinds:
        models["unified"] = fit_unified_model(ds, config)
    if "ensemble" in kinds:
        models["ensemble"] = fit_ensemble_model(ds, models["xgb"].horizon_models,
                                                EnsembleConfig(seed=seed))
    print(f"{lines} lines x {days} days: {len(ds.X):,} dataset rows; trained "
          f"{', '.join(models)} in {time.perf_counter() - started:.0f} s")
    return ds, {k: models[k] for k in kinds}


def trees(model) -> str:
    """Trees the CRITICAL and avg boosters of the first horizon predict with."""
    h = model.horizons[0]
    hm = getattr(model, "horizon_models", getattr(model, "xgb", None))
    source = model if hm is None else hm[h]
    used = [b.best_iteration + 1 for b in (source.classifier, source.regressors["avg"])]
    return f"{used[0]} state rounds (x3 classes), {used[1]} avg trees"


def measure(model, X: np.ndarray, calls: int, blocks: int = 10) -> dict[str, np.ndarray]:
    """Milliseconds per request: the default path before any explanation was asked for; then,
    in alternating blocks (so each sees the same load), the default path alone, the default
    path among explained requests, and the explained path."""
    def default():
        return {h: model.predict(X, h) for h in model.horizons}

    def explained():
        return {h: (model.predict(X, h), explain(model, X, h)) for h in model.horizons}

    def timed(name: str, call) -> None:
        t0 = time.perf_counter()
        call()
        out[name].append((time.perf_counter() - t0) * 1000)

    out = {BEFORE: [], ALONE: [], AMONG: [], EXPLAINED: []}
    for _ in range(10):
        default()
    for _ in range(calls):
        timed(BEFORE, default)
    for _ in range(10):  # warm up the explained path (roll-up matrix, buffers)
        explained()
    for block in range(2 * blocks):
        for _ in range(max(1, calls // blocks)):
            if block % 2:
                timed(AMONG, default)
                timed(EXPLAINED, explained)
            else:
                timed(ALONE, default)
    return {k: np.array(v) for k, v in out.items()}


def largest_gap(model, X: np.ndarray) -> float:
    """Largest |contributions + bias - the booster's own margin| over rows X, every horizon and
    output."""
    gaps = []
    for h in model.horizons:
        own = margins(model, X, h)
        for name, part in contributions(model, X, h).items():
            gaps.append(np.abs(part.values.sum(axis=1) + part.bias - own[name]).max())
    return float(max(gaps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--lines", type=int, default=2)
    parser.add_argument("--rows", type=int, default=2, help="lines in one request")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--kinds", nargs="+", default=["xgb", "unified", "ensemble"])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    ds, models = trained(args.kinds, args.lines, args.days, args.seed)
    test = ds.X[ds.mask(TEST)]
    X = test[-args.rows:]  # a request: one feature row per line (the newest test minutes)
    print(f"{os.cpu_count()} cores; a request = {len(X)} rows; {args.calls} calls per series; "
          f"ms per request, every horizon")
    for kind, model in models.items():
        ms = measure(model, X, args.calls)
        p50 = {k: float(np.percentile(v, 50)) for k, v in ms.items()}
        print(f"{kind:<9} ({trees(model)}); sum vs margin over {len(test):,} test rows: "
              f"max gap {largest_gap(model, test):.2e} ({' and '.join(OUTPUTS)})")
        for name, v in ms.items():
            print(f"  {name:<28} p50 {p50[name]:7.2f}  p95 {np.percentile(v, 95):7.2f}")
        grown = p50[ALONE] / p50[BEFORE]
        print(f"  explained / default p50 {p50[EXPLAINED] / p50[ALONE]:.2f}x; default p50 after "
              f"explanations were served / before {grown:.3f} (goal <= 1.10: "
              f"{'ok' if grown <= 1.10 else 'MISSED'}); default among explained / alone "
              f"{p50[AMONG] / p50[ALONE]:.3f}")


if __name__ == "__main__":
    main()
