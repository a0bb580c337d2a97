"""Training throughput on the tiny backbone: the plain loop vs Ray Train with 1 and 2 workers, in one run.

Run:  python benchmarks/train_throughput.py              (40 steps per configuration on the quickstart data)
      options: --steps N --batch-size B --output-dir DIR (a quickstart run; its data, maps and instructions are
      built first when absent)

The same loop (``mellm_core.model.trainloop.train_worker``), data, global batch and seed run three ways:

  (a) ``run_local``: one process, torch limited to 1 thread          (what one Ray worker with 1 CPU gets)
  (b) Ray Train, 1 worker, 1 CPU                                     overhead = (a) / (b) samples/s - 1
  (c) Ray Train, 2 workers, 1 CPU each, DDP over gloo                scaling efficiency = (c) / (b) / 2

Samples/s is the loop's own figure (``train/metrics.jsonl``) averaged after the first logged window, so model
loading, Ray start-up and the first steps' warm-up are outside it; the wall-clock column includes them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from table import print_table

from mellm_core.config import load_recipe


def steady(train_dir: Path) -> float:
    lines = [json.loads(x) for x in (train_dir / "metrics.jsonl").read_text().splitlines()]
    later = lines[1:] or lines
    return sum(x["samples_per_s"] for x in later) / len(later)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--output-dir", default="runs/quickstart")
    args = parser.parse_args()

    from mellm_core.model.training import run_local
    from mellm_core.stages.instructions import run_instructions
    from mellm_core.stages.maps import run_recipe_maps
    from mellm_core.stages.train import run_train

    base = load_recipe("quickstart", [f"output_dir={args.output_dir}"])
    run_recipe_maps(base)
    run_instructions(base)
    work = Path(args.output_dir) / "bench-train"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    common = [f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}", "train.log_every=5",
              f"train.checkpoint_every={args.steps}", "train.cpus_per_worker=1"]
    rows, results = [], {}
    for name, workers, ray_run in (("plain loop, 1 thread", 1, False), ("Ray Train, 1 worker", 1, True),
                                   ("Ray Train, 2 workers", 2, True)):
        out = work / name.replace(" ", "_").replace(",", "")
        shutil.copytree(Path(args.output_dir) / "instructions", out / "instructions")
        recipe = load_recipe("quickstart", [f"output_dir={out}", f"train.num_workers={workers}", *common])
        torch.set_num_threads(1)
        started = time.perf_counter()
        summary = run_train(recipe, progress=False) if ray_run else run_local(recipe, progress=False)
        wall = time.perf_counter() - started
        results[name] = steady(out / "train")
        rows.append([name, workers, f"{results[name]:.2f}", f"{args.batch_size / results[name]:.3f}",
                     f"{summary.final_loss:.3f}" if summary else "-", f"{wall:.0f}"])
    print_table(f"tiny qwen2_5_vl, {args.steps} steps, global batch {args.batch_size}",
                ["configuration", "workers", "samples/s", "s/step", "final loss", "wall s"], rows)
    plain, one, two = (results[k] for k in ("plain loop, 1 thread", "Ray Train, 1 worker", "Ray Train, 2 workers"))
    print(f"Ray Train overhead (1 worker vs plain loop): {100 * (plain / one - 1):+.1f}%")
    print(f"scaling efficiency (2 workers vs 1): {100 * two / one / 2:.0f}%  (speed-up {two / one:.2f}x)")


if __name__ == "__main__":
    main()
