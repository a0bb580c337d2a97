"""Side-by-side results of several evaluations (``mellm report --compare``), laid out like the paper's Table II.

One row per run (the run's output folder name, its model and adapter), ACC/UF1/UAR per task (and AU F1 where the
task's answers name AUs) and, where a task covers more than one dataset, per dataset; chance rows follow (over a
folder of runs, the range of their levels). Reads only ``eval/metrics.json`` files (no Ray).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from mellm_core.errors import InputError
from mellm_core.files.layout import METRICS
from mellm_core.files.storage import Location
from mellm_core.summaries import EvalResult

COLUMNS = ("acc", "uf1", "uar", "au_f1")  # au_f1: shown for a task only where some run scored it


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


# The paper's Table II (MELLM and the MLLMs it compares with; UF1, UAR, ACC), shown under the test sets of the
# same names (``recipes/mellm_paper.yaml`` names its eval.sets so). Its answers are MEU analyses.
PAPER_TASK = "meu"
PAPER_TABLE_II: dict[str, dict[str, tuple[float, float, float]]] = {
    "Qwen2.5-VL-7B": {"CASME II": (0.0782, 0.1886, 0.1628), "CAS(ME)^3": (0.1079, 0.1787, 0.2507),
                      "DFME TestA": (0.0794, 0.1495, 0.2046), "DFME TestB": (0.0737, 0.1499, 0.1605)},
    "Qwen-VL-Max": {"CASME II": (0.1039, 0.1062, 0.1008), "CAS(ME)^3": (0.1623, 0.1698, 0.1905),
                    "DFME TestA": (0.1788, 0.1883, 0.2025), "DFME TestB": (0.1550, 0.1677, 0.1672)},
    "Gemini-2.5-Pro": {"CASME II": (0.2717, 0.2633, 0.3023), "CAS(ME)^3": (0.1767, 0.1663, 0.2092),
                       "DFME TestA": (0.3056, 0.3363, 0.3481), "DFME TestB": (0.2665, 0.2818, 0.2843)},
    "MELLM": {"CASME II": (0.4849, 0.5337, 0.6434), "CAS(ME)^3": (0.2908, 0.2948, 0.4226),
              "DFME TestA": (0.3578, 0.3731, 0.4641), "DFME TestB": (0.3162, 0.3424, 0.3712)},
}


def metrics_files(path: str | Path) -> tuple[list[Location], bool]:
    """(the ``metrics.json`` files, grouped): an evaluation's (see ``metrics_file``), or those of the run folders
    inside ``path`` (one per seed, as ``benchmarks/demo_seeds.py`` writes them), in name order."""
    try:
        return [metrics_file(path)], False
    except InputError:
        where = Location(path)
        if where.remote or not where.path.is_dir():
            raise
        runs = []
        for child in sorted(where.path.iterdir()):
            try:
                runs.append(metrics_file(child))
            except InputError:
                continue
        if not runs:
            raise
        return runs, True


def _spread(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """One row for several runs of one recipe (seeds): each score the mean over the runs, and its sd."""
    def stat(blocks: list[dict[str, Any]], how: Any) -> dict[str, float | None]:
        values = {m: [v for b in blocks if (v := b.get(m)) is not None] for m in COLUMNS}
        return {m: how(v) if v else None for m, v in values.items()}

    def sd(values: list[float]) -> float:
        return statistics.stdev(values) if len(values) > 1 else 0.0

    means: dict[str, Any] = {}
    sds: dict[str, Any] = {}
    for task, first in rows[0]["tasks"].items():
        blocks = [row["tasks"].get(task, {}) for row in rows]
        for out, how in ((means, statistics.mean), (sds, sd)):
            out[task] = {"overall": stat([b.get("overall", {}) for b in blocks], how)}
            for kind in ("datasets", "sets"):
                out[task][kind] = {key: stat([b.get(kind, {}).get(key, {}) for b in blocks], how)
                                   for key in first[kind]}
    return {**rows[0], "name": f"{name} ({len(rows)} runs)", "tasks": means, "sd": sds, "runs": len(rows)}


def compare(paths: list[str | Path]) -> dict[str, Any]:
    """Rows (name, model, backbone, adapter, scores per task: overall, per dataset, per test set of
    ``eval.sets``), chance levels, and a warning when the runs were tested on different instructions. A folder
    of several runs (seeds) is one row: the mean of each score over the runs, and its sd (``sd``)."""
    if not paths:
        raise InputError("give at least one evaluation folder to compare")
    rows: list[dict[str, Any]] = []
    chance: dict[str, Any] = {}
    tests: set[str] = set()
    for path in paths:
        sources, grouped = metrics_files(path)
        group = [_row(source, chance, tests) for source in sources]
        rows.append(_spread(group, Location(path).name) if grouped else group[0])
    warning = "the runs were tested on different instructions: compare with care" if len(tests) > 1 else None
    table = {"runs": rows, "chance": chance, "warning": warning}
    table["paper"] = {model: {name: dict(zip(("uf1", "uar", "acc"), figures, strict=True))
                              for name, figures in sets.items()}
                      for model, sets in PAPER_TABLE_II.items()} if _paper_sets(table) else {}
    return table


def _row(source: Location, chance: dict[str, Any], tests: set[str]) -> dict[str, Any]:
    """One evaluation's row (its chance levels and its test file's hash collected on the way)."""
    try:
        metrics = EvalResult.read(source)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{source} is not an evaluation's metrics file ({exc!r})") from None
    tests.add(metrics.test_sha256)
    scores: dict[str, Any] = {}
    for task, block in metrics.tasks.items():
        datasets = block.per_dataset
        scores[task] = {"overall": _scores(block.overall),
                        "datasets": {d: _scores(b) for d, b in datasets.items()} if len(datasets) > 1 else {},
                        "sets": {}}
        chance.setdefault(task, {"overall": [], "sets": {}})["overall"].append(block.chance)
    for name, test_set in metrics.sets.items():
        for task, block in test_set.tasks.items():
            scores.setdefault(task, {"overall": {}, "datasets": {}, "sets": {}})["sets"][name] = \
                _scores(block.overall)
            chance.setdefault(task, {"overall": [], "sets": {}})["sets"].setdefault(name, []).append(block.chance)
    adapter = metrics.adapter
    return {"name": _run_name(source), "model": metrics.model, "backbone": metrics.backbone,
            "adapter": Location(adapter).name if adapter else None, "source": str(source), "tasks": scores}


def _paper_sets(table: dict[str, Any]) -> list[str]:
    """The paper's Table II sets among the compared runs' test sets (under the task its answers are)."""
    found = {name for row in table["runs"] for name in row["tasks"].get(PAPER_TASK, {}).get("sets", {})}
    return [name for name in PAPER_TABLE_II["MELLM"] if name in found]


Column = tuple[str, str, str | None]  # (task, "overall" | "dataset" | "set", its name)


def _columns(table: dict[str, Any]) -> list[Column]:
    """Per task (sorted): its test sets in the recipe's order when the runs have any, else overall first, then
    the datasets."""
    out: list[Column] = []
    for task in sorted({task for row in table["runs"] for task in row["tasks"]}):
        blocks = [row["tasks"][task] for row in table["runs"] if task in row["tasks"]]
        sets = list(dict.fromkeys(name for b in blocks for name in b["sets"]))
        if sets:
            out += [(task, "set", name) for name in sets]
        else:
            datasets = sorted({d for b in blocks for d in b["datasets"]})
            out += [(task, "overall", None)] + [(task, "dataset", d) for d in datasets]
    return out


def _cell(value: float | None, sd: float | None = None) -> str:
    return "-" if value is None else f"{value:.3f}" + ("" if sd is None else f" ± {sd:.3f}")


def _metrics(table: dict[str, Any], task: str) -> tuple[str, ...]:
    """The columns of ``task``: ACC, UF1, UAR, and AU F1 when some run scored it (its answers name AUs)."""
    scored = any(block.get("au_f1") is not None for row in table["runs"]
                 for block in [row["tasks"].get(task, {}).get("overall", {}),
                               *row["tasks"].get(task, {}).get("sets", {}).values()])
    return COLUMNS if scored else COLUMNS[:3]


def _level(levels: list[dict[str, Any]], level: str, metric: str) -> str:
    """A chance level over the runs' levels (``levels``): the value, or its range when the runs' test sets differ
    (another seed's split); the AU baseline (always the training set's most frequent AU set) stands in the
    majority row's AU F1."""
    if metric == "au_f1":
        values = [v for lv in levels if level == "majority" and (v := lv.get("majority_aus", {}).get("au_f1"))
                  is not None]
    else:
        values = [v for lv in levels if (v := lv.get(level, {}).get(metric)) is not None]
    if not values:
        return "-"
    low, high = min(values), max(values)
    return _cell(low) if round(low, 3) == round(high, 3) else f"{low:.3f}–{high:.3f}"


def _block(scores: dict[str, Any], kind: str, name: str | None) -> dict[str, Any]:
    return scores.get("overall", {}) if kind == "overall" else scores.get(f"{kind}s", {}).get(name, {})


def markdown(table: dict[str, Any]) -> str:
    """The comparison as a Markdown table: one row per run (mean ± sd for a folder of runs), then chance (uniform
    guess, always the majority class and the AU baseline; a range over runs whose levels differ), then the paper's
    Table II figures where the runs have its test sets."""
    columns = _columns(table)
    shown = {task: _metrics(table, task) for task, _, _ in columns}
    head = ["run", "model", "adapter"] + [f"{task.upper()}{'' if name is None else ' ' + name} "
                                         f"{m.upper().replace('_', ' ')}" for task, _, name in columns
                                         for m in shown[task]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table["runs"]:
        cells = []
        for task, kind, name in columns:
            block = _block(row["tasks"].get(task, {}), kind, name)
            spread = _block(row["sd"].get(task, {}), kind, name) if "sd" in row else {}
            cells += [_cell(block.get(m), spread.get(m)) for m in shown[task]]
        model = f"{row['model']} ({row['backbone']})" if row["backbone"] else str(row["model"])
        lines.append("| " + " | ".join([row["name"], model, row["adapter"] or "base", *cells]) + " |")
    for level in ("uniform", "majority"):
        cells = []
        for task, kind, name in columns:
            levels = table["chance"].get(task, {})
            source = levels.get("overall", []) if kind == "overall" else levels.get("sets", {}).get(name, [])
            cells += [_level(source, level, m) if kind != "dataset" else "-" for m in shown[task]]
        label = "chance: uniform guess" if level == "uniform" else "chance: always the majority class"
        lines.append("| " + " | ".join([label, "", "", *cells]) + " |")
    for model, sets in table.get("paper", {}).items():
        cells = [_cell(sets.get(name, {}).get(m)) if task == PAPER_TASK and kind == "set" else "-"
                 for task, kind, name in columns for m in shown[task]]
        lines.append("| " + " | ".join([f"paper (Table II): {model}", "", "", *cells]) + " |")
    if table["warning"]:
        lines += ["", f"warning: {table['warning']}"]
    return "\n".join(lines) + "\n"
