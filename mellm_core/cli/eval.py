"""``mellm eval`` and ``mellm analyze``: scoring a recipe's model on its test set, and one pair end to end."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mellm_core.cli.common import command, load_recipe_args, print_json, recipe_args
from mellm_core.files.layout import RunLayout


def cmd_eval(args: argparse.Namespace) -> int:
    from mellm_core.stages.eval import run_eval
    from mellm_core.stages.spotting import run_spotting

    recipe = load_recipe_args(args)
    out = RunLayout(recipe.output_dir)
    # a spotting recipe (spot.root set) spots in its long videos, and scores a test set too when it has one
    spotting = run_spotting(recipe, progress=not args.json) if recipe.spot.root else None
    if spotting is not None and not out.test_rows.is_file():
        if args.json:
            print_json({"spotting": spotting})
        else:
            _print_spotting(spotting, out)
        return 0
    result = run_eval(recipe, progress=not args.json)
    tasks = {task: block.headline() for task, block in result.tasks.items()}
    sets: dict[str, dict[str, Any]] = {
        name: {"protocol": block.protocol, "samples": block.samples,
               "tasks": {task: m.headline() for task, m in block.tasks.items()}}
        for name, block in result.sets.items()}
    if args.json:
        print_json({"protocol": result.protocol, "tasks": tasks, "sets": sets, "adapter": result.adapter,
                    "report": str(out.report), "skipped": result.skipped,
                    **({"spotting": spotting} if spotting is not None else {})})
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
    if spotting is not None:
        _print_spotting(spotting, out)
    return 0


def _print_spotting(s: dict[str, Any], out: RunLayout) -> None:
    from mellm_core.stages.spotting import SPOTTING

    state = "unchanged" if s.get("skipped") else "written"
    print(f"spot-then-recognise {state}: {s['videos']} long videos of {s['dataset']} (spotter {s['spotter']}, "
          f"adapter {s['adapter']}): STRS {s['strs']:.4f}")
    for kind, name in (("me", "micro"), ("mae", "macro"), ("overall", "overall")):
        r = s["spotting"][kind]
        print(f"  spotting {name:>7}: F1 {r['f1']:.4f}  precision {r['precision']:.4f}  recall {r['recall']:.4f}  "
              f"({r['tp']} of {r['spotted']} spotted, {r['gold']} annotated)")
    print(f"  apex error of the matches: {s['spotting']['apex_error']} frames")
    a = s["analysis"]
    if a:
        scores = "  ".join(f"{k.upper()} {a[k]:.4f}" for k in ("acc", "uf1", "uar", "au_f1") if a[k] is not None)
        print(f"  analysis of the {a['n']} matches: {scores} (unparsed {a['unparsed']}); analysis F1 {a['f1']:.4f}")
    for video, error in s["failed"].items():
        print(f"  failed: {video}: {error}")
    print(f"scores: {out.eval / SPOTTING}")


def _scores(m: dict) -> str:
    scores = "  ".join(f"{k.upper()} {m[k]:.4f}" for k in ("acc", "uf1", "uar", "au_f1") if m.get(k) is not None)
    return f"{scores}  (n {m['n']}, unparsed {m['unparsed']}; chance ACC {m['chance_acc']:.4f})"


def cmd_analyze(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mellm_core.errors import InputError
    from mellm_core.model.predictor import analyze_pair, spotted_pair, train_command

    # the inputs (a video, or an onset and an apex frame) come first; key=value words are recipe overrides
    inputs = [a for a in args.inputs if "=" not in a or Path(a).exists()]
    args.overrides = [*(a for a in args.inputs if a not in inputs), *args.overrides]
    if len(inputs) not in (1, 2):
        raise InputError(f"give a video (file or frames folder) or an onset and an apex frame, got {len(inputs)} "
                         f"inputs: {' '.join(inputs) or 'none'}")
    recipe = load_recipe_args(args)
    train = train_command(args.recipe, args.overrides)
    with spotted_pair(recipe, inputs, args.fps) as (onset, apex, interval):
        done = analyze_pair(recipe, onset, apex, args.map, train, args.adapter, args.model, args.max_new_tokens)
    answer = done.answer
    frames = {"onset": interval.onset, "apex": interval.apex, "offset": interval.offset} if interval else {}
    if args.json:
        print_json({"emotion": answer.emotion, "aus": answer.aus, "analysis": answer.text, "map": str(args.map),
                    "adapter": done.adapter, "note": done.note, **frames})
    else:
        if done.note:
            print(done.note, file=sys.stderr)
        if interval:
            print(f"spotted a {'micro' if interval.kind == 'me' else 'macro'}-expression: frames "
                  f"{interval.onset}-{interval.offset}, apex {interval.apex} (score {interval.score:.3f})\n")
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
    p = command(sub, "analyze", "one onset/apex pair, or a video whose strongest micro-expression is spotted: "
                "MMC-map, the model's analysis and the parsed result",
                "mellm analyze onset.jpg apex.jpg --recipe quickstart --json")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="ONSET APEX (image files), or VIDEO (a video file or a "
                   "folder of frames: its strongest expression is spotted), then recipe key=value overrides")
    p.add_argument("--fps", type=float, help="frame rate of a frames folder (else spot.fps)")
    p.set_defaults(overrides=[])  # key=value words after the options land here (``main``)
    p.add_argument("--recipe", default="quickstart", help="recipe whose maps, prompt, backbone and adapter are used")
    p.add_argument("--model", help="backbone model instead of the recipe's (folder or hub id; no adapter)")
    p.add_argument("--adapter", help="adapter folder (default: the recipe's trained adapter when present)")
    p.add_argument("--map", default="mmc_map.png", help="where to write the MMC-map (default: mmc_map.png)")
    p.add_argument("--max-new-tokens", type=int, help="generation cap (default: the backbone's)")
    p.add_argument("--json", action="store_true", help="print {emotion, aus, analysis, map} as JSON")
    p.set_defaults(func=cmd_analyze)
