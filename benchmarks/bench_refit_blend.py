"""What the refit blend costs a forecast: every horizon's predict for a typical request (1-2
rows), served by models trained with the blend (alarms.refit_weight 0.5: refitted and
early-stopped boosters merged into one per target) next to the same models trained with the
refit alone (refit_weight 1), in alternating blocks so both series see the same machine load.

    python benchmarks/bench_refit_blend.py [--days 14] [--lines 2] [--rows 2] [--calls 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from amhs_assets.models.dataset import dataset_from_raw
from amhs_assets.models.operating import AlarmConfig
from amhs_assets.models.splits import TEST
from amhs_assets.models.unified import fit_unified_model
from amhs_assets.models.xgb import XgbConfig, fit_xgb_model
from amhs_assets.simulate.lines import line_names, simulate_lines


def timed(model, X: np.ndarray, horizons: tuple[int, ...]) -> float:
    started = time.perf_counter()
    for h in horizons:
        model.predict(X, h)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--lines", type=int, default=2)
    parser.add_argument("--rows", type=int, default=2, help="rows per request")
    parser.add_argument("--calls", type=int, default=400, help="requests per series")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    frames = simulate_lines(line_names(args.lines), pd.Timestamp("2026-01-05", tz="UTC"),
                            args.days, args.seed)
    ds = dataset_from_raw(pd.concat(frames.values(), ignore_index=True))[1]
    config = XgbConfig(seed=args.seed)
    models = {kind: {w: fit(ds, config, alarms=AlarmConfig(refit_weight=w)) for w in (0.5, 1.0)}
              for kind, fit in (("xgb", fit_xgb_model), ("unified", fit_unified_model))}
    X = ds.X[ds.mask(TEST)]
    rng = np.random.default_rng(args.seed)
    print(f"{args.lines} lines x {args.days} days; {args.rows} rows per request, every horizon; "
          f"{args.calls} requests per series")
    print(f"{'model':8s} {'blend p50 ms':>13s} {'refit alone p50 ms':>19s} {'ratio':>6s}")
    for kind, trained in models.items():
        series = {"blend": (trained[0.5], []), "alone": (trained[1.0], [])}
        for _ in range(3):  # warm both
            for served, _ in series.values():
                timed(served, X[:args.rows], ds.horizons)
        for block in range(args.calls // 20):
            for name in (("blend", "alone") if block % 2 else ("alone", "blend")):
                served, times = series[name]
                for _ in range(20):
                    start = int(rng.integers(0, len(X) - args.rows))
                    times.append(timed(served, X[start:start + args.rows], ds.horizons))
        blend, alone = (float(np.median(series[k][1])) for k in ("blend", "alone"))
        print(f"{kind:8s} {blend:13.2f} {alone:19.2f} {blend / alone:6.2f}")


if __name__ == "__main__":
    main()
