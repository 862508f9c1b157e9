"""The served predictor: raw rows in, every horizon's MIN/MAX/AVG/state for each line out.

``AmhsPredictor`` bundles the online feature path and a trained model (per-horizon XGBoost,
unified or ensemble). Two entry points share one implementation:
- ``predict_lines``: numpy arrays per line, already validated (the REST API's fast path);
- ``predict_frame``: a pandas frame of raw contract rows, validated here (MLflow's pyfunc).
``AmhsPyfuncModel`` is the MLflow ``PythonModel`` around it, logged as a "model from code"
(``pyfunc_model.py``), so a registered version holds no pickle. A saved predictor folder carries
``checksums.json``; its SHA-256 is the version's ``artifact_sha256`` tag, and every load checks
the files against both first (``load_registered``: what the API and the evaluation use; they
read the predictor folder only, never MLflow's loader).
"""

from __future__ import annotations

import importlib.metadata
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from amhs_assets.contract import (
    COLUMNS,
    LOOKBACK_MIN,
    MAX_FILL_GAP_MIN,
    NUMERIC_COLUMNS,
    REGRESSION_TARGETS,
    STATES,
)
from amhs_assets.features.compute import online_features
from amhs_assets.features.spec import FEATURE_VERSION
from amhs_assets.integrity import IntegrityError, verify_folder, write_checksums
from amhs_assets.ingest.clean import schema_failures, type_columns
from amhs_assets.models.explain import explain as explain_rows
from amhs_assets.models.operating import decide
from amhs_assets.models.storage import Model, load_model, save_model

INFO_FILE = "predictor.json"
MODEL_DIR = "model"
ARTIFACT = "predictor"  # the pyfunc's artifact: the saved predictor folder
TAG_ARTIFACT_SHA256 = "artifact_sha256"  # a version's tag: SHA-256 of its checksums.json
LINE_IDS = "line_ids"  # info key: the lines of the training data (absent in older versions)
CODE_FILE = Path(__file__).with_name("pyfunc_model.py")


class InputError(ValueError):
    """Rows the predictor cannot use; the message names the line, row or field."""


@dataclass
class LineRows:
    """One line's rows: epoch minutes (sorted, unique) and the numeric contract columns."""

    line_id: str
    minutes: np.ndarray  # int64, minutes since the epoch, UTC
    values: np.ndarray  # float64 (rows, len(NUMERIC_COLUMNS))


def window_of(rows: LineRows, lookback: int = LOOKBACK_MIN, max_fill_gap: int = MAX_FILL_GAP_MIN
              ) -> np.ndarray:
    """The last `lookback` minutes ending at the line's latest row, on a one-minute grid.

    Minutes inside a gap of at most max_fill_gap take the previous row (as the cleaning
    does); a longer gap inside the window, or too little history, is an InputError."""
    end = int(rows.minutes[-1])
    grid = np.arange(end - lookback + 1, end + 1)
    idx = np.searchsorted(rows.minutes, grid, side="right") - 1
    if idx[0] < 0:
        raise InputError(f"line {rows.line_id!r}: needs {lookback} minutes of history ending at "
                         f"its latest row; the rows cover only {end - int(rows.minutes[0]) + 1}")
    prev = rows.minutes[idx]
    inside = prev != grid
    if inside.any():
        nxt = rows.minutes[np.minimum(idx + 1, len(rows.minutes) - 1)]
        gap = nxt - prev - 1
        bad = inside & (gap > max_fill_gap)
        if bad.any():
            at = pd.Timestamp(int(grid[bad][0]) * 60, unit="s", tz="UTC").isoformat()
            raise InputError(f"line {rows.line_id!r}: a gap of {int(gap[bad][0])} minutes at {at} "
                             f"lies inside the {lookback}-minute lookback (at most "
                             f"{max_fill_gap} can be filled)")
    return rows.values[idx]


class AmhsPredictor:
    """Online features + a trained model, for the latest minute of each line."""

    def __init__(self, model: Model, info: dict):
        self.model = model
        self.info = {"feature_version": FEATURE_VERSION, "lookback_min": LOOKBACK_MIN,
                     "horizons": [int(h) for h in model.horizons], **info}
        self.horizons = tuple(int(h) for h in model.horizons)
        self.lookback = int(self.info["lookback_min"])
        # the lines it was trained on; None: not recorded (registered before they were)
        known = self.info.get(LINE_IDS)
        self.line_ids = None if known is None else frozenset(map(str, known))
        self._thresholds = {h: None if t is None else round(float(t), 5)
                            for h, t in self.thresholds().items()}

    def features(self, lines: list[LineRows]) -> np.ndarray:
        """The 222 features of each line's latest minute, one row per line."""
        X = np.empty((len(lines), len(self.model_feature_names)), dtype=np.float32)
        for i, rows in enumerate(lines):
            window = window_of(rows, self.lookback)
            columns = dict(zip(NUMERIC_COLUMNS, window.T))
            X[i] = online_features(columns, np.datetime64(int(rows.minutes[-1]), "m"))
        return X

    @property
    def model_feature_names(self) -> tuple[str, ...]:
        return tuple(self.info["feature_names"])

    def thresholds(self) -> dict[int, float | None]:
        """The CRITICAL threshold of each horizon's operating point (None: most probable class)."""
        policy = getattr(self.model, "policy", None)
        return {h: (p.critical_threshold if callable(policy) and (p := policy(h)) else None)
                for h in self.horizons}

    def predict_lines(self, lines: list[LineRows], explain: bool = False) -> list[dict]:
        """Per line: as_of and, per horizon, min/max/avg (s), the state the operating point
        decides, the CRITICAL alarm and its threshold, and the class probabilities; with
        `explain`, also the raw columns that pushed the forecast most (models/explain.py),
        computed only then."""
        X = self.features(lines)
        thresholds = self._thresholds
        per_h = {}
        for h in self.horizons:
            pred = self.model.predict(X, h)
            per_h[h] = pred if "state" in pred else decide(pred, None)
        out = []
        for i, rows in enumerate(lines):
            as_of = pd.Timestamp(int(rows.minutes[-1]) * 60, unit="s", tz="UTC")
            horizons = {}
            for h, pred in per_h.items():
                proba = pred["proba"][i]
                horizons[str(h)] = {
                    **{t: round(float(pred[t][i]), 3) for t in REGRESSION_TARGETS},
                    "state": STATES[int(pred["state"][i])],
                    "alarm": bool(pred["alarm"][i]),
                    "threshold": thresholds[h],
                    "proba": {s: round(float(p), 5) for s, p in zip(STATES, proba)},
                }
            out.append({"line_id": rows.line_id,
                        "as_of": as_of.strftime("%Y-%m-%dT%H:%M:%SZ"), "horizons": horizons})
        if explain:
            for h in self.horizons:
                for line, why in zip(out, explain_rows(self.model, X, h)):
                    line["horizons"][str(h)]["explain"] = why
        return out

    def predict_frame(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Raw contract rows (any order, one or more lines) -> one flat row per line."""
        lines = lines_from_frame(raw)
        return flatten(self.predict_lines(lines))

    def save(self, directory: Path) -> str:
        """Write model, info and checksums.json under directory; returns the SHA-256 of
        checksums.json (record it where the folder's writer cannot change it)."""
        directory.mkdir(parents=True, exist_ok=True)
        save_model(self.model, directory / MODEL_DIR, self.model_feature_names)
        (directory / INFO_FILE).write_text(json.dumps(self.info, indent=2, default=str))
        return write_checksums(directory)

    @classmethod
    def load(cls, directory: Path, checksum: str | None, what: str | None = None
             ) -> "AmhsPredictor":
        """A predictor saved by save(), once every file matches checksums.json and
        checksums.json has the SHA-256 `checksum` (IntegrityError naming the file otherwise;
        `what` names the folder there)."""
        verify_folder(directory, checksum, what or f"the predictor in {directory}")
        info = json.loads((directory / INFO_FILE).read_text())
        return cls(load_model(directory / MODEL_DIR), info)


def lines_from_frame(raw: pd.DataFrame) -> list[LineRows]:
    """Validate raw rows against the contract and group them per line (sorted by time)."""
    missing = [c for c in ("line_id", "timestamp", *NUMERIC_COLUMNS) if c not in raw.columns]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}")
    typed, parse = type_columns(raw.reset_index(drop=True))
    failures = pd.concat([parse, schema_failures(typed)], ignore_index=True)
    if len(failures):
        first = failures.sort_values("pos").head(5)
        detail = "; ".join(f"row {int(p)}: {r}" for p, r in zip(first["pos"], first["reason"]))
        raise InputError(f"{failures['pos'].nunique()} invalid row(s): {detail}")
    dup = typed.duplicated(["line_id", "timestamp"], keep=False).to_numpy()
    if dup.any():
        raise InputError(f"duplicate minute for the same line at row(s) {np.flatnonzero(dup)[:5].tolist()}")
    typed = typed.sort_values(["line_id", "timestamp"], kind="stable")
    minutes = typed["timestamp"].astype("int64").to_numpy() // 60_000_000_000
    values = typed[list(NUMERIC_COLUMNS)].to_numpy(np.float64)
    ids = typed["line_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    return [LineRows(str(ids[a]), minutes[a:b], values[a:b]) for a, b in zip(starts, ends)]


def flatten(predictions: list[dict]) -> pd.DataFrame:
    """Nested predictions as a flat frame: h{h}_min, h{h}_state, h{h}_proba_NORMAL, ..."""
    rows = []
    for p in predictions:
        row = {"line_id": p["line_id"], "as_of": p["as_of"]}
        for h, v in p["horizons"].items():
            row.update({f"h{h}_{t}": v[t] for t in (*REGRESSION_TARGETS, "state", "alarm")})
            row[f"h{h}_threshold"] = v["threshold"]
            row.update({f"h{h}_proba_{s}": v["proba"][s] for s in STATES})
        rows.append(row)
    return pd.DataFrame(rows)


class AmhsPyfuncModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: raw rows in (a DataFrame of the 32 columns), one row per line out."""

    def load_context(self, context) -> None:
        checksum = (context.model_config or {}).get(TAG_ARTIFACT_SHA256)
        self.predictor = AmhsPredictor.load(Path(context.artifacts[ARTIFACT]), checksum)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        return self.predictor.predict_frame(model_input)


def input_schema():
    """The pyfunc's input: raw contract rows. Numbers are left untyped (ints from a CSV, floats,
    missing values all pass) because the predictor validates every row against the contract."""
    from mlflow.types.schema import AnyType, ColSpec, Schema

    return Schema([ColSpec("string", c.name) if c.kind in ("str", "datetime")
                   else ColSpec(AnyType(), c.name) for c in COLUMNS])


def pip_requirements() -> list[str]:
    """The bundled package's own dependencies, pinned to this environment's versions: declared,
    because MLflow's inference of them loads the model in a subprocess (10-13 s per version)."""
    from packaging.requirements import Requirement

    package = __name__.split(".")[0]
    needed = [Requirement(r) for r in importlib.metadata.requires(package) or []]
    return [f"{r.name}=={importlib.metadata.version(r.name)}" for r in needed if not r.marker]


def log_predictor(predictor: AmhsPredictor, input_example: pd.DataFrame, workdir: Path,
                  registered_model_name: str | None = None, name: str = "model"):
    """Log the predictor as an MLflow pyfunc from code (package code bundled, signature and
    input example from real raw rows) in the active MLflow run; optionally register it, with
    its artifact_sha256 tag. Returns ModelInfo; `artifact_sha256(info)` is the tag's value."""
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature, infer_signature

    folder = workdir / ARTIFACT
    digest = predictor.save(folder)
    input_example = input_example.astype({"timestamp": str, "line_id": str})
    output = predictor.predict_frame(input_example)
    signature = ModelSignature(inputs=input_schema(),
                               outputs=infer_signature(input_example, output).outputs)
    package = Path(__file__).resolve().parent
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=str(CODE_FILE),
        model_config={TAG_ARTIFACT_SHA256: digest},
        metadata={TAG_ARTIFACT_SHA256: digest},
        artifacts={ARTIFACT: str(folder)},
        code_paths=[str(package)],
        signature=signature,
        input_example=input_example,
        registered_model_name=registered_model_name,
        pip_requirements=pip_requirements(),
    )
    if registered_model_name:
        MlflowClient().set_model_version_tag(registered_model_name, info.registered_model_version,
                                             TAG_ARTIFACT_SHA256, digest)
    return info


def artifact_sha256(model_info) -> str:
    """The SHA-256 of the logged predictor's checksums.json (the artifact_sha256 tag to set on
    the version registered from model_info)."""
    return model_info.metadata[TAG_ARTIFACT_SHA256]


def load_registered(client, name: str, version: str) -> AmhsPredictor:
    """A registered version's predictor, read from its predictor folder only (never MLflow's
    loader, which runs the code and unpickles what it finds in the artifacts) and verified
    against the version's artifact_sha256 tag first."""
    mv = client.get_model_version(name, str(version))
    checksum = (mv.tags or {}).get(TAG_ARTIFACT_SHA256)
    if not checksum:
        raise IntegrityError(f"version {version} of {name!r} has no {TAG_ARTIFACT_SHA256} tag, "
                             "so its files cannot be verified (registered before checksums, or "
                             "by hand); it is not loaded. Register the model again")
    root = client.get_model_version_download_uri(name, str(version)).rstrip("/")
    uri = f"{root}/artifacts/{ARTIFACT}"
    with tempfile.TemporaryDirectory(prefix="amhs-model-") as tmp:
        folder = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        return AmhsPredictor.load(Path(folder), checksum, f"version {version} of {name!r} ({uri})")
