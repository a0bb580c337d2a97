"""The ``mellm`` command: argument parsing and printing only; the work happens in the stages and the core."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from mellm_core import __version__
from mellm_core.cli.common import command, load_recipe_args, print_json
from mellm_core.cli.data import register_data, register_synth
from mellm_core.cli.demo import register_demo
from mellm_core.cli.eval import register_analyze, register_eval
from mellm_core.cli.instructions import register_instructions
from mellm_core.cli.maps import register_map, register_maps
from mellm_core.cli.plan import register_plan
from mellm_core.cli.report import register_report
from mellm_core.cli.score import register_score
from mellm_core.cli.serve import register_serve
from mellm_core.cli.spot import register_spot
from mellm_core.cli.train import register_export, register_train
from mellm_core.cli.vqa import register_vqa
from mellm_core.errors import ConfigError, MellmError

# ---------------------------------------------------------------- plugins


def cmd_plugins(args: argparse.Namespace) -> int:
    from mellm_core.plugins import get_registry

    registry = get_registry()
    if args.params:
        return _print_params(registry, args.params, args.json)
    table = registry.table()
    if args.json:
        print_json({kind: sorted(entries) for kind, entries in table.items()})
    else:
        for kind, entries in table.items():
            print(f"{kind}:")
            if not entries:
                print("  (none installed)")
            for name in sorted(entries):
                entry = entries[name]
                origin = f"{entry.module} ({entry.distribution or 'registered at run time'})"
                print(f"  {name:<12} {entry.spec.description}  [{origin}]")
    for problem in registry.load_errors:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def _print_params(registry, target: str, as_json: bool) -> int:
    """``mellm plugins --params KIND.NAME``: the plugin's parameters with types, defaults and help."""
    from dataclasses import asdict

    from mellm_core.plugins import describe_params

    kind, _, name = target.partition(".")
    if not name:
        raise MellmError(f"--params takes KIND.NAME (e.g. maps: flow.tvl1, landmarker.dlib68), got '{target}'")
    docs = describe_params(registry.get(kind, name).spec.params)
    if as_json:
        print_json([asdict(d) for d in docs])
        return 0
    if not docs:
        print(f"{kind} plugin '{name}' takes no parameters")
    for d in docs:
        print(f"{d.name} ({d.type}, default {d.default!r})\n    {d.help or '(no help)'}")
    return 0


# ---------------------------------------------------------------- config


def cmd_config_show(args: argparse.Namespace) -> int:
    from mellm_core.config import device_warnings, to_yaml, unchecked_kinds

    recipe = load_recipe_args(args)
    print(to_yaml(recipe), end="")
    for warning in device_warnings(recipe).values():
        print(f"warning: {warning}", file=sys.stderr)
    for key in unchecked_kinds(recipe):
        print(f"note: {key} is not checked: no plugin of its kind is installed yet", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mellm",
        description="Micro-expression understanding with a flow-guided multimodal LLM.",
        epilog="example:\n  mellm plugins --json\n  mellm config show recipes/quickstart.yaml train.lr=5e-5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"mellm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = command(sub, "plugins", "list installed plugins by kind, with where each comes from; or one's parameters",
                "mellm plugins --json\n  mellm plugins --params landmarker.dlib68")
    p.add_argument("--json", action="store_true", help="print {kind: [names]} (or the parameters) as JSON")
    p.add_argument("--params", metavar="KIND.NAME", help="show a plugin's parameters: type, default and help")
    p.set_defaults(func=cmd_plugins)

    config = command(sub, "config", "inspect recipes", "mellm config show recipes/quickstart.yaml train.lr=5e-5")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    p = command(config_sub, "show", "print the resolved recipe (non-zero exit on any problem)",
                 "mellm config show recipes/quickstart.yaml maps.flow=dis")
    p.add_argument("recipe", help="recipe file or shipped recipe name (e.g. quickstart)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.lr=5e-5")
    p.set_defaults(func=cmd_config_show)

    for register in COMMANDS:
        register(sub)
    return parser


# Each entry adds one subcommand: register(subparsers) -> None.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    register_data, register_synth, register_map, register_maps, register_instructions, register_score,
    register_plan, register_train, register_export, register_eval, register_analyze, register_spot, register_demo,
    register_serve, register_report, register_vqa,
]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides may follow options (argparse stops filling positionals after them)
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        if args.debug:
            raise
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except MellmError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, UnicodeError) as exc:  # a file the user named cannot be read or written
        if args.debug:
            raise
        if isinstance(exc, BrokenPipeError):  # output piped into `head` and the like: not an error
            sys.stderr.close()
            return 0
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
