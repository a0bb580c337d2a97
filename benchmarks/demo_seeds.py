"""The demo over several seeds: is the headline figure a property of the recipe, or of one seed on one CPU?

Runs ``mellm demo`` (recipes/demo.yaml by default) once per seed, each from scratch into its own folder (the
seed changes the SynthME clips, the split's subjects stay, the initial weights and the batch order), and prints
per seed and as mean ± sd over seeds: ACC, UF1, UAR (label task, MER), ACC and AU F1 of the analysis task (MEU),
their chance levels, the binomial test's p-value against always-the-majority-class, the held-out MER accuracy
of the checkpoint at half the steps, and the wall time of each stage, with the CPU model. The worst seed is the
figure to quote beside the mean.

A from-scratch model's path turns on float rounding, which differs between CPUs because their vector units
differ. ``--kernels avx2`` runs every stage with the kernels an x86-64 CPU without AVX-512 runs (PyTorch's
vectorised ops, MKL's matrix products, oneDNN and OpenCV's dispatched code: e.g. an AMD EPYC before Zen 4),
which rounds differently from this machine's AVX-512 paths: another CPU's arithmetic on the same machine.

    python benchmarks/demo_seeds.py --seeds 5 --out runs/demo-seeds
    python benchmarks/demo_seeds.py --seeds 5 --out runs/demo-seeds-avx2 --kernels avx2
    python benchmarks/demo_seeds.py --seeds 2 --out /tmp/quick train.max_steps=100   # overrides go to every run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from table import print_table

# environment settings that make the libraries run the kernels of a CPU with fewer vector instructions
KERNELS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "OPENCV_CPU_DISABLE": "AVX512-SKX,AVX512-CLX,AVX_VNNI"},
}
METRICS = (("mer", "acc"), ("mer", "uf1"), ("mer", "uar"), ("mer", "halfway_acc"), ("meu", "acc"), ("meu", "au_f1"))


def cpu_model() -> str:
    """The CPU's model name (the float rounding that decides a from-scratch model's path depends on it)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_seed(seed: int, out: Path, recipe: str, overrides: list[str]) -> dict:
    """One demo run from scratch (keeping every checkpoint); its --json summary plus the wall time."""
    folder = out / f"seed-{seed}"
    cmd = [sys.executable, "-m", "mellm_core", "demo", "--recipe", recipe, "--out", str(folder), "--json",
           f"seed={seed}", "train.keep_checkpoints=1000", *overrides]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"seed {seed} failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if any(summary["reused"].values()):
        raise SystemExit(f"seed {seed}: {folder} held finished stages; give an empty --out to measure from scratch")
    return {**summary, "wall_s": wall, "halfway_acc": halfway_accuracy(folder, recipe, [f"seed={seed}", *overrides])}


def halfway_accuracy(folder: Path, name: str, overrides: list[str]) -> float | None:
    """Held-out MER accuracy of the checkpoint at half the steps (None when the run kept none there)."""
    from mellm_core.config import load_recipe
    from mellm_core.files.frames import read_rgb
    from mellm_core.files.layout import ADAPTER, RunLayout
    from mellm_core.model.predictor import Predictor
    from mellm_core.model.training import RUN
    from mellm_core.model.trainloop import checkpoint_name
    from mellm_core.summaries import InstructionsSummary
    from mellm_core.text.parse import parse_output

    recipe = load_recipe(name, [f"output_dir={folder}", *overrides])
    layout = RunLayout(folder)
    adapter = layout.checkpoints.path / RUN / checkpoint_name(recipe.train.max_steps // 2) / ADAPTER
    if not adapter.is_dir():
        return None
    rows = [json.loads(x) for x in layout.test_rows.read_text().splitlines()]
    rows = [r for r in rows if r["task"] == "mer"]
    labels = InstructionsSummary.labels_of(layout.instructions_summary)
    predictor = Predictor(recipe, str(adapter), task="mer", labels=labels)
    images = [read_rgb(r["images"][0]) if r["images"] else None for r in rows]  # None: the flow as text
    texts = predictor.texts([r["messages"][0]["content"] for r in rows], images)
    return statistics.mean(parse_output(t, labels).emotion == r["label"] for t, r in zip(texts, rows, strict=True))


def value(summary: dict, task: str, key: str) -> float | None:
    if key == "halfway_acc":
        return summary["halfway_acc"]
    block = summary["tasks"].get(task)
    return None if block is None else block.get(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0, 1, ...); default 5")
    parser.add_argument("--first", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--out", default="runs/demo-seeds", help="folder for the runs (one sub-folder per seed)")
    parser.add_argument("--recipe", default="demo", help="recipe (default: demo)")
    parser.add_argument("--kernels", choices=sorted(KERNELS), default="native",
                        help="the CPU kernels every stage runs: native (this CPU's) or avx2 (a CPU without AVX-512)")
    parser.add_argument("overrides", nargs="*", help="recipe overrides for every run, e.g. train.max_steps=300")
    args = parser.parse_args()
    os.environ.update(KERNELS[args.kernels])  # before torch loads here; the runs and Ray's workers inherit it
    out = Path(args.out)
    seeds = list(range(args.first, args.first + args.seeds))
    cpu = f"{cpu_model()}, {args.kernels} kernels"
    print(f"CPU: {cpu} ({platform.machine()}), recipe {args.recipe}, seeds {seeds}", flush=True)
    runs = {}
    for seed in seeds:
        runs[seed] = run_seed(seed, out, args.recipe, args.overrides)
        print(f"seed {seed} done in {runs[seed]['wall_s']:.0f} s", flush=True)

    columns = [f"{task.upper()} {key.upper().replace('_', ' ')}" for task, key in METRICS]  # HALFWAY ACC: at half
    rows = []
    for seed, s in runs.items():
        cells = [value(s, task, key) for task, key in METRICS]
        p, majority = value(s, "mer", "p_value"), value(s, "mer", "majority_acc")  # None: no label task (flowcnn)
        rows.append([str(seed), *(f"{c:.3f}" if c is not None else "-" for c in cells),
                     "-" if p is None else f"{p:.2g}", "-" if majority is None else f"{majority:.3f}",
                     f"{value(s, 'meu', 'au_f1_chance') or 0:.3f}",
                     f"{s['seconds']['maps']:.0f}", f"{s['seconds']['train']:.0f}", f"{s['seconds']['eval']:.0f}",
                     f"{s['wall_s']:.0f}"])
    means, worst = [], []
    for task, key in METRICS:
        values = [v for s in runs.values() if (v := value(s, task, key)) is not None]
        means.append(f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0:.3f}"
                     if values else "-")
        worst.append(f"{min(values):.3f}" if values else "-")
    stages = [[s["seconds"][k] for s in runs.values()] for k in ("maps", "train", "eval")]
    walls = [s["wall_s"] for s in runs.values()]
    rows.append(["mean ± sd", *means, "", "", "", *(f"{statistics.mean(v):.0f}" for v in [*stages, walls])])
    ps = [p for s in runs.values() if (p := value(s, "mer", "p_value")) is not None]
    rows.append(["worst", *worst, f"{max(ps):.2g}" if ps else "-", "", "",
                 *(f"{max(v):.0f}" for v in [*stages, walls])])
    print_table(f"mellm demo over {len(runs)} seeds on {cpu}",
                ["seed", *columns, "MER p vs majority", "MER majority ACC", "MEU AU F1 chance", "maps s", "train s",
                 "eval s", "wall s"],
                rows)
    beaten = sum(1 for s in runs.values() if value(s, "mer", "beats_majority"))
    au_scores = [(value(s, "meu", "au_f1") or 0, value(s, "meu", "au_f1_chance") or 0) for s in runs.values()]
    au_beaten = sum(1 for score, chance in au_scores if score > chance)
    print(f"MER beats always-the-majority-class (p < 0.05) in {beaten} of {len(runs)} seeds" if ps else
          "MER: n/a (the recipe trains no label task)", end="; ")
    print(f"MEU AU F1 beats the most-frequent-AU-set baseline in {au_beaten} of {len(runs)}"
          if any(score for score, _ in au_scores) else "MEU AU F1: n/a (no AUs answered in any seed)")


if __name__ == "__main__":
    main()
