"""``mellm serve``: the recipe's model behind HTTP on Ray Serve until SIGTERM or Ctrl-C (printing only)."""

from __future__ import annotations

import argparse
import sys

from mellm_core.cli.common import command, load_recipe_args, print_json, recipe_args
from mellm_core.serving.upload import API_KEY_ENV


def cmd_serve(args: argparse.Namespace) -> int:
    from mellm_core.model.predictor import default_adapter, model_note, train_command
    from mellm_core.stages.serve import run_serve

    recipe = load_recipe_args(args)
    note = model_note(recipe, default_adapter(recipe), train_command(args.recipe, args.overrides))
    if note:
        print(note, file=sys.stderr)

    def ready(url: str) -> None:
        if args.json:
            print_json({"url": url, "model": recipe.backbone.model})
        else:
            print(f"serving {recipe.backbone.model} on {url} (API at {url}v1/analyze; stop with Ctrl-C)")
        sys.stdout.flush()

    run_serve(recipe, ready, note)
    if not args.json:
        print("stopped")
    return 0


def register_serve(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "serve", "serve the recipe's model over HTTP on Ray Serve (web page, POST /v1/analyze)",
                "mellm serve recipes/quickstart.yaml serve.port=8000 serve.max_batch_size=8")
    recipe_args(p, "serve.port=9000 serve.adapter=runs/quickstart/train/adapter")
    p.add_argument("--json", action="store_true", help="print one JSON line with the URL once the server is ready")
    p.epilog = (f"{p.epilog}\n\nWith {API_KEY_ENV} set, requests need the header Authorization: Bearer <key> "
                "(/healthz is open).")
    p.set_defaults(func=cmd_serve)
