"""Small helpers every ``mellm`` subcommand module shares: subparser creation and JSON printing."""

from __future__ import annotations

import argparse
import json
from typing import Any


def print_json(obj: Any) -> None:
    """Print one JSON line (unicode kept as is)."""
    print(json.dumps(obj, ensure_ascii=False))


def command(sub: argparse._SubParsersAction, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with a runnable example."""
    parser = sub.add_parser(
        name, help=help, description=help, epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


def recipe_args(parser: argparse.ArgumentParser, override_example: str) -> None:
    """The recipe, its key=value overrides and ``--address``, for commands that run a recipe's stages."""
    parser.add_argument("recipe", help="recipe file or shipped recipe name (e.g. quickstart)")
    parser.add_argument("overrides", nargs="*", help=f"key=value overrides, e.g. {override_example}")
    parser.add_argument("--address", help="Ray cluster to attach to (default: the recipe's ray.address, "
                                          "else RAY_ADDRESS, else a local instance)")


def load_recipe_args(args: argparse.Namespace) -> Any:
    """The validated recipe of a command's ``recipe`` and ``overrides`` (``--address``, where the command has it,
    wins over ``ray.address``)."""
    from mellm_core.config import load_recipe

    extra = [f"ray.address={args.address}"] if getattr(args, "address", None) else []
    return load_recipe(args.recipe, [*args.overrides, *extra])
