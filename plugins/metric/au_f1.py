"""Action-unit F1: each AU's F1 over samples (multi-label) and their mean over the AUs present in the gold labels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from mellm_core import PluginSpec, hookimpl
from mellm_core.text.scoring import check_pairs


class AUF1:
    """``au_f1(gold_aus, pred_aus, labels=None) -> float``: one list of AU numbers per sample on each side; the
    mean over ``labels`` (default: every AU in the gold lists, sorted) of ``per_label``; no labels score 0.0.
    """

    target = "aus"

    def per_label(self, gold_aus: Sequence[Sequence[int]], pred_aus: Sequence[Sequence[int]],
                  labels: Sequence[int] | None = None) -> dict[int, float]:
        """AU -> 2TP / (2TP + FP + FN) over samples (0 when all are 0), as scikit-learn's ``f1_score(average=None,
        zero_division=0)`` on multi-label-binarized AUs.
        """
        check_pairs(gold_aus, pred_aus)
        tp: Counter[int] = Counter()
        fp: Counter[int] = Counter()
        fn: Counter[int] = Counter()
        for gold_list, pred_list in zip(gold_aus, pred_aus, strict=True):
            gold, pred = set(gold_list), set(pred_list)
            tp.update(gold & pred)
            fp.update(pred - gold)
            fn.update(gold - pred)
        labels = sorted(set().union(*gold_aus)) if labels is None else labels
        return {au: 2 * tp[au] / (2 * tp[au] + fp[au] + fn[au]) if tp[au] + fp[au] + fn[au] else 0.0 for au in labels}

    def __call__(self, gold_aus: Sequence[Sequence[int]], pred_aus: Sequence[Sequence[int]],
                 labels: Sequence[int] | None = None) -> float:
        scores = self.per_label(gold_aus, pred_aus, labels)
        return sum(scores.values()) / len(scores) if scores else 0.0


@hookimpl
def mellm_metric():
    yield PluginSpec("au_f1", AUF1, None, "per-AU F1 and their mean over the AUs in the gold labels")
