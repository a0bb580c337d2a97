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


def spotting_scores(spotted: Sequence[Interval], gold: Sequence[Interval],
                    pairs: Sequence[tuple[Interval, Interval]] | None = None) -> dict[str, Any]:
    """Per kind and ``overall``: tp, spotted, gold, precision, recall, F1; ``apex_error``: mean |apex - apex|.
    ``pairs`` (default: ``matches(spotted, gold)``) are given when many videos are counted together, each matched
    within itself."""
    pairs = matches(spotted, gold) if pairs is None else pairs
    out: dict[str, Any] = {kind: _prf(sum(s.kind == kind for s, _ in pairs), sum(s.kind == kind for s in spotted),
                                      sum(g.kind == kind for g in gold)) for kind in KINDS}
    out["overall"] = _prf(len(pairs), len(spotted), len(gold))
    out["apex_error"] = round(sum(abs(s.apex - g.apex) for s, g in pairs) / len(pairs), 3) if pairs else None
    return out


def analysis_scores(preds: Sequence[dict[str, Any]], protocol: str) -> dict[str, Any] | None:
    """The model's analysis of the matched intervals (``eval/predictions.jsonl``-style lines): ACC, UF1 and UAR
    over those annotated with an emotion of ``protocol``, AU F1 over those annotated with AUs, and ``f1``, what
    STRS multiplies by. As MEGC's STRS scorer has it, ``f1`` is the harmonic mean of the mean precision and the
    mean recall over the annotated emotions (each one against the rest); with no emotion annotated (macro-
    expressions, or SAMM Long Videos without its micro-movement sheet), the AU F1. None: no match to analyse."""
    from mellm_core.plugins import create
    from mellm_core.results.evaluation import scoring_records
    from mellm_core.text.labels import get_protocol
    from mellm_core.text.scoring import graded, score

    if not preds:
        return None
    chosen = get_protocol(protocol)
    records = scoring_records(list(preds))
    pairs: list[tuple[str, str | None]] = [
        (gold, predicted) for r in records if r["label"]
        for gold, predicted in [graded(chosen, r["label"], r["emotion"], r["dataset"])] if gold is not None]
    emotions = score([r for r in records if r["label"]], protocol) if pairs else {}
    annotated = [r for r in records if r["aus"]]
    au_f1 = create("metric", "au_f1")([r["aus"] for r in annotated], [r["pred_aus"] for r in annotated],
                                      sorted({au for r in annotated for au in r["aus"]})) if annotated else None
    out = {"n": len(preds), "n_emotion": len(pairs), "n_aus": len(annotated),
           "unparsed": sum(p.get("emotion") is None for p in preds),
           **{k: emotions.get(k) for k in ("acc", "uf1", "uar")}, "au_f1": au_f1}
    if pairs:
        labels = sorted({gold for gold, _ in pairs})
        tp = {e: sum(g == p == e for g, p in pairs) for e in labels}
        precision = sum(tp[e] / n if (n := sum(p == e for _, p in pairs)) else 0.0 for e in labels) / len(labels)
        recall = sum(tp[e] / sum(g == e for g, _ in pairs) for e in labels) / len(labels)
        out["f1"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    else:
        out["f1"] = au_f1 or 0.0
    return out
