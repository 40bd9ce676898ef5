"""Test-set scoring and the printed table, on hand-made predictions whose answers are known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.evaluate import evaluate, format_table


def one_hot_ish(predicted: list[int], confidence: float = 0.91) -> np.ndarray:
    rest = (1 - confidence) / 9
    probabilities = np.full((len(predicted), 10), rest)
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_scores_a_known_set_of_predictions() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    predicted = [0, 1, 1, 1, 2, 2, 3, 0]
    result = evaluate(one_hot_ish(predicted), labels)
    assert result.accuracy == 5 / 8
    assert result.per_class_accuracy[:4] == [0.5, round(2 / 3, 6), 1.0, 0.5]
    assert result.per_class_accuracy[4:] == [0.0] * 6  # no support: reported as 0, not NaN
    assert result.confusion[0].tolist()[:4] == [1, 1, 0, 0]
    assert result.confusion[1].tolist()[:4] == [0, 2, 1, 0]
    assert result.confusion[3].tolist()[:4] == [1, 0, 0, 1]
    assert int(result.confusion.sum()) == 8
    expected_loss = -(5 * math.log(0.91) + 3 * math.log(0.01)) / 8
    assert result.loss == pytest.approx(expected_loss)
    np.testing.assert_array_equal(result.predictions, predicted)


def test_loss_stays_finite_for_a_zero_probability() -> None:
    probabilities = np.zeros((1, 10))
    probabilities[0, 3] = 1.0
    result = evaluate(probabilities, np.array([4]))
    assert math.isfinite(result.loss)
    assert result.loss == pytest.approx(-math.log(1e-7))


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="do not match"):
        evaluate(np.zeros((3, 10)), np.zeros(4, np.int64))


def test_table_has_totals_and_one_row_per_digit() -> None:
    labels = np.repeat(np.arange(10), 3)
    predicted = labels.copy()
    predicted[0] = 6
    table = format_table(evaluate(one_hot_ish(list(predicted)), labels))
    lines = table.splitlines()
    assert lines[0].startswith("test loss ")
    assert "test accuracy 0.9667" in lines[0]
    assert "(29/30 correct)" in lines[0]
    rows = lines[3:]
    assert len(rows) == 10
    first = rows[0].replace("|", " ").split()
    assert first[:3] == ["0", "3", "0.6667"]
    assert [int(c) for c in first[3:]] == [2, 0, 0, 0, 0, 0, 1, 0, 0, 0]


def test_report_writes_three_pictures(tmp_path: Path) -> None:
    from training.report import REPORT_FILES, write_report

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=40)
    result = evaluate(one_hot_ish(list(rng.integers(0, 10, size=40))), labels)
    history = {"loss": [2.0, 1.5, 1.2], "accuracy": [0.3, 0.5, 0.6]}
    assert write_report(tmp_path, history, images, labels, result) == list(REPORT_FILES)
    for name in REPORT_FILES:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"
