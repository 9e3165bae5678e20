import json

import evaluate
import numpy as np
import pytest

from emotions_hf.labels import EMOTIONS
from emotions_hf.metrics import (
    EMOTION_METRICS_PATH,
    compute_emotion_metrics,
    format_paper_table,
    scalar_metrics,
    write_evaluation,
)

# refs/preds worked out by hand: confusion [[2,1,0],[0,1,1],[0,0,1]]
REFERENCES = [0, 0, 0, 1, 1, 2]
PREDICTIONS = [0, 0, 1, 1, 2, 2]


def test_values_match_hand_computation():
    metrics = compute_emotion_metrics(PREDICTIONS, REFERENCES, ["a", "b", "c"])
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["per_class_accuracy"] == pytest.approx({"a": 2 / 3, "b": 1 / 2, "c": 1.0})
    assert metrics["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # F1 per class: a 0.8 (p=1, r=2/3), b 0.5, c 2/3 (p=1/2, r=1); weighted by support 3, 2, 1.
    assert metrics["wa_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert metrics["support"] == {"a": 3, "b": 2, "c": 1}
    assert metrics["num_samples"] == 6


def _reference_wa_f1(predictions, references, num_labels):
    total = 0.0
    for label in range(num_labels):
        tp = sum(p == label and r == label for p, r in zip(predictions, references))
        fp = sum(p == label and r != label for p, r in zip(predictions, references))
        fn = sum(p != label and r == label for p, r in zip(predictions, references))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        total += f1 * sum(r == label for r in references)
    return total / len(references)


def test_random_predictions_against_a_plain_loop():
    rng = np.random.default_rng(0)
    references = rng.integers(0, 6, 300).tolist()
    predictions = [r if rng.random() < 0.6 else int(rng.integers(0, 6)) for r in references]
    metrics = compute_emotion_metrics(predictions, references, list(EMOTIONS.labels))
    assert metrics["wa_f1"] == pytest.approx(_reference_wa_f1(predictions, references, 6))
    assert metrics["accuracy"] == pytest.approx(np.mean(np.equal(predictions, references)))
    assert np.sum(metrics["confusion_matrix"]) == 300


def test_absent_class_is_reported_as_none_and_left_out_of_uar():
    metrics = compute_emotion_metrics([0, 1, 1], [0, 1, 0], ["a", "b", "c"])
    assert metrics["per_class_accuracy"]["c"] is None
    assert metrics["uar"] == pytest.approx((0.5 + 1.0) / 2)
    assert "accuracy_c" not in scalar_metrics(metrics)
    assert scalar_metrics(metrics)["accuracy_a"] == pytest.approx(0.5)


def test_ids_outside_the_label_set_are_rejected():
    with pytest.raises(ValueError, match="outside 0..2"):
        compute_emotion_metrics([0, 3], [0, 1], ["a", "b", "c"])


def test_module_loads_with_evaluate_and_streams_batches():
    metric = evaluate.load(EMOTION_METRICS_PATH)
    metric.add_batch(predictions=PREDICTIONS[:3], references=REFERENCES[:3])
    metric.add_batch(predictions=PREDICTIONS[3:], references=REFERENCES[3:])
    streamed = metric.compute(label_names=["a", "b", "c"])
    assert streamed == compute_emotion_metrics(PREDICTIONS, REFERENCES, ["a", "b", "c"])


def test_evaluation_files_and_paper_row(tmp_path):
    names = list(EMOTIONS.labels)
    metrics = compute_emotion_metrics([0, 1, 2, 3, 4, 5, 0, 2], [0, 1, 2, 3, 4, 5, 1, 2], names)
    paths = write_evaluation(metrics, tmp_path, "test", title="synthetic")
    assert json.loads(paths["json"].read_text()) == metrics
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # WA-F1 by hand: F1 of EX 2/3 (support 1), FR 2/3 (2), NU 1 (2), the rest 1 (3): 7/8.
    paper = {"per_class_accuracy": {name: None for name in names}, "accuracy": 0.6779, "wa_f1": 0.6732}
    header, row, other = format_paper_table({"AV-CANet": metrics, "paper": paper}).splitlines()
    assert header.split() == ["Method", "EX", "FR", "NU", "RE", "SD", "TN", "ACC", "WA-F1"]
    assert row.split() == [
        "AV-CANet",
        "100.00",
        "50.00",
        "100.00",
        "100.00",
        "100.00",
        "100.00",
        "87.50",
        "87.50",
    ]
    assert other.split() == ["paper", "-", "-", "-", "-", "-", "-", "67.79", "67.32"]
    assert len({len(header), len(row), len(other)}) == 1
