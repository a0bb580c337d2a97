"""Side-by-side results of several evaluations (``mellm report --compare``), laid out like the paper's Table II.

One row per run (the run's output folder name, its model and adapter), ACC/UF1/UAR per task and, where a task
covers more than one dataset, per dataset; chance rows follow. Reads only ``eval/metrics.json`` files (no Ray).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mellm_core.errors import InputError
from mellm_core.files.layout import METRICS
from mellm_core.files.storage import Location
from mellm_core.summaries import EvalResult

COLUMNS = ("acc", "uf1", "uar")


def metrics_file(path: str | Path) -> Location:
    """The ``metrics.json`` of a run folder, its ``eval`` folder, or the file itself (local or a URI)."""
    where = Location(path)
    for candidate in (where, where / METRICS, where / "eval" / METRICS):
        if candidate.is_file():
            return candidate
    raise InputError(f"{where} holds no {METRICS} (looked in {where} and {where / 'eval'}); run `mellm eval` first")


def _run_name(metrics: Location) -> str:
    """The run's output folder name (the folder above ``eval/``)."""
    folder = metrics.parent
    return (folder.parent if folder.name == "eval" else folder).resolve().name


def _scores(block: dict[str, Any]) -> dict[str, float | None]:
    return {k: block.get(k) for k in COLUMNS}


def compare(paths: list[str | Path]) -> dict[str, Any]:
    """Rows (name, model, backbone, adapter, scores per task and dataset), chance levels, and a warning when the
    runs were tested on different instructions."""
    if not paths:
        raise InputError("give at least one evaluation folder to compare")
    rows: list[dict[str, Any]] = []
    chance: dict[str, Any] = {}
    tests: set[str] = set()
    for path in paths:
        source = metrics_file(path)
        try:
            metrics = EvalResult.read(source)
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{source} is not an evaluation's metrics file ({exc!r})") from None
        tests.add(metrics.test_sha256)
        scores = {}
        for task, block in metrics.tasks.items():
            datasets = block.per_dataset
            scores[task] = {"overall": _scores(block.overall),
                            "datasets": {d: _scores(b) for d, b in datasets.items()} if len(datasets) > 1 else {}}
            chance.setdefault(task, block.chance)
        adapter = metrics.adapter
        rows.append({"name": _run_name(source), "model": metrics.model, "backbone": metrics.backbone,
                     "adapter": Location(adapter).name if adapter else None, "source": str(source), "tasks": scores})
    warning = "the runs were tested on different instructions: compare with care" if len(tests) > 1 else None
    return {"runs": rows, "chance": chance, "warning": warning}


def _columns(table: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(task, dataset or None for overall) in a stable order: tasks sorted, overall first, then datasets."""
    found: dict[str, set[str]] = {}
    for row in table["runs"]:
        for task, scores in row["tasks"].items():
            found.setdefault(task, set()).update(scores["datasets"])
    return [(task, d) for task in sorted(found) for d in (None, *sorted(found[task]))]


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown(table: dict[str, Any]) -> str:
    """The comparison as a Markdown table: one row per run, then chance (uniform guess, always the majority)."""
    columns = _columns(table)
    head = ["run", "model", "adapter"] + [f"{task.upper()}{'' if d is None else ' ' + d} {m.upper()}"
                                         for task, d in columns for m in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table["runs"]:
        cells = []
        for task, d in columns:
            scores = row["tasks"].get(task, {"overall": {}, "datasets": {}})
            block = scores["overall"] if d is None else scores["datasets"].get(d, {})
            cells += [_cell(block.get(m)) for m in COLUMNS]
        model = f"{row['model']} ({row['backbone']})" if row["backbone"] else str(row["model"])
        lines.append("| " + " | ".join([row["name"], model, row["adapter"] or "base", *cells]) + " |")
    for kind in ("uniform", "majority"):
        cells = []
        for task, d in columns:
            block = table["chance"].get(task, {}).get(kind, {}) if d is None else {}
            cells += [_cell(block.get(m)) for m in COLUMNS]
        label = "chance: uniform guess" if kind == "uniform" else "chance: always the majority class"
        lines.append("| " + " | ".join([label, "", "", *cells]) + " |")
    if table["warning"]:
        lines += ["", f"warning: {table['warning']}"]
    return "\n".join(lines) + "\n"
