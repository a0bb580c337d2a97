"""``mellm train`` and ``mellm export``: fine-tuning a recipe's backbone and merging its adapter (printing only)."""

from __future__ import annotations

import argparse

from mellm_core.cli.common import command, load_recipe_args, print_json, recipe_args

SUMMARY_KEYS = ("start_step", "end_step", "adapter", "final_loss", "samples_per_s")


def cmd_train(args: argparse.Namespace) -> int:
    recipe = load_recipe_args(args)
    if args.local:
        from mellm_core.model.training import run_local

        local = run_local(recipe, progress=not args.json, overwrite=args.overwrite)
        if local is None:  # a non-zero rank of a torchrun launch: rank 0 reports
            return 0
        summary = local
    else:
        from mellm_core.stages.train import run_train

        summary = run_train(recipe, progress=not args.json, overwrite=args.overwrite)
    if args.json:
        data = summary.to_dict()
        print_json({k: data[k] for k in SUMMARY_KEYS})
    elif summary.skipped:
        print(f"train unchanged: adapter {summary.adapter} (step {summary.end_step})")
    else:
        print(f"trained steps {summary.start_step}..{summary.end_step} (final loss {summary.final_loss}, "
              f"{summary.samples_per_s} samples/s); adapter in {summary.adapter}")
        if summary.kept:
            figures = ", ".join(f"{k} {v}" for k, v in summary.kept.items() if k != "step")
            print(f"kept the adapter of step {summary.kept['step']}, the best validation ({figures}) on "
                  f"{len(summary.val_subjects)} held-out training subjects")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mellm_core.model.adapters import export_merged

    out, adapter = export_merged(load_recipe_args(args), args.adapter, args.out)
    if args.json:
        print_json({"merged": str(out.resolve()), "adapter": str(adapter.resolve())})
    else:
        print(f"merged model written to {out}")
    return 0


def register_train(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "train", "fine-tune the recipe's backbone with LoRA on Ray Train (builds missing data first)",
                "mellm train recipes/quickstart.yaml train.max_steps=200 --json")
    recipe_args(p, "train.num_workers=1 train.resume=true")
    p.add_argument("--local", action="store_true",
                   help="run the training loop in this process without Ray (instructions must exist; "
                        "works under torchrun)")
    p.add_argument("--overwrite", action="store_true",
                   help="with train.resume=false, start over even on an unfinished run's checkpoints (deleting them)")
    p.add_argument("--json", action="store_true", help="print a JSON summary line")
    p.set_defaults(func=cmd_train)


def register_export(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "export", "write a full model with the trained adapter merged in",
                "mellm export recipes/quickstart.yaml --merge --out runs/quickstart/merged")
    p.add_argument("recipe", help="recipe file or shipped recipe name")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.add_argument("--merge", action="store_true", required=True, help="merge the adapter into the base weights")
    p.add_argument("--adapter", help="adapter folder (default: output_dir/train/adapter)")
    p.add_argument("--out", help="output folder (default: output_dir/train/merged)")
    p.add_argument("--json", action="store_true", help="print a JSON summary line")
    p.set_defaults(func=cmd_export)
