"""AMHS failure prediction as a Dagster asset graph: `from amhs_assets import defs`.

`defs` is built on first access, not on import: building it imports Dagster, MLflow and every
asset (about 9 s of CPU), which `amhs --help` and `amhs registry list` never need. Dagster's
loaders (`-m amhs_assets`, workspace.yaml) find it all the same: they list the module with
`dir()` and read each name with `getattr()`.
"""

import os
import sys
import types

# XGBoost and scikit-learn share one OpenMP runtime whose threads spin while they wait. On a
# machine with other busy processes (2 cores, a daemon, the API) spinning threads steal the very
# cores they wait for: training ran 2.5-5x slower. Passive waiting costs nothing when idle.
# Set before any OpenMP library loads; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# MLflow 3 sends usage telemetry from a background thread (fetching its config over the
# internet) in every process that imports it: a fab network is closed, Dagster's telemetry is
# off in the Makefile's instance already, and it cost `amhs registry list` ~0.7 s of CPU. Off
# unless the user sets MLFLOW_DISABLE_TELEMETRY (or DO_NOT_TRACK) otherwise.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow draws a progress bar per artifact download (evaluation, promotion, the API's load):
# dozens of bars in `amhs run`'s output and the run logs, for files of a few MB. Off unless set.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

__all__ = ["defs"]


class _Package(types.ModuleType):
    """This package, whose `defs` is the Definitions, built on first read. A property, not a
    module __getattr__: importing the subpackage amhs_assets/defs/ binds the name `defs` on its
    parent, which would hide a lazy attribute; the property ignores that binding."""

    @property
    def defs(self):
        built = self.__dict__.get("_definitions")
        if built is None:
            from amhs_assets.definitions import defs as built

            self.__dict__["_definitions"] = built
        return built

    @defs.setter
    def defs(self, value) -> None:
        if not isinstance(value, types.ModuleType):  # the subpackage's binding is not ours
            self.__dict__["_definitions"] = value


def __dir__() -> list[str]:
    """The module's names, `defs` among them before it is built (Dagster's loaders look), and
    only once: Dagster refuses a module with two Definitions."""
    return sorted((set(globals()) - {"_definitions"}) | {"defs"})


sys.modules[__name__].__class__ = _Package
