"""Pieces of the REST API without a server: numpy rules, the prediction log, settings."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import orjson
import pandas as pd
import pytest

from amhs_assets.contract import CROSS_COLUMN_RULES, NUMERIC_COLUMNS, TRANSFER_TIME_COLUMNS
from amhs_assets.serve.config import ServeSettings
from amhs_assets.serve.prediction_log import PredictionLog, prune_days
from amhs_assets.serve.schemas import request_adapter
from amhs_assets.serve import validation
from amhs_assets.serve.shape import check_shape
from amhs_assets.serve.validation import NUMPY_RULES, RequestError, parse_request, validate_body
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


def shape_refusal(body: dict, keys: int = 0, row_bytes: int = 0, rows: int = 0) -> str | None:
    """The 413's detail of check_shape for this body, or None when it passes."""
    try:
        check_shape(orjson.dumps(body), keys, row_bytes, rows)
    except RequestError as exc:
        assert exc.status == 413
        return exc.detail
    return None


def test_shape_check_counts_a_rows_keys_whatever_its_strings_hold():
    tricky = ['{"a": 1}', "}", '\\"', "\\", ':,:,', "[[", '"', "\\\\\""]
    row = {f"k{i}{tricky[i % len(tricky)]}": tricky[-i % len(tricky)] for i in range(40)}
    row["nested"] = {"x": [1, {"y": "}"}], "z": {}}  # its keys are not the row's
    body = {"rows": [row, dict(row), {**row, "one more": 1}], "explain": True}
    assert shape_refusal(body, keys=42) is None
    assert shape_refusal(body, keys=41) == ("row 2: 42 keys, at most 41 per row "
                                            "(AMHS_MAX_ROW_KEYS); the contract has 32 columns")
    assert shape_refusal({f"k{i}": 1 for i in range(50)}, keys=41).startswith("50 keys outside")


def test_shape_check_refuses_long_rows_and_too_many_rows_before_parsing():
    body = {"rows": [{"a": "x" * 100}, {"a": [0] * 1000}]}  # rows of 108 and 2007 bytes
    assert shape_refusal(body, row_bytes=2007) is None
    assert shape_refusal(body, row_bytes=2006).startswith("row 1: 2007 bytes of JSON, at most "
                                                          "2006 per row")
    assert shape_refusal({"rows": [{}] * 5}, rows=5) is None
    assert "too many rows: at most 4" in shape_refusal({"rows": [{}] * 5}, rows=4)
    deep: list = []
    for _ in range(70):
        deep = [deep]
    assert "nested more than 64 deep" in shape_refusal({"rows": deep}, row_bytes=10)
    assert shape_refusal({"rows": []}, keys=1, row_bytes=1, rows=1) is None
    check_shape(b'{"rows": [{"a": "unterminated}]}', 1, 1, 1)  # the parser reports bad JSON


def test_prediction_log_prunes_day_folders_older_than_its_retention(tmp_path):
    for day in ("2026-02-14", "2026-02-15", "2026-03-01"):
        (tmp_path / f"date={day}").mkdir()
        (tmp_path / f"date={day}" / "part-1.jsonl").write_text("{}\n")
    (tmp_path / "notes.txt").write_text("not a day")
    assert prune_days(tmp_path, 14, date(2026, 3, 1)) == ["2026-02-14"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["date=2026-02-15", "date=2026-03-01",
                                                          "notes.txt"]
    assert prune_days(tmp_path, 0, date(2030, 1, 1)) == []  # 0 keeps every day


def test_limits_come_from_the_environment_and_a_bad_one_is_named():
    settings = ServeSettings.from_env({"AMHS_MAX_ROW_KEYS": "64", "AMHS_BODY_TIMEOUT_S": "2.5",
                                       "AMHS_LOG_TOKEN": "secret-log", "AMHS_MAX_IN_FLIGHT": "3"})
    assert (settings.max_row_keys, settings.body_timeout_s, settings.log_token,
            settings.max_in_flight, settings.prediction_log_days) == (64, 2.5, "secret-log", 3, 14)
    with pytest.raises(ValueError, match="AMHS_HEADER_TIMEOUT_S"):
        ServeSettings.from_env({"AMHS_HEADER_TIMEOUT_S": "soon"})
    with pytest.raises(ValueError, match="AMHS_MAX_IN_FLIGHT"):
        ServeSettings.from_env({"AMHS_MAX_IN_FLIGHT": "0"})


def parsed(body: bytes, pieces: bool) -> object:
    """parse_request's result or (status, detail, errors, count), in one go or in pieces."""
    spans = check_shape(body, 128, 16384, 1000)
    assert spans is not None
    try:
        return parse_request(body, request_adapter(1000), 1000, spans if pieces else None)
    except RequestError as exc:
        return exc.status, exc.detail, exc.errors, exc.count


def test_a_large_body_checked_in_pieces_gets_the_answer_of_one_piece(monkeypatch):
    monkeypatch.setattr(validation, "PIECE_BYTES", 2000)  # pieces of about 3 rows
    records = records_of(pd.concat([valid_rows(130, "L1"), valid_rows(130, "L2", seed=3)]))
    bodies = [{"rows": records}, {"rows": records, "explain": True}, {"rows": records, "x": 1}]
    for i, change in [(7, {"vehicles_total": "200"}), (100, {"line_id": "a b"}),
                      (200, {"wip_lots": -1}), (259, {"timestamp": "soon"})]:
        bodies.append({"rows": [dict(r, **change) if k == i else r
                                for k, r in enumerate(records)]})
    bodies.append({"rows": records[:50] + [[1, 2]] + records[50:]})
    bodies.append({"rows": records, "explain": "yes"})
    for body in bodies:
        one, pieces = (parsed(orjson.dumps(body), p) for p in (False, True))
        assert one == pieces, (one if isinstance(one, tuple) else "ok", pieces)
    assert parsed(orjson.dumps(bodies[3]), True)[1].startswith("row 7, line 'L1', field "
                                                               "'vehicles_total'")


def test_strict_lines_and_log_switches_read_yes_no_words_and_name_a_bad_one(tmp_path):
    def read(**env: str) -> ServeSettings:
        return ServeSettings.from_env({"AMHS_DATA_DIR": str(tmp_path), **env})

    assert read().strict_lines is False and read().log_predictions is True
    assert read(AMHS_STRICT_LINES="yes").strict_lines is True
    assert read(AMHS_STRICT_LINES=" On ").strict_lines is True
    assert read(AMHS_LOG_PREDICTIONS="off").log_predictions is False
    with pytest.raises(ValueError, match="AMHS_STRICT_LINES='maybe'"):
        read(AMHS_STRICT_LINES="maybe")
