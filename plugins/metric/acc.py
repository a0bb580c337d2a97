"""Accuracy, the paper's eq. 1: the share of samples whose predicted class is the gold class."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from mellm_core import PluginSpec, hookimpl
from mellm_core.text.scoring import check_pairs


class Accuracy:
    """``acc(y_true, y_pred, labels) -> float``: correct predictions / all samples, as scikit-learn's
    ``accuracy_score``. ``labels`` is not used; a None prediction (unparsed) is wrong; no samples score 0.0.
    """

    target = "emotion"

    def __call__(self, y_true: Sequence[Hashable], y_pred: Sequence[Hashable | None],
                 labels: Sequence[Hashable] | None = None) -> float:
        check_pairs(y_true, y_pred)
        correct = sum(1 for t, p in zip(y_true, y_pred, strict=True) if p is not None and t == p)
        return correct / len(y_true) if y_true else 0.0


@hookimpl
def mellm_metric():
    yield PluginSpec("acc", Accuracy, None, "accuracy (eq. 1): share of samples classified correctly")
