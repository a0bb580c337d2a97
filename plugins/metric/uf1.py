"""Unweighted F1, the paper's eq. 3: the mean of the per-class F1 scores."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from mellm_core import PluginSpec, hookimpl
from mellm_core.text.scoring import class_counts


class UnweightedF1:
    """``uf1(y_true, y_pred, labels) -> float``: mean over ``labels`` of 2PR / (P + R) = 2TP / (2TP + FP + FN),
    0 for a class with no TP, FP or FN, as scikit-learn's ``f1_score(average="macro", labels=labels,
    zero_division=0)``. A prediction outside ``labels`` (None: unparsed) is a miss; no labels score 0.0.
    """

    target = "emotion"

    def __call__(self, y_true: Sequence[Hashable], y_pred: Sequence[Hashable | None],
                 labels: Sequence[Hashable]) -> float:
        scores = [2 * c.tp / (2 * c.tp + c.fp + c.fn) if c.tp + c.fp + c.fn else 0.0
                  for c in class_counts(y_true, y_pred, labels)]
        return sum(scores) / len(scores) if scores else 0.0


@hookimpl
def mellm_metric():
    yield PluginSpec("uf1", UnweightedF1, None, "unweighted F1 (eq. 3): mean of the per-class F1 scores")
