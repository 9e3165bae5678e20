"""Emotion classification metrics of the eMotions paper, as a local `evaluate` module.

Load with `evaluate.load(emotions_hf.metrics.EMOTION_METRICS_PATH)`: evaluate's Hub metrics cannot be
fetched offline, and this one needs no network. The computation lives in `emotions_hf.metrics` (which
training uses directly, without `evaluate`), so both give the same numbers.
"""

from __future__ import annotations

import datasets
import evaluate

from emotions_hf.metrics import compute_emotion_metrics

_DESCRIPTION = """\
Video emotion analysis metrics as reported for eMotions (Table 4 of the paper): accuracy (weighted
average recall, WAR), support-weighted average F1 (WA-F1), unweighted average recall (UAR, the mean
of the per-class accuracies), the accuracy (recall) of each class and the confusion matrix.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
    label_names (`list[str]`, optional): class names in id order; they key `per_class_accuracy` and
        `support` and fix the number of classes (so classes absent from a split still get a row).
    num_labels (`int`, optional): number of classes when no names are given; by default one more
        than the largest id seen.
Returns:
    accuracy (`float`): fraction of correct predictions (WAR).
    wa_f1 (`float`): F1 of each class weighted by its number of true samples.
    uar (`float`): mean per-class accuracy over the classes present in `references`.
    per_class_accuracy (`dict[str, float | None]`): recall of each class; None when the class has
        no true sample.
    support (`dict[str, int]`): number of true samples of each class.
    confusion_matrix (`list[list[int]]`): row = true class, column = predicted class.
    num_samples (`int`)
Examples:
    >>> metric = evaluate.load("src/emotions_hf/metrics/emotion_metrics")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], label_names=["a", "b"])["accuracy"]
    0.6666666666666666
"""

_CITATION = """\
@inproceedings{wu2025emotions,
  title     = {Towards Emotion Analysis in Short-form Videos: A Large-Scale Dataset and Baseline},
  author    = {Wu, Xuecheng and Sun, Heli and Xue, Junxiao and Nie, Jiayu and Kong, Xiangyan and
               Zhai, Ruofan and He, Liang},
  booktitle = {Proceedings of the ACM Web Conference 2025 (WWW '25)},
  year      = {2025}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EmotionMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, label_names=None, num_labels=None):
        return compute_emotion_metrics(
            predictions, references, label_names=label_names, num_labels=num_labels
        )
