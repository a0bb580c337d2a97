"""MEGC's spotting metrics: a spotted interval is a true positive when its IoU with a not yet matched annotated
interval of the same kind is at least 0.5; precision, recall and F1 per kind and over both, and the apex error
(frames) of the matches.

Intervals are inclusive frame ranges, so [10, 19] and [15, 24] overlap by 5 frames of 15.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mellm_core.records import Interval

KINDS = ("me", "mae")
IOU = 0.5


def iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two inclusive frame ranges."""
    overlap = min(a.offset, b.offset) - max(a.onset, b.onset) + 1
    if overlap <= 0:
        return 0.0
    return overlap / ((a.offset - a.onset + 1) + (b.offset - b.onset + 1) - overlap)


def matches(spotted: Sequence[Interval], gold: Sequence[Interval]) -> list[tuple[Interval, Interval]]:
    """(spotted, gold) pairs: each spotted interval, strongest first, takes the unmatched gold interval of its
    kind it overlaps most, if that IoU is at least 0.5."""
    free = list(gold)
    pairs = []
    for s in sorted(spotted, key=lambda i: -i.score):
        best = max((g for g in free if g.kind == s.kind), key=lambda g: iou(s, g), default=None)
        if best is not None and iou(s, best) >= IOU:
            pairs.append((s, best))
            free.remove(best)
    return pairs


def _prf(tp: int, spotted: int, gold: int) -> dict[str, Any]:
    precision = tp / spotted if spotted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "spotted": spotted, "gold": gold, "precision": round(precision, 4),
            "recall": round(recall, 4), "f1": round(f1, 4)}


def spotting_scores(spotted: Sequence[Interval], gold: Sequence[Interval]) -> dict[str, Any]:
    """Per kind and ``overall``: tp, spotted, gold, precision, recall, F1; ``apex_error``: mean |apex - apex|."""
    pairs = matches(spotted, gold)
    out: dict[str, Any] = {kind: _prf(sum(s.kind == kind for s, _ in pairs), sum(s.kind == kind for s in spotted),
                                      sum(g.kind == kind for g in gold)) for kind in KINDS}
    out["overall"] = _prf(len(pairs), len(spotted), len(gold))
    out["apex_error"] = round(sum(abs(s.apex - g.apex) for s, g in pairs) / len(pairs), 3) if pairs else None
    return out
