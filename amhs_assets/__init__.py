"""AMHS failure prediction as a Dagster asset graph: `from amhs_assets import defs`."""

import os

# XGBoost and scikit-learn share one OpenMP runtime whose threads spin while they wait. On a
# machine with other busy processes (2 cores, a daemon, the API) spinning threads steal the very
# cores they wait for: training ran 2.5-5x slower. Passive waiting costs nothing when idle.
# Set before any OpenMP library loads; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from amhs_assets.definitions import defs  # noqa: E402

__all__ = ["defs"]
