"""Every contract breach in a response is caught with a reason; wrong labels only counted."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from load.checks import ProtocolError, Verdict, check_predictions


def _prediction(label: int, confidence: float = 0.91) -> dict[str, Any]:
    rest = (1.0 - confidence) / 9
    probabilities = [confidence if i == label else rest for i in range(10)]
    return {"label": label, "confidence": confidence, "probabilities": probabilities}


def _body(*labels: int, version: int = 3, **fields: Any) -> bytes:
    data = {"model_version": version, "predictions": [_prediction(lb) for lb in labels]}
    return orjson.dumps({**data, **fields})


def test_good_response_counts_right_and_wrong_labels() -> None:
    verdict = check_predictions(200, _body(7, 2, 1), [7, 2, 4], model_version_header="3")
    assert verdict == Verdict(correct=2, total=3)


def test_filenames_must_come_back_in_order() -> None:
    data = orjson.loads(_body(1, 2))
    data["predictions"][0]["filename"] = "a.png"
    data["predictions"][1]["filename"] = "b.png"
    body = orjson.dumps(data)
    ok = check_predictions(
        200, body, [1, 2], model_version_header="3", filenames=["a.png", "b.png"]
    )
    assert ok.correct == 2
    with pytest.raises(ProtocolError, match="filename"):
        check_predictions(200, body, [1, 2], model_version_header="3", filenames=["b.png", "a.png"])


def _broken(mutate: Any) -> bytes:
    data = orjson.loads(_body(5, 6))
    mutate(data)
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (_body(5, 6, version="3"), "model_version"),
        (_body(5, 6, predictions=None), "predictions missing"),
        (_body(5), "1 predictions for 2 images"),
        (_broken(lambda d: d["predictions"][1].update(label=10)), "not a digit"),
        (_broken(lambda d: d["predictions"][0]["probabilities"].pop()), "not 10 numbers"),
        (_broken(lambda d: d["predictions"][0]["probabilities"].__setitem__(0, -0.1)), "outside"),
        (_broken(lambda d: d["predictions"][1]["probabilities"].__setitem__(0, 0.2)), "sum to"),
        (_broken(lambda d: d["predictions"][0].update(label=4)), "most probable"),
        (_broken(lambda d: d["predictions"][0].update(confidence=0.5)), "confidence"),
        (_broken(lambda d: d["predictions"].__setitem__(1, "six")), "not an object"),
    ],
)
def test_malformed_responses_fail_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        check_predictions(200, body, [5, 6], model_version_header="3")


def test_version_header_is_required_and_must_match_the_body() -> None:
    with pytest.raises(ProtocolError, match="header missing"):
        check_predictions(200, _body(1), [1], model_version_header=None)
    with pytest.raises(ProtocolError, match="X-Model-Version"):
        check_predictions(200, _body(1), [1], model_version_header="2")


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (404, b'{"error": "not found", "reason": "no_route"}', "HTTP 404: no_route"),
        (400, b'[{"error": "bad input"}]', "HTTP 400: bad input"),
        (503, b"", "HTTP 503$"),
        (500, b"Internal Server Error", "HTTP 500: Internal Server Error"),
    ],
)
def test_error_statuses_fail_with_status_and_detail(status: int, body: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        check_predictions(status, body, [1], model_version_header="3")
