"""``mellm vqa``: answer an MEGC ME-VQA test file (clip folders, no onset or apex) with a recipe's model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mellm_core.cli.common import command, load_recipe_args, print_json, recipe_args


def cmd_vqa(args: argparse.Namespace) -> int:
    from mellm_core.files.atomic import write_bytes_atomic
    from mellm_core.model.predictor import default_adapter, model_note
    from mellm_core.stages.vqa import answer_file

    recipe = load_recipe_args(args)
    adapter = default_adapter(recipe)
    lines, summary = answer_file(recipe, Path(args.questions), args.fps, adapter, progress=not args.json)
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    write_bytes_atomic(args.out, text.encode("utf-8"))
    note = model_note(recipe, adapter, f"mellm train {args.recipe}")
    if args.json:
        print_json({**summary, "out": args.out, "adapter": adapter, "note": note})
        return 0
    if note:
        print(note)
    print(f"answered {summary['lines']} questions about {summary['clips']} clips into {args.out} "
          f"({summary['failed_clips']} clips could not be read; {summary['asked_as_written']} questions of no "
          "known type put to the model as written)")
    return 0


def register_vqa(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "vqa", "answer an MEGC ME-VQA test file: spot each clip's apex, map it, analyse it, answer",
                "mellm vqa quickstart --questions me_vqa_samm_test_to_answer.jsonl --out answers.jsonl --fps 200")
    recipe_args(p, "spot.spotter=diff eval.batch_size=4")
    p.add_argument("--questions", required=True, help='the test JSONL: {"video_id", "video", "question"} per line, '
                   "with each clip folder (video) beside it")
    p.add_argument("--out", required=True, help="where to write the same lines with \"answer\" filled")
    p.add_argument("--fps", type=float, help="the clips' frame rate (else spot.fps): 200 for SAMM, 30 for CAS(ME)^3")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_vqa)
