"""``mellm demo``: the whole pipeline on a recipe (recipes/demo.yaml by default) into one folder."""

from __future__ import annotations

import argparse
import shlex
import sys

from mellm_core.cli.common import command, print_json
from mellm_core.files.layout import RunLayout


def cmd_demo(args: argparse.Namespace) -> int:
    from mellm_core.config import load_recipe
    from mellm_core.stages.pipeline import run_pipeline

    extra = [f"ray.address={args.address}"] if args.address else []
    recipe = load_recipe(args.recipe, [f"output_dir={args.out}", *args.overrides, *extra])
    result = run_pipeline(recipe, progress=not args.json)
    ev, inst, maps = result.eval, result.instructions, result.maps
    report = RunLayout(recipe.output_dir).report
    reused = {"maps": maps.skipped == maps.samples, "instructions": inst.skipped, "train": result.train.skipped,
              "eval": ev.skipped}
    headline = {task: block.headline() for task, block in ev.tasks.items()}
    commands = next_commands(args, result.example)
    if args.json:
        print_json({"report": str(report), "tasks": headline, "seconds": result.seconds, "reused": reused,
                    "test_subjects": inst.test_subjects, "train_samples": inst.train.samples,
                    "test_samples": inst.test.samples, "commands": commands})
        return 0
    print(f"\nreport: {report}", file=sys.stdout)
    print(f"trained on {inst.train.samples} clips, tested on {inst.test.samples} clips of held-out "
          f"subjects ({', '.join(inst.test_subjects)}); {len(inst.labels)} classes")
    for task, m in headline.items():
        au = f"  AU F1 {m['au_f1']:.3f}" if m.get("au_f1_chance") is not None else ""  # tasks that name AUs
        print(f"  {task}: ACC {m['acc']:.3f}  UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}{au}   |  chance: uniform ACC/UAR "
              f"{m['chance_acc']:.3f}, majority class ACC {m['majority_acc']:.3f}")
    for task, block in ev.tasks.items():
        for line in block.verdict_lines(task):
            print(f"  {line}")
    print("stage seconds: " + ", ".join(f"{k} {v}" + (" (reused)" if reused[k] else "")
                                        for k, v in result.seconds.items()))
    if example := result.example:  # the analyze command exists exactly when there is an example
        print(f"\nanalyze a held-out clip ({example['sample_id']}, gold: {example['label']}) with the model just "
              f"trained:\n  {commands['analyze']}")
    print(f"serve it over HTTP (Ctrl-C stops):\n  {commands['serve']}")
    return 0


def next_commands(args: argparse.Namespace, example: dict[str, str] | None) -> dict[str, str]:
    """The exact commands that analyze a held-out pair and serve the model the demo trained (same recipe)."""
    recipe = [args.recipe, f"output_dir={args.out}", *args.overrides]
    if args.address:
        recipe.append(f"ray.address={args.address}")
    out = {"serve": shlex.join(["mellm", "serve", *recipe])}
    if example:
        out["analyze"] = shlex.join(["mellm", "analyze", example["onset"], example["apex"], "--recipe", *recipe])
    return out


def register_demo(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "demo", "run everything on CPU: SynthME -> MMC-maps -> instructions -> fine-tuning -> evaluation",
                "mellm demo --out runs/demo")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--recipe", default="demo", help="recipe to run (default: recipes/demo.yaml, CPU only)")
    p.add_argument("--address", help="Ray cluster to attach to (default: RAY_ADDRESS or a local instance)")
    p.add_argument("--json", action="store_true", help="print a JSON summary line")
    p.add_argument("overrides", nargs="*", help="recipe key=value overrides, e.g. train.max_steps=200")
    p.set_defaults(func=cmd_demo)
