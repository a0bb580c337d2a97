"""Every stage of a recipe in order: data -> MMC-maps -> instructions -> training -> evaluation -> report.

Each stage skips work whose inputs and settings are unchanged, so running the pipeline again is fast and a
changed setting redoes only what depends on it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mellm_core.config import Recipe
from mellm_core.files.layout import RunLayout
from mellm_core.summaries import EvalResult, InstructionsSummary, MapsSummary, TrainSummary

STAGES = ("maps", "instructions", "train", "eval")


@dataclass
class PipelineResult:
    """Each stage's summary, the seconds each took, and a held-out pair to try the trained model on."""

    maps: MapsSummary
    instructions: InstructionsSummary
    train: TrainSummary
    eval: EvalResult
    seconds: dict[str, float]
    example: dict[str, str] | None


def run_pipeline(recipe: Recipe, progress: bool = True) -> PipelineResult:
    """Run every stage in order (each skips what is up to date)."""
    from mellm_core.stages.eval import run_eval
    from mellm_core.stages.instructions import run_instructions
    from mellm_core.stages.maps import run_recipe_maps
    from mellm_core.stages.train import run_train

    steps: dict[str, Callable[[], Any]] = {
        "maps": lambda: run_recipe_maps(recipe, progress=progress),
        "instructions": lambda: run_instructions(recipe),
        "train": lambda: run_train(recipe, progress=progress),
        "eval": lambda: run_eval(recipe, progress=progress)}
    done: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for number, name in enumerate(STAGES, 1):
        if progress:
            print(f"[{number}/{len(STAGES)}] {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        done[name] = steps[name]()
        seconds[name] = round(time.perf_counter() - started, 1)
    return PipelineResult(**done, seconds=seconds, example=held_out_pair(recipe))


def held_out_pair(recipe: Recipe) -> dict[str, str] | None:
    """The first test clip's onset and apex frames, gold label and id (a pair the trained model has not seen)."""
    from mellm_core.stages.maps import read_records

    layout = RunLayout(recipe.output_dir)
    test, manifest = layout.test_rows, layout.manifest
    if not (test.is_file() and manifest.is_file()):
        return None
    first = next((json.loads(line) for line in test.read_text().splitlines() if line.strip()), None)
    record = read_records(manifest.read_text().splitlines()).get(first["sample_id"]) if first else None
    if record is None:
        return None
    return {"sample_id": record.sample_id, "label": str(record.emotion), "onset": record.onset_path,
            "apex": record.apex_path}
