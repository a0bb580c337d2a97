"""MEGC ME-VQA scoring, as the challenge's published evaluators score: answers lowercased and stripped; the coarse
and the fine expression-class questions scored by UF1 (macro F1) and UAR (macro recall) over the labels present in
gold or prediction; BLEU-4 (NLTK's ``sentence_bleu``: uniform weights, smoothing method 1, whitespace tokens) and
ROUGE-1 F1 (the ``rouge_score`` package's tokens, no stemming) of every answer, averaged over the answers. A gold
line with no prediction is left out of every score and counted as ``missing``, as the published scorer of
Humphrey-0125/MEGC2025 (ablation/Metrics) does; ``missing="empty"`` scores it as an empty answer instead."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from mellm_core.errors import InputError
from mellm_core.text.vqa import normalised_question, question_type

EPSILON = 0.1  # NLTK's smoothing method 1: the count an n-gram order without a match gets
MISSING = ("skip", "empty")  # a gold line without a prediction: left out of the scores, or scored as answered ""


def normalised(text: Any) -> str:
    """An answer or a question as the scorers compare them: lowercased, outer spaces stripped."""
    return str(text or "").strip().lower()


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    """BLEU-4 of one tokenised answer against one reference: uniform weights, an order with no matched n-gram
    counted as ``EPSILON`` matches, 0 when no word matches."""
    logs = []
    for n in range(1, 5):
        counts, ref = _ngrams(hypothesis, n), _ngrams(reference, n)
        matched = sum(min(c, ref[g]) for g, c in counts.items())
        if n == 1 and matched == 0:
            return 0.0
        total = max(1, sum(counts.values()))
        logs.append(0.25 * math.log((matched or EPSILON) / total))
    c, r = len(hypothesis), len(reference)
    penalty = 1.0 if c > r else math.exp(1 - r / c)
    return penalty * math.exp(math.fsum(logs))


def rouge1_tokens(text: str) -> list[str]:
    """ROUGE's tokens: lowercase letters and digits, everything else a separator."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def rouge1(reference: str, prediction: str) -> float:
    """ROUGE-1 F1: clipped unigram overlap over the prediction's and the reference's lengths."""
    ref, pred = Counter(rouge1_tokens(reference)), Counter(rouge1_tokens(prediction))
    overlap = sum((ref & pred).values())
    precision, recall = overlap / max(1, sum(pred.values())), overlap / max(1, sum(ref.values()))
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def macro(gold: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    """UF1 and UAR over the labels present in gold or prediction."""
    labels = sorted(set(gold) | set(pred))
    f1s, recalls = [], []
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        said, truly = sum(p == label for p in pred), sum(g == label for g in gold)
        precision, recall = (tp / said if said else 0.0), (tp / truly if truly else 0.0)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        recalls.append(recall)
    n = len(labels)
    return {"uf1": round(sum(f1s) / n, 4) if n else 0.0, "uar": round(sum(recalls) / n, 4) if n else 0.0,
            "n": len(gold)}


def line_key(line: dict[str, Any], where: str) -> tuple[str, str]:
    """A line's identity: its ``id`` (training files) or ``video_id`` (test files), and its question as matching
    compares questions (case, spacing and a final "?" do not matter)."""
    ident = line.get("id", line.get("video_id"))
    if ident is None or "question" not in line:
        raise InputError(f"{where}: a ME-VQA line needs \"id\" or \"video_id\", and \"question\" "
                         f"(keys found: {', '.join(line) or 'none'})")
    return str(ident), normalised_question(str(line["question"]))


def answered(preds: Sequence[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """The predicted answers by line key."""
    return {line_key(line, f"prediction line {index}"): normalised(line.get("answer"))
            for index, line in enumerate(preds, 1)}


def gold_pairs(gold: Sequence[dict[str, Any]], answers: dict[tuple[str, str], str]
               ) -> list[tuple[str, str, str | None]]:
    """(question, gold answer, predicted answer or None when the prediction file lacks the line) per gold line."""
    pairs = []
    for index, line in enumerate(gold, 1):
        if "answer" not in line:
            raise InputError(f"gold line {index}: no \"answer\" (a test file to answer, not a gold file?)")
        key = line_key(line, f"gold line {index}")
        pairs.append((key[1], normalised(line["answer"]), answers.get(key)))
    if not pairs:
        raise InputError("the gold file holds no lines")
    return pairs


def score_vqa(preds: Sequence[dict[str, Any]], gold: Sequence[dict[str, Any]], missing: str = "skip"
              ) -> dict[str, Any]:
    """Score predicted lines against gold lines, matched by id and question. A gold line without a prediction
    is counted in ``missing`` and, by default (``skip``, as Humphrey-0125/MEGC2025's published scorer), left out
    of every score; ``empty`` scores it as an empty answer. ``n`` counts the answers scored."""
    if missing not in MISSING:
        raise InputError(f"missing must be one of: {', '.join(MISSING)} (got '{missing}')")
    pairs = gold_pairs(gold, answered(preds))
    absent = sum(p is None for _, _, p in pairs)
    scored = [(q, g, p or "") for q, g, p in pairs if p is not None or missing == "empty"]
    if not scored:
        raise InputError(f"none of the {len(pairs)} gold lines has a prediction (matched by id or video_id and "
                         f"question): nothing to score")
    out: dict[str, Any] = {}
    for kind in ("coarse", "fine"):
        chosen = [(g, p) for q, g, p in scored if question_type(q)[0] == kind]
        out[kind] = macro([g for g, _ in chosen], [p for _, p in chosen])
    out["bleu"] = round(sum(sentence_bleu(g.split(), p.split()) for _, g, p in scored) / len(scored), 4)
    out["rouge_1"] = round(sum(rouge1(g, p) for _, g, p in scored) / len(scored), 4)
    out["n"], out["missing"] = len(scored), absent
    return out
