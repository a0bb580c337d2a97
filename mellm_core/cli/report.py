"""``mellm report --compare``: several evaluations side by side (ACC/UF1/UAR per task, chance rows)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mellm_core.cli.common import command, print_json


def cmd_report(args: argparse.Namespace) -> int:
    from mellm_core.files.atomic import write_bytes_atomic
    from mellm_core.results.compare import compare, markdown

    table = compare(args.compare)
    text = markdown(table)
    if args.out:
        write_bytes_atomic(Path(args.out), text.encode("utf-8"))
    if args.json:
        print_json(table)
    else:
        print(text, end="")
    return 0


def register_report(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "report", "compare evaluations side by side: one row per run, ACC/UF1/UAR per task, chance",
                "mellm report --compare runs/mellm runs/hosted --out compare.md")
    p.add_argument("--compare", nargs="+", required=True, metavar="EVAL_DIR",
                   help="run folders (or their eval/ folders) holding eval/metrics.json; a folder of several runs "
                        "(seeds) is one row of mean ± sd")
    p.add_argument("--out", help="also write the Markdown table to this file")
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON line")
    p.set_defaults(func=cmd_report)
