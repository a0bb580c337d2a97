"""The real model's path on a GPU, in one short run on the tiny model: train, resume, generate, throughput.

No GPU had run this code when it was written, so this is the script to run first on one (it needs torch,
transformers, peft and the project; not Ray). Each check prints a line and the run ends non-zero if one fails:

- training on the device: ``mellm train --local``'s loop, bf16 autocast, 2 x ``--steps`` steps, loss falling;
- resume: a run restored from the checkpoint at ``--steps`` (as ``train.resume`` and Ray Train's restarts do)
  ends with the uninterrupted run's weights (largest difference printed; bf16 kernels need not be bitwise equal);
- generation: batched greedy answers equal one-at-a-time answers, and the model saw the image at 3-D positions;
- throughput: the loop's tokens/s and samples/s.

    python benchmarks/gpu_check.py                  # on a GPU machine
    python benchmarks/gpu_check.py --device cpu     # the same checks on CPU (minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from train_mfu import write_rows

from mellm_core.config import load_recipe
from mellm_core.files.frames import read_rgb
from mellm_core.model.predictor import Predictor
from mellm_core.model.training import run_local
from mellm_core.model.trainloop import checkpoint_name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--steps", type=int, default=10, help="steps before the checkpoint (and after it)")
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no GPU visible to torch: run with --device cpu for the CPU path")
    out = args.out or Path(tempfile.mkdtemp(prefix="mellm-gpu-check-"))
    failed: list[str] = []

    def check(name: str, ok: bool, detail: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
        if not ok:
            failed.append(name)

    gpu = args.device == "cuda"
    settings = [f"train.use_gpu={str(gpu).lower()}", f"train.max_steps={2 * args.steps}", "train.batch_size=4",
                f"train.checkpoint_every={args.steps}", "train.num_workers=1", "train.log_every=2", "train.lr=1e-3",
                "train.keep_checkpoints=4", f"eval.gpus_per_actor={int(gpu)}", f"serve.model_gpus={int(gpu)}"]
    whole, resumed = out / "whole", out / "resumed"
    for folder in (whole, resumed):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        write_rows(folder, 32, 224, "fgmu-en")
    started = time.perf_counter()
    run_local(load_recipe("quickstart", [f"output_dir={whole}", *settings]), progress=False)
    lines = [json.loads(x) for x in (whole / "train" / "metrics.jsonl").read_text().splitlines()]
    check("training", lines[-1]["loss"] < lines[0]["loss"],
          f"{2 * args.steps} steps in {time.perf_counter() - started:.0f} s, loss {lines[0]['loss']:.3f} -> "
          f"{lines[-1]['loss']:.3f}")
    later = lines[1:] or lines
    print(f"     throughput: {sum(x['tokens_per_s'] for x in later) / len(later):.0f} tokens/s, "
          f"{sum(x['samples_per_s'] for x in later) / len(later):.2f} samples/s", flush=True)

    storage = resumed / "train" / "checkpoints" / "run"
    storage.mkdir(parents=True)
    name = checkpoint_name(args.steps)
    shutil.copytree(whole / "train" / "checkpoints" / "run" / name, storage / name)
    run_local(load_recipe("quickstart", [f"output_dir={resumed}", *settings, "train.resume=true"]), progress=False)
    a = load_file(whole / "train" / "adapter" / "adapter_model.safetensors")
    b = load_file(resumed / "train" / "adapter" / "adapter_model.safetensors")
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    scale = max(float(a[k].float().abs().max()) for k in a)
    check("resume", a.keys() == b.keys() and worst <= 1e-2 * scale,
          f"largest weight difference from the uninterrupted run {worst:.2e} (largest weight {scale:.2e})")

    recipe = load_recipe("quickstart", [f"output_dir={whole}", *settings])
    rows = [json.loads(x) for x in (whole / "instructions" / "train.jsonl").read_text().splitlines()][:4]
    predictor = Predictor(recipe, str(whole / "train" / "adapter"), device=args.device, task="meu",
                          labels=["happiness", "sadness", "surprise", "disgust", "fear", "anger", "contempt"])
    prompts = [r["messages"][0]["content"] for r in rows]
    images = [read_rgb(r["images"][0]) for r in rows]
    started = time.perf_counter()
    together = predictor.texts(prompts, images, 48)
    seconds = time.perf_counter() - started
    alone = [predictor.texts([p], [i], 48)[0] for p, i in zip(prompts, images, strict=True)]
    check("generation", together == alone, f"{len(rows)} answers in {seconds:.1f} s, batched == one at a time")
    deltas = predictor.module.model.rope_deltas
    check("image positions", deltas is not None and bool((deltas < 0).all()),
          f"rope deltas {deltas.flatten().tolist() if deltas is not None else None} (negative: 3-D M-RoPE)")
    print(f"{'all checks passed' if not failed else 'failed: ' + ', '.join(failed)} (working folder {out})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
