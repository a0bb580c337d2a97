"""``mellm eval`` and ``mellm analyze``: scoring a recipe's model on its test set, and one pair end to end."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from mellm_core.cli.common import command, load_recipe_args, print_json, recipe_args
from mellm_core.files.layout import RunLayout


def cmd_eval(args: argparse.Namespace) -> int:
    from mellm_core.stages.eval import run_eval

    recipe = load_recipe_args(args)
    result = run_eval(recipe, progress=not args.json)
    out = RunLayout(recipe.output_dir)
    tasks = {task: block.headline() for task, block in result.tasks.items()}
    sets: dict[str, dict[str, Any]] = {
        name: {"protocol": block.protocol, "samples": block.samples,
               "tasks": {task: m.headline() for task, m in block.tasks.items()}}
        for name, block in result.sets.items()}
    if args.json:
        print_json({"protocol": result.protocol, "tasks": tasks, "sets": sets, "adapter": result.adapter,
                    "report": str(out.report), "skipped": result.skipped})
        return 0
    state = "unchanged" if result.skipped else "written"
    print(f"evaluation {state} in {out.eval} (protocol {result.protocol}, adapter {result.adapter})")
    for task, m in tasks.items():
        print(f"  {task}: {_scores(m)}")
    for task, block in result.tasks.items():
        for line in block.verdict_lines(task):
            print(f"  {line}")
    for name, entry in sets.items():
        print(f"test set {name} ({entry['samples']} samples, protocol {entry['protocol']}):")
        for task, m in entry["tasks"].items():
            print(f"  {task}: {_scores(m)}")
    print(f"report: {out.report}")
    return 0


def _scores(m: dict) -> str:
    scores = "  ".join(f"{k.upper()} {m[k]:.4f}" for k in ("acc", "uf1", "uar", "au_f1") if m.get(k) is not None)
    return f"{scores}  (n {m['n']}, unparsed {m['unparsed']}; chance ACC {m['chance_acc']:.4f})"


def cmd_analyze(args: argparse.Namespace) -> int:
    from mellm_core.model.predictor import analyze_pair

    recipe = load_recipe_args(args)
    train = shlex.join(["mellm", "train", args.recipe, *args.overrides])
    done = analyze_pair(recipe, args.onset, args.apex, args.map, train, args.adapter, args.model,
                        args.max_new_tokens)
    answer = done.answer
    if args.json:
        print_json({"emotion": answer.emotion, "aus": answer.aus, "analysis": answer.text, "map": str(args.map),
                    "adapter": done.adapter, "note": done.note})
    else:
        if done.note:
            print(done.note, file=sys.stderr)
        print(answer.text)
        print(f"\nemotion: {answer.emotion or '(none found)'}; AUs: {', '.join(map(str, answer.aus)) or 'none'}")
        model = args.model or recipe.backbone.model
        print(f"MMC-map: {args.map}; model {model}, adapter {done.adapter or 'none (base model)'}")
    return 0


def register_eval(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "eval", "evaluate the recipe's model on its test instructions (Ray Data), write a report",
                "mellm eval recipes/quickstart.yaml eval.protocol=dfme-7 --json")
    recipe_args(p, "eval.actors=2 eval.base_model=true")
    p.add_argument("--json", action="store_true", help="print a JSON summary line")
    p.set_defaults(func=cmd_eval)


def register_analyze(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "analyze", "one onset/apex pair: MMC-map, the model's analysis and the parsed result",
                "mellm analyze onset.jpg apex.jpg --recipe quickstart --json")
    p.add_argument("onset", help="onset frame (image file)")
    p.add_argument("apex", help="apex frame (image file)")
    p.add_argument("--recipe", default="quickstart", help="recipe whose maps, prompt, backbone and adapter are used")
    p.add_argument("--model", help="backbone model instead of the recipe's (folder or hub id; no adapter)")
    p.add_argument("--adapter", help="adapter folder (default: the recipe's trained adapter when present)")
    p.add_argument("--map", default="mmc_map.png", help="where to write the MMC-map (default: mmc_map.png)")
    p.add_argument("--max-new-tokens", type=int, help="generation cap (default: the backbone's)")
    p.add_argument("--json", action="store_true", help="print {emotion, aus, analysis, map} as JSON")
    p.add_argument("overrides", nargs="*", help="recipe key=value overrides")
    p.set_defaults(func=cmd_analyze)
