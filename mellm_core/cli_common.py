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
