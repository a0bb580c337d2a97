"""``mellm map`` (one pair, no Ray) and ``mellm maps`` (a dataset on Ray Data): parsing and printing only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mellm_core.cli.common import command, print_json
from mellm_core.errors import InputError, MellmError
from mellm_core.files.layout import RunLayout

SHORTCUTS = (("flow", "maps.flow"), ("colorizer", "maps.colorizer"), ("landmarker", "maps.landmarker"),
             ("head_motion", "maps.head_motion"))


def _add_map_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", help="recipe whose maps section to use (default: built-in defaults)")
    p.add_argument("--flow", help="flow plugin (tvl1, dis, farneback, ...)")
    p.add_argument("--colorizer", help="colorizer plugin (mmc, wheel, ...)")
    p.add_argument("--landmarker", help="landmark plugin (dlib68, none, ...)")
    p.add_argument("--head-motion", dest="head_motion", help="head-motion mode: nose, similarity, robust or none")
    p.add_argument("overrides", nargs="*", help="recipe overrides, e.g. maps.colorizer_params.step=45")
    p.add_argument("--json", action="store_true", help="print a JSON result line")


def _recipe(args: argparse.Namespace):
    from mellm_core.config import load_recipe

    overrides = [f"{key}={getattr(args, attr)}" for attr, key in SHORTCUTS if getattr(args, attr)]
    return load_recipe(args.recipe, [*args.overrides, *overrides])


def cmd_map(args: argparse.Namespace) -> int:
    from mellm_core.motion.mapper import Mapper, map_files

    out = Path(args.output)
    result = map_files(Mapper(_recipe(args).maps), args.onset, args.apex, out, args.save_flow)
    summary = {
        "output": str(out), "head_motion": result.head_motion, "nose": result.nose,
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
    }
    if args.json:
        print_json(summary)
    else:
        dx, dy = result.head_motion
        print(f"wrote {out}  (head motion {dx:+.3f}, {dy:+.3f} px; {result.timings['total_s']:.2f} s)")
    return 0


def register_map(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "map", "make the MMC-map of one onset/apex pair",
                 "mellm map onset.jpg apex.jpg -o map.png --head-motion robust --json")
    p.add_argument("onset", help="onset frame (any format OpenCV reads)")
    p.add_argument("apex", help="apex frame")
    p.add_argument("-o", "--output", required=True, help="output PNG")
    p.add_argument("--save-flow", help="also save the estimator's raw flow (float32 HxWx2 .npy)")
    _add_map_options(p)
    p.set_defaults(func=cmd_map)


def cmd_maps(args: argparse.Namespace) -> int:
    from mellm_core.data.datasets import load_samples
    from mellm_core.files.storage import Location
    from mellm_core.stages.data import recipe_samples
    from mellm_core.stages.maps import run_maps

    recipe = _recipe(args)
    if args.manifest:
        loaded = load_samples("manifest", args.manifest)
    elif args.dataset:
        if not args.root:
            raise InputError("--dataset needs --root (the dataset's folder)")
        loaded = load_samples(args.dataset, args.root)
    elif args.recipe:
        loaded = recipe_samples(recipe, progress=not args.json)
    else:
        raise InputError("say what to map: --dataset NAME --root DIR, --manifest FILE, or --recipe RECIPE")
    out = Location(args.out) if args.out else RunLayout(recipe.output_dir).maps
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    summary = run_maps(loaded.samples, recipe.maps, out, overwrite=args.overwrite or None, progress=not args.json,
                       address=args.address or recipe.ray.address)
    if args.json:
        print_json({k: v for k, v in summary.to_dict().items() if k in ("samples", "ok", "failed", "wall_s",
                                                                          "pairs_per_s", "skipped")})
    else:
        print(f"{summary.ok}/{summary.samples} maps ok, {summary.failed} failed, {summary.skipped} reused;"
              f" {summary.pairs_per_s:.2f} pairs/s; manifest: {summary.manifest}")
    if summary.ok == 0:
        raise MellmError(f"all {summary.samples} samples failed; see the error column of {summary.manifest}")
    return 0


def register_maps(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "maps", "make MMC-maps for a whole dataset on Ray Data",
                 "mellm maps --dataset casme2 --root /data/CASME2 --out runs/casme2/maps --json")
    src = p.add_argument_group("input (one of)")
    src.add_argument("--dataset", help="dataset plugin name (see `mellm plugins`)")
    src.add_argument("--root", help="dataset folder, with --dataset")
    src.add_argument("--manifest", help="CSV with sample_id, onset_path, apex_path[, subject, emotion, aus]")
    p.add_argument("--out", help="output folder (default: the recipe's output_dir/maps)")
    p.add_argument("--overwrite", action="store_true", help="recompute maps even when nothing changed")
    p.add_argument("--address", help="Ray cluster to attach to (default: RAY_ADDRESS or a local instance)")
    _add_map_options(p)
    p.set_defaults(func=cmd_maps)
