"""Unweighted average recall, the paper's eq. 2: the mean of the per-class recalls."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from mellm_core import PluginSpec, hookimpl
from mellm_core.text.scoring import class_counts


class UnweightedAverageRecall:
    """``uar(y_true, y_pred, labels) -> float``: mean over ``labels`` of TP / (TP + FN), a class without gold
    samples counting 0, as scikit-learn's ``recall_score(average="macro", labels=labels, zero_division=0)``.
    A prediction outside ``labels`` (None: unparsed) is a miss; no labels score 0.0.
    """

    target = "emotion"

    def __call__(self, y_true: Sequence[Hashable], y_pred: Sequence[Hashable | None],
                 labels: Sequence[Hashable]) -> float:
        recalls = [c.tp / (c.tp + c.fn) if c.tp + c.fn else 0.0 for c in class_counts(y_true, y_pred, labels)]
        return sum(recalls) / len(recalls) if recalls else 0.0


@hookimpl
def mellm_metric():
    yield PluginSpec("uar", UnweightedAverageRecall, None, "unweighted average recall (eq. 2) over the classes")
