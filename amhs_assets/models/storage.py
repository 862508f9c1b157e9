"""Save and load the trained models in formats that load without unpickling anything.

A model folder holds ``manifest.json`` (kind, horizons, scalars) and one file per part:
XGBoost boosters as UBJSON; the ensemble's scikit-learn members (which have no native format)
as skops, loaded with an explicit list of trusted types; arrays as ``.npz`` (no object arrays).
A folder of an older layout (members pickled with joblib) is refused, never unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import skops.io as sio
import xgboost as xgb
from skops.io.exceptions import UntrustedTypesFoundException

from amhs_assets.models.ensemble import EnsembleModel, Scaler
from amhs_assets.models.kinds import Model, kind_name
from amhs_assets.models.operating import HorizonPolicy
from amhs_assets.models.unified import HORIZON_FEATURE, UnifiedModel
from amhs_assets.models.xgb import HorizonModels, XgbModel

MANIFEST = "manifest.json"
MEMBERS_FILE = "sklearn_members.skops"
# beyond the scikit-learn estimators, numpy and builtins skops trusts itself: the parts of the
# fitted members, reviewed (plain arrays and numbers; files are also checksummed before loading)
TRUSTED_TYPES = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
]


def _save_boosters(boosters: dict[str, xgb.Booster], directory: Path, prefix: str) -> dict:
    """Each booster as <prefix>_<name>.ubj; returns name -> (file, best iteration)."""
    out = {}
    for name, booster in boosters.items():
        path = directory / f"{prefix}_{name}.ubj"
        booster.save_model(path)
        out[name] = {"file": path.name, "best_iteration": int(booster.best_iteration)}
    return out


def _load_boosters(entries: dict, directory: Path) -> dict[str, xgb.Booster]:
    """Boosters back from their files, with the early-stopped iteration restored."""
    out = {}
    for name, entry in entries.items():
        booster = xgb.Booster(model_file=str(directory / entry["file"]))
        booster.set_attr(best_iteration=str(entry["best_iteration"]))
        out[name] = booster
    return out


def _save_xgb(model: XgbModel, directory: Path) -> dict:
    """Manifest part of the per-horizon XGBoost models."""
    parts = {}
    for h, m in model.horizon_models.items():
        boosters = {**m.regressors, "state": m.classifier}
        parts[str(h)] = {"boosters": _save_boosters(boosters, directory, f"xgb_h{h}"),
                         "fallback": m.fallback, "persistence_index": m.persistence_index,
                         "policy": m.policy.to_dict() if m.policy else None}
    return {"horizons": parts}


def _load_xgb(manifest: dict, directory: Path, feature_names: tuple[str, ...]) -> XgbModel:
    """Per-horizon XGBoost models from a manifest part."""
    models = {}
    for h, part in manifest["horizons"].items():
        boosters = _load_boosters(part["boosters"], directory)
        classifier = boosters.pop("state")
        best = {k: int(v["best_iteration"]) for k, v in part["boosters"].items()}
        policy = part.get("policy")  # versions before operating points have none
        models[int(h)] = HorizonModels(int(h), boosters, classifier, part["fallback"],
                                       part["persistence_index"], feature_names, best,
                                       HorizonPolicy.from_dict(policy) if policy else None)
    return XgbModel(models)


def save_model(model: Model, directory: Path, feature_names: tuple[str, ...]) -> Path:
    """Write the model to directory (created) and return the manifest's path."""
    directory.mkdir(parents=True, exist_ok=True)
    kind = kind_name(model)
    manifest: dict = {"kind": kind, "feature_names": list(feature_names),
                      "horizons": [int(h) for h in model.horizons]}
    if kind == "xgb":
        manifest["xgb"] = _save_xgb(model, directory)
    elif kind == "unified":
        manifest["unified"] = {
            "boosters": _save_boosters({**model.regressors, "state": model.classifier},
                                       directory, "unified"),
            "fallback": model.fallback, "persistence_index": model.persistence_index,
            "horizons_seen": list(model.horizons_seen),
            "policies": _save_policies(model.policies)}
    else:
        manifest["ensemble"] = _save_ensemble(model, directory)
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=2))
    return path


def _save_ensemble(model: EnsembleModel, directory: Path) -> dict:
    """Manifest part of the ensemble: XGBoost natively, scikit-learn members with skops."""
    sio.dump({"hgb_regressors": {f"{h}|{t}": m for (h, t), m in model.hgb_regressors.items()},
              "hgb_classifiers": {str(h): m for h, m in model.hgb_classifiers.items()},
              "mlp_regressor": model.mlp_regressor,
              "mlp_classifiers": {str(h): m for h, m in model.mlp_classifiers.items()}},
             directory / MEMBERS_FILE)
    np.savez(directory / "ensemble_arrays.npz", columns=model.columns, mean=model.scaler.mean,
             std=model.scaler.std, target_scale=model.target_scale)
    return {"xgb": _save_xgb(XgbModel(model.xgb), directory), "members": MEMBERS_FILE,
            "weights": {f"{h}|{t}": w.tolist() for (h, t), w in model.weights.items()},
            "fallback": model.fallback, "persistence_index": model.persistence_index,
            "policies": _save_policies(model.policies)}


def _load_members(part: dict, directory: Path) -> dict:
    """The scikit-learn members, refused if their file holds any type outside TRUSTED_TYPES."""
    if "members" not in part:
        raise ValueError(f"{directory}: the ensemble's members were saved with joblib (a pickle) "
                         "by an older version; they are not loaded. Train and register the "
                         "model again")
    path = directory / part["members"]
    try:
        members = sio.load(path, trusted=TRUSTED_TYPES)
    except UntrustedTypesFoundException as exc:
        raise ValueError(f"{path} holds types outside the trusted list, not loaded: "
                         f"{sio.get_untrusted_types(file=path)}") from exc
    return {"hgb_regressors": {(int(k.split("|")[0]), k.split("|")[1]): m
                               for k, m in members["hgb_regressors"].items()},
            "hgb_classifiers": {int(h): m for h, m in members["hgb_classifiers"].items()},
            "mlp_regressor": members["mlp_regressor"],
            "mlp_classifiers": {int(h): m for h, m in members["mlp_classifiers"].items()}}


def _save_policies(policies: dict[int, HorizonPolicy]) -> dict:
    return {str(h): p.to_dict() for h, p in policies.items()}


def _load_policies(part: dict) -> dict[int, HorizonPolicy]:
    return {int(h): HorizonPolicy.from_dict(p) for h, p in (part.get("policies") or {}).items()}


def load_model(directory: Path) -> Model:
    """A model saved by save_model."""
    manifest = json.loads((directory / MANIFEST).read_text())
    names = tuple(manifest["feature_names"])
    kind = manifest["kind"]
    if kind == "xgb":
        return _load_xgb(manifest["xgb"], directory, names)
    if kind == "unified":
        part = manifest["unified"]
        boosters = _load_boosters(part["boosters"], directory)
        classifier = boosters.pop("state")
        # the boosters read the horizon as one more column, as the trained model names it
        unified_names = names if names[-1:] == (HORIZON_FEATURE,) else (*names, HORIZON_FEATURE)
        return UnifiedModel(boosters, classifier, part["fallback"], part["persistence_index"],
                            tuple(part["horizons_seen"]), unified_names, _load_policies(part))
    part = manifest["ensemble"]
    members = _load_members(part, directory)
    arrays = np.load(directory / "ensemble_arrays.npz", allow_pickle=False)
    return EnsembleModel(
        xgb=_load_xgb(part["xgb"], directory, names).horizon_models, **members,
        columns=arrays["columns"], scaler=Scaler(arrays["mean"], arrays["std"]),
        target_scale=arrays["target_scale"],
        weights={(int(k.split("|")[0]), k.split("|")[1]): np.array(w)
                 for k, w in part["weights"].items()},
        fallback=part["fallback"], persistence_index=part["persistence_index"],
        horizons=tuple(manifest["horizons"]), policies=_load_policies(part),
    )

