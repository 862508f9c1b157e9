"""The ``dask`` training backend: the same boosters, trained with ``xgboost.dask`` on a Dask
cluster (``xgb.training_backend: dask``; ``xgb.dask_address`` names the scheduler, a
LocalCluster on this machine when empty).

The feature rows go to the cluster batch by batch (one batch in this process at a time) and
stay there for every booster of a dataset; each booster sends only its labels and weights.
What comes back is a plain ``xgb.Booster`` with its early-stopped ``best_iteration``: the
models, their storage and their registry tags do not know which backend trained them.
"""

from __future__ import annotations

import atexit
import functools
import logging
import multiprocessing
import os
from dataclasses import dataclass

import numpy as np
import xgboost as xgb


@functools.cache
def dask_client(address: str):
    """A client of the scheduler at `address`, or of a LocalCluster started for this process:
    one worker with every core (threads when this process may not have children, e.g. a
    Celery prefork worker). One worker trains exactly what the local backend trains; across
    several workers XGBoost approximates the leaf medians of the absolute-error regressors
    (the mean of each worker's quantile), which costs some accuracy (bench_distributed)."""
    from distributed import Client, LocalCluster

    if address:
        client = Client(address, timeout="30s")
    else:
        processes = not multiprocessing.current_process().daemon
        cluster = LocalCluster(n_workers=1, threads_per_worker=os.cpu_count() or 1,
                               processes=processes, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
        atexit.register(cluster.close)
    atexit.register(client.close)
    return client


def _scattered(client, batches, workers: list[str]) -> tuple:
    """The batches of a RowBatches as one Dask array on the cluster, and its chunks: pieces
    dealt round-robin so that every worker holds training AND validation rows (a worker with
    none of one set computes its metrics with another intercept, and early stopping goes
    wrong)."""
    import dask
    import dask.array as da

    parts, sizes = [], []
    for make in batches.batches:
        block = np.ascontiguousarray(make(), dtype=np.float32)
        piece_rows = max(1, -(-len(block) // len(workers)))  # each batch split over every worker
        for start in range(0, len(block), piece_rows):
            piece = block[start:start + piece_rows]
            future = client.scatter(piece, workers=[workers[len(parts) % len(workers)]])
            parts.append(da.from_delayed(dask.delayed(future), shape=piece.shape,
                                         dtype=np.float32))
            sizes.append(len(piece))
    return da.concatenate(parts, axis=0), tuple(sizes)


@dataclass
class DaskMatrices:
    """Training and validation rows on the cluster, shared by every booster of a dataset."""

    client: object
    train: object  # dask arrays
    val: object
    chunks: tuple[tuple[int, ...], tuple[int, ...]]
    max_bin: int
    rows: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def build(cls, train_rows, val_rows, address: str, max_bin: int,
              rows: tuple[np.ndarray, np.ndarray] | None = None) -> DaskMatrices:
        client = dask_client(address)
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise RuntimeError(f"the Dask cluster {address or '(local)'} has no workers")
        train, tc = _scattered(client, train_rows, workers)
        val, vc = _scattered(client, val_rows, workers)
        return cls(client, train, val, (tc, vc), max_bin, rows)

    def _matrix(self, X, chunks, y: np.ndarray, weight: np.ndarray | None, ref=None):
        import dask.array as da
        from xgboost import dask as dxgb

        known = ~np.isnan(y)
        w = known.astype(np.float32) if weight is None else np.where(known, weight, 0.0)
        label = da.from_array(np.where(known, y, 0.0).astype(np.float32), chunks=(chunks,))
        weights = da.from_array(np.asarray(w, np.float32), chunks=(chunks,))
        return dxgb.DaskQuantileDMatrix(self.client, X, label=label, weight=weights,
                                        max_bin=self.max_bin, ref=ref)

    def fit(self, params: dict, num_boost_round: int, early_stopping_rounds: int,
            y: np.ndarray, y_val: np.ndarray, weight: np.ndarray | None,
            weight_val: np.ndarray | None) -> xgb.Booster:
        """One booster trained on the cluster, early-stopped on the validation rows."""
        from xgboost import dask as dxgb

        train = self._matrix(self.train, self.chunks[0], y, weight)
        val = self._matrix(self.val, self.chunks[1], y_val, weight_val, ref=train)
        params = {k: v for k, v in params.items() if k != "nthread"}  # each worker's own threads
        out = dxgb.train(self.client, params, train, num_boost_round=num_boost_round,
                         evals=[(val, "val")], early_stopping_rounds=early_stopping_rounds,
                         verbose_eval=False)
        return out["booster"]
