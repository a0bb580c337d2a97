"""``mellm plan``: what a recipe's training will cost on a GPU, before any weights are downloaded."""

from __future__ import annotations

import argparse

from mellm_core.cli.common import command, load_recipe_args, print_json


def cmd_plan(args: argparse.Namespace) -> int:
    from mellm_core.model.plan import describe, make_plan

    plan = make_plan(load_recipe_args(args), args.gpu, args.mfu)
    if args.json:
        print_json(plan.summary())
    else:
        print(f"plan for {args.recipe} on {args.gpu}:")
        for line in describe(plan):
            print(line)
    return 0


def register_plan(sub: argparse._SubParsersAction) -> None:
    from mellm_core.model.plan import GPUS

    p = command(sub, "plan", "parameters, tokens, memory per worker and step time of a recipe's training, from "
                "the model's configuration alone (no weights)",
                "mellm plan recipes/mellm_qwen2_5_vl_7b.yaml --gpu h100-80gb --json")
    p.add_argument("recipe", help="recipe file or shipped recipe name (e.g. mellm_qwen2_5_vl_7b)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.lora_rank=16")
    p.add_argument("--gpu", default="a100-80gb", choices=list(GPUS), help="the GPU to plan for (default a100-80gb)")
    p.add_argument("--mfu", type=float, default=0.35,
                   help="share of the GPU's peak the executed FLOPs reach, recomputation included (default 0.35)")
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    p.set_defaults(func=cmd_plan)
