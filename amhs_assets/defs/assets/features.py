"""Feature stage: the 222 features, their catalog, and the multi-horizon targets."""

import dagster as dg
import numpy as np
import pandas as pd

from amhs_assets.contract import STATES
from amhs_assets.defs.metadata import markdown_table
from amhs_assets.defs.partitions import deployment_horizons
from amhs_assets.defs.resources import AmhsSettings
from amhs_assets.features.compute import build_features, feature_rows_usable
from amhs_assets.features.spec import FEATURE_VERSION
from amhs_assets.features.spec import feature_catalog as make_catalog
from amhs_assets.features.targets import build_targets
from amhs_assets.progress import Progress

GROUP = "features"


@dg.asset(group_name=GROUP, kinds={"pandas", "numpy"}, code_version=FEATURE_VERSION)
def amhs_features(context: dg.AssetExecutionContext, cleaned_amhs_logs: pd.DataFrame
                  ) -> dg.Output[pd.DataFrame]:
    """222 features per line and minute, each from at most 120 minutes at or before the minute."""
    with Progress("amhs_features", len(cleaned_amhs_logs), "rows", context.log.info) as progress:
        features = build_features(cleaned_amhs_logs, progress)
    usable = feature_rows_usable(cleaned_amhs_logs)
    return dg.Output(features, metadata={
        "rows": len(features),
        "features": features.shape[1] - 2,
        "rows_usable": int(usable.sum()),
        "rows_unusable": int((~usable).sum()),
        "feature_version": FEATURE_VERSION,
        "memory_mb": float(features.memory_usage(deep=False).sum() / 2**20),
    })


@dg.asset(group_name=GROUP, kinds={"csv"}, code_version=FEATURE_VERSION)
def feature_catalog(settings: AmhsSettings) -> dg.Output[pd.DataFrame]:
    """Name, source columns, transform, window and description of each of the 222 features."""
    catalog = make_catalog()
    path = settings.reports_dir / "feature_catalog.csv"
    catalog.to_csv(path, index=False)
    by_transform = catalog["transform"].value_counts().rename_axis("transform").reset_index()
    return dg.Output(catalog, metadata={
        "features": len(catalog),
        "feature_version": FEATURE_VERSION,
        "path": dg.MetadataValue.path(str(path)),
        "by_transform": dg.MetadataValue.md(markdown_table(by_transform)),
        "catalog": dg.MetadataValue.md(markdown_table(catalog, max_rows=222)),
    })


@dg.asset(group_name=GROUP, kinds={"pandas"})
def amhs_targets(settings: AmhsSettings, cleaned_amhs_logs: pd.DataFrame
                 ) -> dg.Output[pd.DataFrame]:
    """MIN, MAX, AVG of the target column over the next h minutes and the 3-class state, per horizon."""
    targets = build_targets(cleaned_amhs_logs, deployment_horizons(), settings.target_column,
                            settings.warning_s, settings.critical_s)
    mix = []
    for h in deployment_horizons():
        codes = targets[f"state_{h}"].to_numpy()
        known = codes >= 0
        shares = np.bincount(codes[known], minlength=len(STATES)) / max(int(known.sum()), 1)
        mix.append({"horizon": h, "rows": int(known.sum()),
                    **{s: round(float(v), 4) for s, v in zip(STATES, shares)}})
    mix_frame = pd.DataFrame(mix)
    metadata = {f"critical_share_{m['horizon']}": m["CRITICAL"] for m in mix}
    return dg.Output(targets, metadata={
        "rows": len(targets),
        "target_column": settings.target_column,
        "horizons": str(list(deployment_horizons())),
        "thresholds_s": f"WARNING >= {settings.warning_s:g}, CRITICAL >= {settings.critical_s:g}",
        "class_mix": dg.MetadataValue.md(markdown_table(mix_frame)),
        **metadata,
    })
