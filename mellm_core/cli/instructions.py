"""``mellm instructions``: FGMU instruction data for a recipe (parsing and printing only)."""

from __future__ import annotations

import argparse

from mellm_core.cli.common import command, load_recipe_args, print_json, recipe_args


def cmd_instructions(args: argparse.Namespace) -> int:
    from mellm_core.stages.instructions import run_instructions
    from mellm_core.stages.maps import run_recipe_maps

    recipe = load_recipe_args(args)
    run_recipe_maps(recipe, progress=not args.json)  # makes only the maps that are missing or out of date
    summary = run_instructions(recipe)
    if args.json:
        data = summary.to_dict()
        print_json({k: data[k] for k in ("train", "test", "labels", "excluded", "skipped", "out_dir")})
    else:
        state = "unchanged" if summary.skipped else "written"
        print(f"instructions {state} in {summary.out_dir}: train {summary.train.instructions} "
              f"({summary.train.tasks}), test {summary.test.instructions}; "
              f"labels: {', '.join(summary.labels)}; excluded: {summary.excluded or 'none'}")
    return 0


def register_instructions(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "instructions", "build FGMU instruction data (MEU + MER) from a recipe's MMC-maps",
                "mellm instructions recipes/quickstart.yaml instructions.prompt=fgmu-zh --json")
    recipe_args(p, "instructions.mer_ratio=0.5")
    p.add_argument("--json", action="store_true", help="print a JSON summary line")
    p.set_defaults(func=cmd_instructions)
