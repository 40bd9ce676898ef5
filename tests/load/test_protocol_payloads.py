"""The Locust protocol users' bodies decode to their images, and their checks read answers
as the service writes them (built here by the service's own pure answer functions)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from load import protocol_payloads as standard
from load.checks import ProtocolError
from load.payloads import TestImages
from mnist_core import open_inference, tf_serving

RNG = np.random.default_rng(3)
IMAGES = TestImages(RNG.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.arange(5))


def scores() -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.full((5, 10), 0.02, dtype=np.float32)
    labels = np.array([0, 1, 2, 3, 9])
    probabilities[np.arange(5), labels] = 0.82
    return probabilities, labels


@pytest.mark.parametrize("binary", [True, False])
def test_v2_bodies_decode_to_their_images_and_answers_pass_the_check(binary: bool) -> None:
    payload = standard.v2_payload(IMAGES, binary=binary)
    length = payload.headers.get(standard.HEADER_LENGTH)
    header, rest = open_inference.split_body(payload.body, length)
    request = open_inference.parse_infer(header, rest, max_images=10)
    np.testing.assert_array_equal(request.images, IMAGES.images)
    answer, chunks = open_inference.infer_answer(request, 1, *scores())
    head = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    headers = {standard.HEADER_LENGTH: str(len(head))} if chunks else {}
    verdict = standard.check_v2(200, head + b"".join(chunks), headers, payload.labels)
    assert (verdict.correct, verdict.total) == (4, 5)
    with pytest.raises(ProtocolError):
        standard.check_v2(200, head, headers, payload.labels[:2])


def test_tfserving_bodies_and_answers() -> None:
    payload = standard.tfserving_payload(IMAGES)
    request = tf_serving.parse_predict(payload.body, max_images=10)
    np.testing.assert_array_equal(request.images, IMAGES.images)
    body = orjson.dumps(
        tf_serving.predict_answer(request, *scores()), option=orjson.OPT_SERIALIZE_NUMPY
    )
    assert standard.check_tfserving(200, body, payload.labels).correct == 4
    with pytest.raises(ProtocolError):
        standard.check_tfserving(400, b'{"error": "x"}', payload.labels)
