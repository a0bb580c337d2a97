"""Validation while training: training subjects held out of the rows (``train.val_fraction``), their loss and
label accuracy every ``train.eval_every`` steps, and the best adapter so far (``train.keep: best_val``).

Test subjects never reach training, so validation holds out training subjects, whole: a subject's clips are all
in one set, as the field's subject-independent protocols require. Every worker validates on every validation
row (a sharded model's workers must run the same forward passes together), and rank 0's figures are the run's.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mellm_core.errors import InputError
from mellm_core.files.frames import read_rgb
from mellm_core.text.parse import parse_output

BEST = "best_adapter"  # in a checkpoint: the adapter of the best validation so far, and its metrics line
BEST_LINE = "best.json"  # beside it
GENERATE_BATCH = 8  # validation rows answered together


def held_out(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(training rows, validation rows): ``fraction`` of the training subjects (at least one, drawn with the seed)
    hold out all their rows."""
    if fraction <= 0:
        return rows, []
    subjects = sorted({subject(r) for r in rows})
    n = max(1, round(fraction * len(subjects)))
    if n >= len(subjects):
        raise InputError(f"train.val_fraction={fraction} holds out {n} of the {len(subjects)} training subjects, "
                         "leaving none to train on; lower it (or train on more subjects)")
    chosen = {subjects[i] for i in np.random.default_rng([seed, 7]).choice(len(subjects), n, replace=False)}
    return [r for r in rows if subject(r) not in chosen], [r for r in rows if subject(r) in chosen]


def subject(row: dict) -> str:
    """A row's subject, qualified by its dataset (rows that name none are each their own)."""
    return f"{row.get('dataset', '')}/{row.get('subject') or row['sample_id']}"


def validate(backbone: Any, model: torch.nn.Module, rows: list[dict], labels: list[str], micro_batch: int,
             device: str) -> dict[str, float]:
    """``val_loss`` (mean over rows of each row's mean answer-token loss) and, when the rows hold the label task,
    ``val_acc`` (share of those rows whose greedy answer names their emotion, read as evaluation reads it)."""
    module = getattr(model, "module", model)  # DDP's module; a sharded model validates as itself
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda")
                else contextlib.nullcontext())
    module.eval()
    try:
        with torch.no_grad(), autocast:
            total = 0.0
            for start in range(0, len(rows), micro_batch):
                chunk = rows[start:start + micro_batch]
                batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in backbone.collate(chunk).items()}
                total += float(backbone.loss(module, batch)[0]) * len(chunk)
            metrics = {"val_loss": round(total / len(rows), 6)}
            asked = [r for r in rows if r.get("task") == "mer"]
            if asked:
                metrics["val_acc"] = round(_accuracy(backbone, module, asked, labels), 6)
    finally:
        module.train()
    return metrics


def _accuracy(backbone: Any, module: torch.nn.Module, rows: list[dict], labels: list[str]) -> float:
    """Share of ``rows`` whose greedy answer names their label. A sharded model gathers its outermost weights
    (embeddings, head) for ``generate``, which calls the inner model past the sharded root's hooks."""
    gathered = hasattr(module, "unshard")
    if gathered:
        module.unshard()  # type: ignore[operator]
    try:
        hits = 0
        for start in range(0, len(rows), GENERATE_BATCH):
            chunk = rows[start:start + GENERATE_BATCH]
            texts = backbone.generate(module, [r["messages"][0]["content"] for r in chunk],
                                      [read_rgb(r["images"][0]) for r in chunk])
            hits += sum(parse_output(t, labels).emotion == r["label"] for t, r in zip(texts, chunk, strict=True))
    finally:
        if gathered:
            module.reshard()  # type: ignore[operator]
    return hits / len(rows)


def better(line: dict[str, Any], best: dict[str, Any] | None) -> bool:
    """Whether validation ``line`` beats ``best``: a higher accuracy, or as high at a lower loss (the loss alone
    when the rows hold no label task)."""
    if best is None:
        return True
    return (line.get("val_acc", 0.0), -line["val_loss"]) > (best.get("val_acc", 0.0), -best["val_loss"])


def keep_best(folder: Path, best_dir: Path, best: dict[str, Any]) -> None:
    """Put the best adapter so far and its metrics line into checkpoint ``folder``."""
    shutil.copytree(best_dir, folder / BEST)
    (folder / BEST_LINE).write_text(json.dumps(best))


def restore_best(folder: Path, best_dir: Path) -> dict[str, Any] | None:
    """The best adapter a checkpoint carried, back into ``best_dir``; its metrics line (None when it has none)."""
    if not (folder / BEST_LINE).is_file():
        return None
    shutil.rmtree(best_dir, ignore_errors=True)
    shutil.copytree(folder / BEST, best_dir)
    return json.loads((folder / BEST_LINE).read_text())
