"""Benchmark the alarms (issue 15) on simulated lines, seed by seed.

For each seed: simulate, train every model kind with its operating points and the refit,
evaluate on the test window, and print per model and horizon the CRITICAL threshold (chosen
on validation), test precision and recall at it, false alarm episodes per line per shift,
median lead time and the Brier score, next to the peer: the recall of the most probable class
(the same models without operating points). Then the refit: the test MAE of every
model x horizon x target cell with and without it.

Goals (issue 15): recall at 10 min >= 0.6 with test precision >= 0.4, recall at 25 min
>= 0.35; test precision within 0.15 of the precision target; no MAE cell worse with the refit.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import pandas as pd

from amhs_assets.evaluation.evaluate import (
    evaluation_records,
    model_thresholds,
    predictions_frame,
    refit_comparison,
)
from amhs_assets.models.dataset import dataset_from_raw
from amhs_assets.models.ensemble import EnsembleConfig, fit_ensemble_model
from amhs_assets.models.operating import AlarmConfig
from amhs_assets.models.unified import fit_unified_model
from amhs_assets.models.xgb import XgbConfig, fit_xgb_model
from amhs_assets.simulate.lines import line_names, simulate_lines


def without_policies(model):
    """A shallow copy of a model whose predict takes the most probable class (the peer)."""
    if hasattr(model, "horizon_models"):
        return type(model)({h: dataclasses.replace(m, policy=None)
                            for h, m in model.horizon_models.items()})
    return dataclasses.replace(model, policies={})


def run(seed: int, lines: int, days: int, config: AlarmConfig) -> dict:
    frames = simulate_lines(line_names(lines), pd.Timestamp("2026-01-05"), days, seed)
    raw = pd.concat(frames.values(), ignore_index=True)
    started = time.perf_counter()
    ds = dataset_from_raw(raw)[1]
    xgb = fit_xgb_model(ds, XgbConfig(seed=seed), alarms=config)
    unified = fit_unified_model(ds, XgbConfig(seed=seed), alarms=config)
    ensemble = fit_ensemble_model(ds, xgb.horizon_models, EnsembleConfig(seed=seed),
                                  alarms=config)
    models = {"xgb": xgb, "unified": unified, "ensemble": ensemble}
    seconds = time.perf_counter() - started
    records = evaluation_records(predictions_frame(models, ds), model_thresholds(models,
                                                                               ds.horizons))
    peers = {f"{k}": without_policies(m) for k, m in models.items()}
    peer_records = evaluation_records(predictions_frame(peers, ds))
    peer_recall = {(r["model"], r["horizon"]): r["critical_recall"] for r in peer_records
                   if r["target"] == "state"}
    table = pd.DataFrame([{
        "seed": seed, "model": r["model"], "h": r["horizon"],
        "threshold": r["critical_threshold"], "precision": r["critical_precision"],
        "recall": r["critical_recall"], "argmax_recall": peer_recall[r["model"], r["horizon"]],
        "false_alarms_per_shift": r["false_alarms_per_shift"],
        "lead_median_min": r["lead_time_median_min"], "caught_5min": r["caught_5min_share"],
        "brier": r["brier"]} for r in records if r["target"] == "state"])
    refit = pd.DataFrame(refit_comparison(models, ds))
    print(f"seed {seed}: {lines} lines x {days} days, trained in {seconds:.0f} s")
    print(table.drop(columns="seed").round(3).to_string(index=False))
    worse = refit[refit["mae_refit"] > refit["mae_early_stopped"] + 1e-9]
    gain = 100 * (1 - refit["mae_refit"] / refit["mae_early_stopped"])
    print(f"refit: {len(refit) - len(worse)} of {len(refit)} MAE cells at or below "
          f"early-stopped (gain median {gain.median():+.1f} %, min {gain.min():+.1f} %)")
    if len(worse):
        print(worse.round(3).to_string(index=False))
    print()
    return {"table": table, "refit": refit.assign(seed=seed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 23])
    parser.add_argument("--lines", type=int, default=2)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--min-precision", type=float, default=0.5)
    args = parser.parse_args()
    config = AlarmConfig(min_precision=args.min_precision)
    results = [run(seed, args.lines, args.days, config) for seed in args.seeds]
    table = pd.concat([r["table"] for r in results])
    refit = pd.concat([r["refit"] for r in results])
    at = {h: table[table["h"] == h] for h in (10, 25)}
    ok10 = ((at[10]["recall"] >= 0.6) & (at[10]["precision"] >= 0.4)).all()
    ok25 = (at[25]["recall"] >= 0.35).all()
    drift = (table["precision"] - config.min_precision).abs().max()
    worse = int((refit["mae_refit"] > refit["mae_early_stopped"] + 1e-9).sum())
    print(f"goals over {len(args.seeds)} seeds x 3 models: "
          f"recall@10 >= 0.6 and precision >= 0.4: {'ok' if ok10 else 'MISSED'} "
          f"(min recall {at[10]['recall'].min():.3f}, min precision "
          f"{at[10]['precision'].min():.3f}); recall@25 >= 0.35: {'ok' if ok25 else 'MISSED'} "
          f"(min {at[25]['recall'].min():.3f}); |test precision - {config.min_precision}| <= "
          f"0.15: {'ok' if drift <= 0.15 else 'MISSED'} (max {drift:.3f}); "
          f"MAE cells worse with the refit: {worse} of {len(refit)}")
    print(f"recall at the operating point vs the most probable class (mean): "
          f"{table['recall'].mean():.3f} vs {table['argmax_recall'].mean():.3f}")


if __name__ == "__main__":
    main()
