"""When does the demo's tiny model start to read the image? Held-out accuracy along training, per variant.

A Qwen2.5-VL trained from random weights first learns the answer prior (it says the majority class), then, after
a plateau whose length depends on the seed and on the CPU's float rounding, abruptly learns to read the image.
This script trains the tiny model in this process (the training loop of ``mellm train --local``, one thread)
on the instructions of a finished demo folder and prints the held-out MER accuracy every ``--every`` steps for
each variant and seed, so the variants are compared on the same data, seeds and machine:

    mellm demo --out runs/demo                       # builds the data, maps and instructions once
    python benchmarks/learning_curves.py runs/demo --seeds 0 1 --steps 750 --every 250

Variants (``--variants``): ``px112`` (16 image tokens: the tiny model's default image size), ``px224`` (49 image
tokens: the whole 192 px map), ``px224-mixed`` (MEU and MER rows mixed from the first step) and
``px224-curriculum`` (MER rows only for the first ``--curriculum`` steps, then MEU and MER: the demo's recipe).
``--balance`` draws every emotion equally often (``train.balance``, the demo's setting), ``--weight-decay`` and
``--lr`` set AdamW's (decay on weight matrices, as training does; ``--decay-vectors`` decays norm gains and
biases too), ``--lr-scale PATTERN=FACTOR`` a learning-rate factor for matching parameters (``train.lr_scales``),
and ``--param KEY=VALUE`` any backbone parameter, for every variant.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from table import print_table

from mellm_core.config import TrainConfig
from mellm_core.files.frames import read_rgb
from mellm_core.files.layout import RunLayout
from mellm_core.model.trainloop import World, cosine, micro_batches, param_groups, seed_everything
from mellm_core.plugins import get_registry
from mellm_core.text.parse import parse_output

VARIANTS = {  # name -> (backbone params, training tasks, curriculum)
    "px112": ({"max_pixels": 112 * 112}, ["mer"], False),
    "px224": ({"max_pixels": 224 * 224}, ["mer"], False),
    "px224-mixed": ({"max_pixels": 224 * 224}, ["meu", "mer"], False),
    "px224-curriculum": ({"max_pixels": 224 * 224}, ["meu", "mer"], True),
}


def accuracy(backbone, module, rows: list[dict], images: list[np.ndarray], labels: list[str]) -> float:
    """Held-out MER accuracy with greedy answers, as ``mellm eval`` reads them."""
    module.eval()
    texts = []
    for i in range(0, len(rows), 25):
        texts += backbone.generate(module, [r["messages"][0]["content"] for r in rows[i:i + 25]], images[i:i + 25], 8)
    module.train()
    return float(np.mean([parse_output(t, labels).emotion == r["label"] for t, r in zip(texts, rows, strict=True)]))


def curve(folder: Path, variant: str, seed: int, steps: int, every: int, curriculum: int, extra: dict,
          weight_decay: float = 0.0, lr: float = 1e-3, balance: bool = False, decay_vectors: bool = False,
          lr_scales: dict[str, float] | None = None) -> list[float]:
    """Held-out accuracy after every ``every`` steps of one run."""
    params, tasks, staged = VARIANTS[variant]
    params = {**params, **extra}
    layout = RunLayout(folder)
    rows = [json.loads(x) for x in layout.train_rows.read_text().splitlines()]
    test = [json.loads(x) for x in layout.test_rows.read_text().splitlines()]
    rows = [r for r in rows if r["task"] in tasks]
    test = [r for r in test if r["task"] == "mer"]
    if not rows or not test:
        raise SystemExit(f"{folder}/instructions holds no {'/'.join(tasks)} training or MER test rows: build them "
                         "with the demo recipe (train_tasks and test_tasks [meu, mer])")
    labels = sorted({r["label"] for r in rows})
    cfg = TrainConfig(lora_rank=16, lora_alpha=32, lora_dropout=0.0, lr=lr, warmup_steps=50, max_steps=steps,
                      batch_size=8, num_workers=1, curriculum_tasks=["mer"] if staged else [],
                      curriculum_steps=curriculum if staged else 0, balance=balance, weight_decay=weight_decay,
                      lr_scales=lr_scales or {})
    seed_everything(seed)
    backbone = get_registry().create("backbone", "qwen2_5_vl", train_base=True, **params)
    module = backbone.load("tiny-random", train=cfg, labels=labels)
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    trainable = [p for _, p in named]
    groups = param_groups(named, cfg)
    if decay_vectors:
        groups = [{**g, "weight_decay": weight_decay} for g in groups]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine(cfg))
    images = [read_rgb(r["images"][0]) for r in test]
    out = []
    for step in range(steps):
        for chunk in micro_batches(rows, cfg, seed, step, World()):
            loss, _ = backbone.loss(module, backbone.collate(chunk))
            loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % every == 0:
            out.append(accuracy(backbone, module, test, images, labels))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a demo output folder with instructions/ built")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=750)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--curriculum", type=int, default=400, help="MER-only steps of px224-curriculum")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (train.weight_decay)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (train.lr)")
    parser.add_argument("--balance", action="store_true", help="every label equally often (train.balance)")
    parser.add_argument("--decay-vectors", action="store_true",
                        help="decay norm gains and biases too (training decays weight matrices only)")
    parser.add_argument("--lr-scale", action="append", default=[], metavar="PATTERN=FACTOR",
                        help="learning-rate factor of matching parameters (train.lr_scales), e.g. visual=0.3")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a backbone param for every variant, e.g. --param tiny_rope_theta=100")
    args = parser.parse_args()
    torch.set_num_threads(1)
    marks = list(range(args.every, args.steps + 1, args.every))
    extra = {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in args.param)}
    rows = []
    for variant in args.variants:
        for seed in args.seeds:
            started = time.perf_counter()
            accs = curve(args.folder, variant, seed, args.steps, args.every, args.curriculum, extra,
                         args.weight_decay, args.lr, args.balance, args.decay_vectors,
                         {k: float(v) for k, v in (x.split("=", 1) for x in args.lr_scale)})
            rows.append([variant, seed, *(f"{a:.2f}" for a in accs), f"{time.perf_counter() - started:.0f}"])
            print(f"{variant} seed {seed}: {accs}", flush=True)
    test = [json.loads(x) for x in RunLayout(args.folder).test_rows.read_text().splitlines()]
    gold = [r["label"] for r in test if r["task"] == "mer"]
    majority = max(gold.count(g) for g in set(gold)) / len(gold)
    print_table(f"held-out MER accuracy by step (always the majority class: {majority:.2f})",
                ["variant", "seed", *(f"step {m}" for m in marks), "seconds"], rows)


if __name__ == "__main__":
    main()
