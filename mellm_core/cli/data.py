"""``mellm data`` (inspect datasets, list label protocols) and ``mellm synth`` (generate SynthME): parsing and
printing only; the work happens in the dataset plugins, ``datasets`` and ``labels``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from mellm_core.cli.common import command, print_json
from mellm_core.errors import MellmError


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["frames_dir=Cropped", "subjects=8"]`` -> {"frames_dir": "Cropped", "subjects": 8} (YAML values)."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise MellmError(f"--param '{item}' is not of the form key=value (e.g. frames_dir=Cropped)")
        try:
            params[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            params[key.strip()] = value
    return params


def _param_option(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help=f"dataset plugin parameter (repeatable), e.g. --param {example}",
    )


# ---------------------------------------------------------------- data inspect


def _frame(number: int | None) -> str:
    return "-" if number is None else str(number)


def _print_samples(samples: list) -> None:
    print(f"{'sample_id':<34} {'onset':>6} {'apex':>6} {'offset':>6}  {'AUs':<18} emotion (as written)")
    for s in samples:
        print(
            f"{s.sample_id:<34} {_frame(s.onset_frame):>6} {_frame(s.apex_frame):>6}"
            f" {_frame(s.offset_frame):>6}"
            f"  {s.aus_raw or '-':<18} {s.emotion or '-'} ({s.emotion_raw or '-'})"
        )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _print_summary(summary: dict[str, Any], file: Any) -> None:
    print(
        f"{summary['samples']} samples from {summary['subjects']} subjects ({summary['dataset']},"
        f" protocol {summary['protocol']})",
        file=file,
    )
    print(f"per emotion: {_counts(summary['per_emotion'])}", file=file)
    print(f"per subject: {_counts(summary['per_subject'])}", file=file)
    print(f"excluded: {summary['excluded_total']} ({_counts(summary['excluded'])})", file=file)
    print(f"warnings: {len(summary['warnings'])}", file=file)
    for warning in summary["warnings"]:
        print(f"  {warning}", file=file)


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from mellm_core.data.datasets import load_samples

    loaded = load_samples(args.name, args.root, parse_params(args.param), args.protocol)
    if args.json:
        print_json([s.to_dict() for s in loaded.samples])
        _print_summary(loaded.summary(), sys.stderr)
    else:
        _print_samples(loaded.samples)
        _print_summary(loaded.summary(), sys.stdout)
    return 0


def cmd_data_protocols(args: argparse.Namespace) -> int:
    from mellm_core.text.labels import PROTOCOLS

    if args.json:
        print_json({name: list(p.classes) for name, p in PROTOCOLS.items()})
        return 0
    for name, protocol in PROTOCOLS.items():
        print(f"{name:<9} {', '.join(protocol.classes) or '(every label)'}: {protocol.description}")
    return 0


def register_data(sub: argparse._SubParsersAction) -> None:
    """``mellm data inspect`` and ``mellm data protocols``."""
    data = command(
        sub, "data", "read datasets through their plugins", "mellm data inspect casme2 --root /data/CASME2"
    )
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = command(
        data_sub,
        "inspect",
        "print a dataset's parsed samples and a summary (per emotion, per subject, excluded, warnings)",
        "mellm data inspect casme2 --root /data/CASME2 --protocol casme2-5 --json",
    )
    p.add_argument(
        "name", help="dataset plugin (see `mellm plugins`), e.g. casme2, samm, casme3a, dfme, megc"
    )
    p.add_argument("--root", required=True, help="the dataset's folder as distributed")
    p.add_argument(
        "--protocol", default="all", help="label protocol: all, dfme-7, casme2-5, casme3-6, megc-3"
    )
    p.add_argument(
        "--json", action="store_true", help="print the samples as a JSON array (summary on stderr)"
    )
    _param_option(p, "frames_dir=Cropped")
    p.set_defaults(func=cmd_data_inspect)
    p = command(
        data_sub, "protocols", "list the label protocols and their classes", "mellm data protocols --json"
    )
    p.add_argument("--json", action="store_true", help="print {protocol: [classes]} as JSON")
    p.set_defaults(func=cmd_data_protocols)


# ---------------------------------------------------------------- synth


def cmd_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mellm_core.plugins import create

    generator = create("dataset", args.generator, **parse_params(args.param))
    method = "generate_long" if args.long else "generate"
    if not hasattr(generator, method):
        what = "long videos" if args.long else "it"
        raise MellmError(f"dataset plugin '{args.generator}' reads data but cannot generate {what} (try synthme)")
    n = args.n if args.n is not None else (1 if args.long else 200)
    with tqdm(total=n, unit="video" if args.long else "clip", file=sys.stderr, desc="synth", leave=False,
              disable=None) as bar:
        summary = getattr(generator, method)(args.out, n=n, seed=args.seed, photos=args.photos,
                                             progress=bar.update, overwrite=args.overwrite)
    if args.json:
        print_json(summary)
    elif args.long:
        print(f"wrote {summary['videos']} long videos to {summary['out']} in {summary['seconds']} s, each with "
              "its truth beside it (.json); spot one with: mellm spot " + f"{summary['out']}/long_000.mp4")
    else:
        emotions = ", ".join(f"{k} {v}" for k, v in summary["emotions"].items())
        print(
            f"wrote {summary['clips']} clips of {summary['subjects']} subjects to {summary['out']}"
            f" in {summary['seconds']} s ({emotions})"
        )
        print(f"read it with: mellm data inspect {args.generator} --root {summary['out']}")
    return 0


def register_synth(sub: argparse._SubParsersAction) -> None:
    """``mellm synth``."""
    p = command(
        sub,
        "synth",
        "generate SynthME: synthetic micro-expressions from real face photos, in the"
        " CASME II layout, with exact ground-truth flow and head motion",
        "mellm synth --out data/synthme --n 200 --seed 0",
    )
    p.add_argument("--out", required=True, help="output folder (must be new or empty)")
    p.add_argument("--n", type=int, help="number of clips (default 200), or of long videos (default 1)")
    p.add_argument("--long", action="store_true", help="long videos with several expressions, blinks and head "
                   "drift, and their intervals, for spotting (long_000.mp4 + long_000.json)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same files")
    p.add_argument(
        "--photos",
        nargs="+",
        metavar="PHOTO",
        help="your own frontal face photos instead of the"
        " built-in ones (scikit-image's astronaut, matplotlib's Grace Hopper)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a previous SynthME output in --out")
    p.add_argument("--generator", default="synthme", help="dataset plugin that generates (default synthme)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    _param_option(p, "size=224")
    p.set_defaults(func=cmd_synth)
