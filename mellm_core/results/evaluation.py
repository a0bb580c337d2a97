"""Evaluation without Ray: which model a recipe evaluates, the settings digest, and metrics of predictions.

A prediction line (``eval/predictions.jsonl``) is a ``records.Prediction``: sample_id, dataset, subject, task,
label, aus_gold, text, emotion, aus, error (a sample that could not be answered, e.g. an unreadable map: scored
as unparsed) and map_path.
``metrics.json`` is a ``summaries.EvalResult``: one block per task (``meu``, ``mer``) with the scores overall and
per dataset, the chance levels and the verdict.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import asdict
from typing import Any

from mellm_core.config import EvalSet, Recipe, settings_hash
from mellm_core.data.splits import listed_ids
from mellm_core.errors import InputError
from mellm_core.files.layout import RunLayout
from mellm_core.files.storage import Location
from mellm_core.model.adapters import trained_adapter
from mellm_core.summaries import SetMetrics, TaskMetrics, Verdict
from mellm_core.text.labels import get_protocol
from mellm_core.text.scoring import OTHER, predict, score_rows

ALPHA = 0.05  # significance level of the test against always-the-majority-class
COLLAPSE_SHARE = 0.7  # one answer taking this share of the test set or more is reported as a collapse


def eval_adapter(recipe: Recipe) -> str | None:
    """The adapter evaluated: ``eval.adapter``, else the trained one when present (unless ``eval.base_model``)."""
    if recipe.eval.base_model:
        return None
    if recipe.eval.adapter:
        return recipe.eval.adapter
    return trained_adapter(recipe.output_dir)


def folder_digest(folder: str | None) -> str | None:
    """Names, sizes and modification times of an adapter's files: changes whenever it is retrained."""
    if not folder:
        return None
    return settings_hash([(name, size, mtime) for name, (size, mtime) in sorted(Location(folder).files().items())])


def eval_digest(recipe: Recipe, test_bytes: bytes, adapter: str | None) -> str:
    """What the predictions depend on: test instructions, model, adapter, prompt labels and generation settings."""
    generation = {k: v for k, v in asdict(recipe.eval).items() if k in ("protocol", "max_new_tokens")}
    return settings_hash(hashlib.sha256(test_bytes).hexdigest(), asdict(recipe.backbone), adapter,
                         folder_digest(adapter), recipe.instructions.prompt,
                         recipe.instructions.prompt_params, generation)


def scoring_records(rows: list[dict], pred_aus: list[int] | None = None) -> list[dict[str, Any]]:
    """Scoring records of prediction lines; ``pred_aus`` replaces every predicted AU set (a constant baseline).
    Only the analysis task (``meu``) names AUs, so only its lines carry gold AUs to score AU metrics on."""
    return [{"id": r["sample_id"], "label": r["label"], "emotion": r.get("emotion"),
             "pred_aus": r.get("aus") or [] if pred_aus is None else pred_aus, "dataset": r.get("dataset", ""),
             **({"aus": r.get("aus_gold") or []} if r.get("task", "meu") == "meu" else {})} for r in rows]


def most_frequent_aus(au_sets: list[list[int]]) -> list[int]:
    """The AU set that occurs most often (ties: the first seen), the constant answer an AU baseline gives."""
    counts = Counter(tuple(sorted(aus)) for aus in au_sets)
    return list(counts.most_common(1)[0][0]) if counts else []


def training_aus(output_dir: str) -> list[int] | None:
    """The training set's most frequent AU set (``instructions/train.jsonl``), or None when there is none."""
    train = RunLayout(output_dir).train_rows
    if not train.is_file():
        return None
    rows = [json.loads(line) for line in train.read_text().splitlines() if line.strip()]
    return most_frequent_aus([r.get("aus") or [] for r in {r["sample_id"]: r for r in rows}.values()])


def chance(result: dict[str, Any], protocol: str, rows: list[dict] | None = None,
           baseline_aus: list[int] | None = None) -> dict[str, Any]:
    """Chance levels for the scored classes: uniform guessing (ACC = UAR = 1/K), always the majority class, and,
    for AU metrics, always answering ``baseline_aus`` (the training set's most frequent AU set) on ``rows``."""
    labels = result["labels"]
    totals = [sum(row) for row in result["confusion_matrix"]]
    majority = labels[max(range(len(labels)), key=lambda i: totals[i])]
    gold = [label for label, n in zip(labels, totals, strict=True) for _ in range(n)]
    scored = score_rows(predict([{"label": g, "emotion": majority} for g in gold], protocol), protocol)
    out = {"uniform": {"acc": 1 / len(labels), "uar": 1 / len(labels)},
           "majority": {"class": majority, **{k: scored[k] for k in ("acc", "uf1", "uar") if k in scored}}}
    if rows and baseline_aus is not None and "au_f1" in result:
        constant = score_rows(predict(scoring_records(rows, baseline_aus), protocol), protocol)
        out["majority_aus"] = {"aus": baseline_aus, "au_f1": constant["au_f1"]}
    return out


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space so that large n neither overflows nor underflows."""
    if k <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p)
            + (n - i) * math.log1p(-p) for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def verdict(overall: dict[str, Any], levels: dict[str, Any]) -> Verdict:
    """Whether a task's result beats always-the-majority-class (a one-sided binomial test of ACC at ``ALPHA``),
    and whether one answer took ``COLLAPSE_SHARE`` of the test set or more (the model collapsed to it)."""
    labels, matrix = overall["labels"], overall["confusion_matrix"]
    n = sum(map(sum, matrix))
    correct = sum(matrix[i][i] for i in range(len(labels)))
    p0 = levels["majority"]["acc"]
    answers = [sum(row[j] for row in matrix) for j in range(len(labels) + 1)]
    top = max(range(len(answers)), key=answers.__getitem__)
    p_value = binomial_tail(correct, n, p0)
    return Verdict("one-sided binomial test of ACC against always the majority class", correct, n, p0, p_value,
                   p_value < ALPHA, [*labels, OTHER][top], answers[top] / n if n else 0.0,
                   bool(n) and answers[top] / n >= COLLAPSE_SHARE)


def metrics_of(rows: list[dict], protocol: str, baseline_aus: list[int] | None = None) -> dict[str, TaskMetrics]:
    """Per task: overall metrics, per-dataset metrics, chance levels and the verdict (``score_rows`` with every
    metric plugin); ``baseline_aus`` is the AU set of the AU baseline (default: the test set's most frequent)."""
    get_protocol(protocol)
    out: dict[str, TaskMetrics] = {}
    for task in sorted({r["task"] for r in rows}):
        part = [r for r in rows if r["task"] == task]
        overall = score_rows(predict(scoring_records(part), protocol), protocol)
        per_dataset = {}
        for dataset in sorted({r.get("dataset", "") for r in part}):
            subset = [r for r in part if r.get("dataset", "") == dataset]
            try:
                per_dataset[dataset or "-"] = score_rows(predict(scoring_records(subset), protocol), protocol)
            except InputError:  # a dataset with no label inside the protocol has nothing to score
                continue
        aus = None  # the AU baseline: for MEU, the task whose answers name AUs
        if task == "meu":
            test_aus = [r.get("aus_gold") or [] for r in part]
            aus = baseline_aus if baseline_aus is not None else most_frequent_aus(test_aus)
        levels = chance(overall, protocol, part, aus)
        out[task] = TaskMetrics(overall, per_dataset, levels, verdict(overall, levels),
                                sum(1 for r in part if r.get("error")))
    return out


def set_rows(sets: list[EvalSet], rows: list[dict]) -> dict[str, list[dict]]:
    """The rows (test instructions or prediction lines) of each of ``eval.sets``: those of its datasets (all when
    none are named) whose ids its lists name (all when none are given); a set holding none is an error."""
    out = {}
    known = {r["sample_id"] for r in rows}
    for chosen in sets:
        try:
            ids = set(listed_ids(chosen.ids, known)) if chosen.ids else None
        except InputError as exc:
            raise InputError(f"eval.sets '{chosen.name}': {exc}") from None
        part = [r for r in rows if (not chosen.datasets or r.get("dataset", "") in chosen.datasets)
                and (ids is None or r["sample_id"] in ids)]
        if not part:
            raise InputError(f"eval.sets '{chosen.name}' holds no test sample (datasets {chosen.datasets or 'any'}, "
                             f"ids {chosen.ids or 'any'}); the test instructions' datasets: "
                             f"{', '.join(sorted({str(r.get('dataset', '')) for r in rows}))}")
        out[chosen.name] = part
    return out


def set_metrics(sets: list[EvalSet], rows: list[dict], baseline_aus: list[int] | None) -> dict[str, SetMetrics]:
    """Each of ``eval.sets`` scored apart under its own protocol."""
    out = {}
    for chosen, part in zip(sets, set_rows(sets, rows).values(), strict=True):
        try:
            tasks = metrics_of(part, chosen.protocol, baseline_aus)
        except InputError as exc:
            raise InputError(f"eval.sets '{chosen.name}': {exc}") from None
        out[chosen.name] = SetMetrics(chosen.protocol, chosen.datasets, chosen.ids,
                                      len({r["sample_id"] for r in part}), tasks)
    return out
