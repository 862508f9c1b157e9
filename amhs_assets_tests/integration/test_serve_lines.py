"""Lines the served version was not trained on, in a real `amhs serve` process: a warning per
such line in a 200, or a 422 naming them with AMHS_STRICT_LINES."""

from __future__ import annotations

import pytest

from amhs_assets.registry.predictor import LINE_IDS, AmhsPredictor
from amhs_assets.serve.schemas import PredictResponse
from amhs_assets_tests.support import (
    new_store,
    register_version,
    rows,
    serving,
    simulated_rows,
    tiny_champion,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store whose champion records that it was trained on line A only (the requests hold A
    and B)."""
    tmp = tmp_path_factory.mktemp("lines")
    uri = new_store(tmp)
    tiny = tiny_champion().predictor
    predictor = AmhsPredictor(tiny.model, {**tiny.info, LINE_IDS: ["A"]})
    register_version(predictor, simulated_rows(), uri, tmp)
    return uri, tmp


def only(line_id: str) -> list[dict]:
    return [r for r in rows() if r["line_id"] == line_id]


def test_an_untrained_line_is_answered_with_a_warning_naming_it(store):
    uri, tmp = store
    with serving(tmp, uri) as server, server.client() as client:
        answer = client.post("/v1/predict", json={"rows": list(rows())})
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        PredictResponse.model_validate(doc)
        assert [p["line_id"] for p in doc["predictions"]] == ["A", "B"]
        assert [(w["code"], w["line_id"]) for w in doc["warnings"]] == [("untrained_line", "B")]
        assert "not trained on line 'B'" in doc["warnings"][0]["message"]
        assert "knows A" in doc["warnings"][0]["message"]
        trained = client.post("/v1/predict", json={"rows": only("A")})
        assert trained.status_code == 200 and trained.json()["warnings"] == []
        assert client.get("/v1/model").json()["line_ids"] == ["A"]
        assert "amhs_untrained_lines_total 1.0" in client.get("/metrics").text


def test_strict_lines_refuse_an_untrained_line_with_a_422_naming_it(store):
    uri, tmp = store
    with serving(tmp, uri, AMHS_STRICT_LINES="1") as server, \
            server.client() as client:
        answer = client.post("/v1/predict", json={"rows": list(rows())})
        assert answer.status_code == 422, answer.text
        doc = answer.json()
        assert "line 'B'" in doc["detail"] and "AMHS_STRICT_LINES" in doc["detail"]
        assert [(e["line_id"], e["field"]) for e in doc["errors"]] == [("B", "line_id")]
        trained = client.post("/v1/predict", json={"rows": only("A")})
        assert trained.status_code == 200 and trained.json()["warnings"] == []
