"""``mellm score``: score any model's generated texts against gold labels on a label protocol."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mellm_core.cli.common import command, print_json
from mellm_core.errors import InputError
from mellm_core.files.jsonlines import read_jsonl


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The scoring records of a JSONL file; a bad record raises InputError naming file and line."""
    from mellm_core.text.scoring import record_problem

    records = read_jsonl(path, record_problem)
    if not records:
        raise InputError(f'{path} holds no records; expected JSON lines like {{"id": ..., "label": ..., "text": ...}}')
    return records


def _print_table(result: dict[str, Any]) -> None:
    """Metrics, counts and the confusion matrix as a small text table."""
    print(f"protocol {result['protocol']}: {result['n']} scored, {result['unparsed']} unparsed,"
          f" {result['excluded']} excluded")
    for name, value in result.items():
        if isinstance(value, float):
            print(f"  {name:<8} {value:.4f}")
    columns = [*result["labels"], "other"]
    width = max(len(c) for c in columns) + 2
    print("confusion matrix (rows: gold; columns: predicted, 'other' = unparsed or outside the classes)")
    print(" " * width + "".join(f"{c:>{width}}" for c in columns))
    for label, row in zip(result["labels"], result["confusion_matrix"], strict=True):
        print(f"{label:<{width}}" + "".join(f"{count:>{width}}" for count in row))


def read_intervals(path: str | Path) -> list[Any]:
    """The ``intervals`` of a JSON file (``mellm spot --json``'s output, or a SynthME long video's truth)."""
    from mellm_core.files.storage import Location
    from mellm_core.records import Interval

    try:
        data = json.loads(Location(path).read_text())
        return [Interval(int(i["onset"]), int(i["apex"]), int(i["offset"]), float(i.get("score", 1.0)),
                         str(i.get("kind", "me"))) for i in data["intervals"]]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path} is not a JSON object with intervals [{{onset, apex, offset, kind}}, ...] "
                         f"({exc!r})") from None


def _score_spotting(args: argparse.Namespace) -> int:
    from mellm_core.results.spotting import KINDS, spotting_scores

    result = spotting_scores(read_intervals(args.file), read_intervals(args.spotting))
    if args.json:
        print_json(result)
        return 0
    print(f"spotting (IoU >= 0.5 with an annotated interval of the same kind); apex error {result['apex_error']}")
    for kind in (*KINDS, "overall"):
        r = result[kind]
        print(f"  {kind:<8} F1 {r['f1']:.4f}  precision {r['precision']:.4f}  recall {r['recall']:.4f}  "
              f"({r['tp']} of {r['spotted']} spotted, {r['gold']} annotated)")
    return 0


def _score_vqa(args: argparse.Namespace) -> int:
    from mellm_core.results.vqa import score_vqa

    if not (args.vqa and args.gold) or args.file:
        raise InputError("ME-VQA scoring takes --vqa PRED.jsonl --gold GOLD.jsonl (and no other file)")
    result = score_vqa(read_jsonl(args.vqa), read_jsonl(args.gold), args.missing)
    if args.json:
        print_json(result)
        return 0
    lines = result["n"] + (result["missing"] if args.missing == "skip" else 0)
    how = "left out" if args.missing == "skip" else "scored as empty answers"
    print(f"ME-VQA: {result['n']} of {lines} gold lines scored ({result['missing']} without a prediction: {how}); "
          f"BLEU {result['bleu']:.4f}  ROUGE-1 {result['rouge_1']:.4f}")
    for kind in ("coarse", "fine"):
        r = result[kind]
        print(f"  {kind:<6} expression class: UF1 {r['uf1']:.4f}  UAR {r['uar']:.4f}  (n {r['n']})")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from mellm_core.files.atomic import write_bytes_atomic
    from mellm_core.text.scoring import predict, score_rows

    if args.vqa or args.gold:
        return _score_vqa(args)
    if not args.file:
        raise InputError("give the file to score (or --vqa PRED --gold GOLD for ME-VQA answers)")
    if args.spotting:
        return _score_spotting(args)

    rows = predict(read_records(args.file), args.protocol)
    result = score_rows(rows, args.protocol)
    if args.per_sample:
        lines = "".join(json.dumps(row.per_sample(), ensure_ascii=False) + "\n" for row in rows)
        write_bytes_atomic(args.per_sample, lines.encode("utf-8"))
    if args.json:
        print_json(result)
    else:
        _print_table(result)
    return 0


def register_score(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "score", "score generated texts (any model's) with ACC, UAR, UF1 and AU F1 on a label protocol",
                "mellm score predictions.jsonl --protocol dfme-7 --per-sample parsed.jsonl --json")
    p.add_argument("file", nargs="?", help='JSONL, one {"id", "label", "text"} per line ("emotion" instead of "text"'
                                           ' when already parsed; optional gold "aus" and "dataset")')
    p.add_argument("--protocol", default="all",
                   help="label protocol: dfme-7, casme2-5, casme3-6, megc-3 or all (default: all)")
    p.add_argument("--per-sample", dest="per_sample",
                   help='also write {"id", "label", "emotion", "aus"} per record (parsed predictions) to this JSONL')
    p.add_argument("--spotting", metavar="GOLD", help="score spotted intervals instead: FILE is `mellm spot --json`'s "
                   "output, GOLD a JSON object with the annotated intervals (a SynthME long video's .json)")
    p.add_argument("--vqa", metavar="PRED", help="score MEGC ME-VQA answers instead: PRED's lines (as `mellm vqa` "
                   "writes them) against --gold's, by id or video_id and question")
    p.add_argument("--gold", metavar="GOLD", help="the ME-VQA gold JSONL (with answers) for --vqa")
    p.add_argument("--missing", choices=("skip", "empty"), default="skip",
                   help="--vqa: a gold line without a prediction is left out of the scores (skip, as the published "
                        "MEGC 2025 scorer does) or scored as an empty answer (empty); either way it is counted "
                        "(default: skip)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.set_defaults(func=cmd_score)
