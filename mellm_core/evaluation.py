"""Evaluation without Ray: which model a recipe evaluates, the settings digest, and metrics of predictions.

A prediction line (``eval/predictions.jsonl``) holds sample_id, dataset, subject, task, label, aus_gold, text,
emotion, aus and error (a sample that could not be answered, e.g. an unreadable map: scored as unparsed).
``metrics.json`` has one block per task (``meu``, ``mer``): overall, per dataset, and the chance levels.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Any

from mellm_core.adapters import trained_adapter
from mellm_core.config import Recipe, settings_hash
from mellm_core.errors import InputError
from mellm_core.labels import get_protocol
from mellm_core.scoring import predict, score_rows
from mellm_core.storage import Location

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
REPORT = "report.html"


def eval_adapter(recipe: Recipe) -> str | None:
    """The adapter evaluated: ``eval.adapter``, else the trained one when present (unless ``eval.base_model``)."""
    if recipe.eval.base_model:
        return None
    if recipe.eval.adapter:
        return recipe.eval.adapter
    return trained_adapter(recipe.output_dir)


def _folder_digest(folder: str | None) -> str | None:
    """Names, sizes and modification times of an adapter's files: changes whenever it is retrained."""
    if not folder:
        return None
    return settings_hash([(name, size, mtime) for name, (size, mtime) in sorted(Location(folder).files().items())])


def eval_digest(recipe: Recipe, test_bytes: bytes, adapter: str | None) -> str:
    """What the predictions depend on: test instructions, model, adapter, prompt labels and generation settings."""
    generation = {k: v for k, v in asdict(recipe.eval).items() if k in ("protocol", "max_new_tokens")}
    return settings_hash(hashlib.sha256(test_bytes).hexdigest(), asdict(recipe.backbone), adapter,
                         _folder_digest(adapter), recipe.instructions.prompt, generation)


def _records(rows: list[dict]) -> list[dict[str, Any]]:
    return [{"id": r["sample_id"], "label": r["label"], "emotion": r.get("emotion"), "pred_aus": r.get("aus") or [],
             "aus": r.get("aus_gold") or [], "dataset": r.get("dataset", "")} for r in rows]


def chance(result: dict[str, Any], protocol: str) -> dict[str, Any]:
    """Chance levels for the scored classes: uniform guessing (ACC = UAR = 1/K) and always the majority class."""
    labels = result["labels"]
    totals = [sum(row) for row in result["confusion_matrix"]]
    majority = labels[max(range(len(labels)), key=lambda i: totals[i])]
    gold = [label for label, n in zip(labels, totals, strict=True) for _ in range(n)]
    rows = predict([{"label": g, "emotion": majority} for g in gold], protocol)
    scored = score_rows(rows, protocol)
    return {"uniform": {"acc": 1 / len(labels), "uar": 1 / len(labels)},
            "majority": {"class": majority, **{k: scored[k] for k in ("acc", "uf1", "uar") if k in scored}}}


def metrics_of(rows: list[dict], protocol: str) -> dict[str, Any]:
    """Per task: overall metrics, per-dataset metrics and chance levels (``score_rows`` with every metric plugin)."""
    get_protocol(protocol)
    out: dict[str, Any] = {"protocol": protocol, "tasks": {}}
    for task in sorted({r["task"] for r in rows}):
        part = [r for r in rows if r["task"] == task]
        overall = score_rows(predict(_records(part), protocol), protocol)
        per_dataset = {}
        for dataset in sorted({r.get("dataset", "") for r in part}):
            subset = [r for r in part if r.get("dataset", "") == dataset]
            try:
                per_dataset[dataset or "-"] = score_rows(predict(_records(subset), protocol), protocol)
            except InputError:  # a dataset with no label inside the protocol has nothing to score
                continue
        out["tasks"][task] = {"overall": overall, "per_dataset": per_dataset, "chance": chance(overall, protocol),
                              "errors": sum(1 for r in part if r.get("error"))}
    return out
