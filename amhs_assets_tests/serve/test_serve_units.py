"""Pieces of the REST API without a server: numpy rules, the prediction log, settings."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pandas as pd
import pytest

from amhs_assets.contract import CROSS_COLUMN_RULES, NUMERIC_COLUMNS, TRANSFER_TIME_COLUMNS
from amhs_assets.serve.config import ServeSettings
from amhs_assets.serve.prediction_log import PredictionLog
from amhs_assets.serve.schemas import request_adapter
from amhs_assets.serve.validation import NUMPY_RULES, RequestError, validate_body
from amhs_assets_tests.support import valid_rows


def test_numpy_rules_agree_with_the_contracts_rules():
    rng = np.random.default_rng(1)
    n = 4000
    frame = pd.DataFrame({c: rng.integers(0, 6, n).astype(float) for c in NUMERIC_COLUMNS})
    for c in (*TRANSFER_TIME_COLUMNS, "jobs_completed", "vehicles_total"):
        frame.loc[rng.random(n) < 0.3, c] = np.nan
    columns = {c: frame[c].to_numpy() for c in NUMERIC_COLUMNS}
    for name, _, rule in CROSS_COLUMN_RULES:
        broken = NUMPY_RULES[name](columns)
        assert np.array_equal(broken, ~rule(frame).to_numpy(bool)), name
        assert 0 < broken.sum() < n, name  # the data exercises both outcomes


def records_of(frame: pd.DataFrame) -> list[dict]:
    """Contract rows as JSON records: empty transfer times as null."""
    records = json.loads(frame.to_json(orient="records"))
    for r in records:
        r.update({c: None for c in TRANSFER_TIME_COLUMNS if r[c] == ""})
    return records


def test_validation_turns_rows_into_sorted_lines_with_naive_times_as_utc():
    records = records_of(pd.concat([valid_rows(130, "L2", seed=1), valid_rows(125, "L1", seed=2)]))
    for r in records:
        r["timestamp"] = r["timestamp"].removesuffix("Z")  # naive: UTC
    records.reverse()
    lines = validate_body(orjson.dumps({"rows": records}), request_adapter(1000), 1000, 120)
    assert [x.line_id for x in lines] == ["L1", "L2"]
    start = pd.Timestamp("2026-03-01T00:00:00Z").value // 60_000_000_000
    assert lines[0].minutes[0] == start and (np.diff(lines[0].minutes) == 1).all()
    assert lines[1].values.shape == (130, len(NUMERIC_COLUMNS))


def rejection(records: list[dict]) -> RequestError:
    """The RequestError of a body of these rows."""
    with pytest.raises(RequestError) as caught:
        validate_body(orjson.dumps({"rows": records}), request_adapter(1000), 1000, 120)
    return caught.value


def test_rule_errors_list_twenty_problems_in_row_order_and_count_them_all():
    records = records_of(valid_rows(130))
    for r in records:
        r["vehicles_active"] = 300  # > vehicles_total (200): every row breaks a rule
    error = rejection(records)
    assert error.status == 422 and error.count == 130
    assert [e["row"] for e in error.body()["errors"]] == list(range(20))
    assert error.detail.startswith("row 0, line 'L1', field 'vehicles_active': rule broken")


def test_type_and_range_errors_stop_at_the_first_bad_row():
    records = records_of(valid_rows(130))
    for r in records[5:]:
        r.update(vehicles_total=-1, wip_lots="many")  # a million bad rows cost one row's errors
    error = rejection(records)
    assert {(e["row"], e["field"]) for e in error.errors} == {(5, "vehicles_total"),
                                                              (5, "wip_lots")}
    assert error.detail.startswith("row 5, line 'L1', field 'vehicles_total'")


def test_prediction_log_flushes_on_close_into_date_partitions(tmp_path):
    log = PredictionLog(tmp_path, flush_s=60)
    log.start()
    model = {"name": "amhs-predictor", "version": "7", "alias": "champion"}
    horizons = {"10": {"min": 1.0, "max": 2.0, "avg": 1.5, "state": "NORMAL",
                       "proba": {"NORMAL": 1.0, "WARNING": 0.0, "CRITICAL": 0.0}}}
    for i in range(3):
        log.append(model, [{"line_id": f"L{i}", "as_of": "2026-03-01T00:00:00Z",
                            "horizons": horizons}])
    log.close()
    files = list(tmp_path.glob("date=*/part-*.jsonl"))
    assert len(files) == 1
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [r["line_id"] for r in records] == ["L0", "L1", "L2"]
    assert records[0]["model_version"] == "7" and records[0]["horizons"] == horizons
    assert files[0].parent.name == f"date={records[0]['logged_at'][:10]}"


def test_settings_come_from_the_environment_and_name_a_bad_variable(tmp_path):
    settings = ServeSettings.from_env({"AMHS_DATA_DIR": str(tmp_path), "AMHS_MAX_ROWS": "50",
                                       "AMHS_RELOAD_INTERVAL_S": "0.5"})
    assert (settings.max_rows, settings.reload_interval_s, settings.api_token) == (50, 0.5, None)
    assert settings.resolved_tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    with pytest.raises(ValueError, match="AMHS_MAX_BODY_BYTES"):
        ServeSettings.from_env({"AMHS_MAX_BODY_BYTES": "lots"})
