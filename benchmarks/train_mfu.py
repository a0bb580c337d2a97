"""Tokens/s and model FLOPs utilization (MFU) of LoRA fine-tuning, for GPU machines that hold the weights.

Run:  timeout 1800 python benchmarks/train_mfu.py --model /models/Qwen2.5-VL-7B-Instruct --gpu a100-80gb
      options: --recipe R (default mellm_qwen2_5_vl_7b) --steps N --batch-size B --size PX, --gpu G (the peak
      FLOP/s of `mellm plan`'s GPUs) or --peak-tflops T, and any recipe key=value overrides

It measures twice, without and then with gradient checkpointing, and prints each line as soon as it is measured,
so a time limit (``timeout``) keeps what finished. Compare with ``mellm plan RECIPE --gpu G``'s estimate.

The recipe's own training loop (``mellm train --local``: the per-worker loop without Ray, one process per GPU
under torchrun) runs ``--steps`` steps on synthetic instruction rows of MEU length (maps of ``--size`` pixels
with coloured patches, targets of about 200 words), so no dataset is needed. Tokens/s is the loop's own figure
(``train/metrics.jsonl``) after the first logged window. MFU counts 4 N FLOPs per token for LoRA (forward 2 N,
backward through the frozen weights 2 N; no base-weight gradients) and 6 N for full training, N the parameters
of the base model that multiply each token (not the input embedding table, a lookup), divided by
the GPU's peak (one GPU, one process). Recomputation under gradient checkpointing is not counted (model FLOPs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mellm_core import create
from mellm_core.config import load_recipe
from mellm_core.files.storage import Location
from mellm_core.model.plan import GPUS
from mellm_core.model.training import run_local
from mellm_core.records import Instruction
from mellm_core.summaries import InstructionsSummary, PartCounts


def write_rows(out: Path, n: int, size: int, prompt: str) -> None:
    """Synthetic MEU-length instruction rows over maps with coloured patches."""
    words = create("prompt", prompt)
    labels = ["happiness", "sadness", "surprise", "disgust", "fear", "anger", "contempt"]
    rng = np.random.default_rng(0)
    (out / "maps").mkdir(parents=True)
    (out / "instructions").mkdir()
    rows = []
    for i in range(n):
        image = np.full((size, size, 3), 110, np.uint8)
        x, y = rng.integers(0, size - 64, 2)
        image[y:y + 64, x:x + 64] = rng.integers(0, 255, 3)
        path = out / "maps" / f"m{i}.png"
        Image.fromarray(image).save(path)
        label = labels[i % len(labels)]
        target = " ".join(["The left mouth corner shows a blue patch moving up-left with strong intensity."] * 16)
        messages = [{"role": "user", "content": words.user_prompt("meu", labels)},
                    {"role": "assistant", "content": f"{target} Micro-expression: {label}."}]
        rows.append(Instruction(messages, [str(path)], "meu", label, [], f"s{i}", "bench", f"p{i % 4}"))
    (out / "instructions" / "train.jsonl").write_text("".join(r.to_json() + "\n" for r in rows))
    part = PartCounts(n, n, {"meu": n})
    InstructionsSummary("fgmu-en", "all", labels, "subject", part, part, [], [], {}, {}, 0).write(
        Location(out / "instructions" / "summary.json"))


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters that multiply each token: all but the input embedding table, a lookup (545 M of the 7B's
    8.3 B, ~7 %), unless the output head shares it."""
    embedding = model.get_input_embeddings().weight
    tied = embedding is model.get_output_embeddings().weight
    return sum(p.numel() for p in model.parameters() if tied or p is not embedding)


def measure(args: argparse.Namespace, out: Path, checkpointing: bool) -> tuple[float, float]:
    """(tokens/s, samples/s) of ``--steps`` steps with gradient checkpointing on or off, after the first window."""
    recipe = load_recipe(args.recipe, [
        f"output_dir={out}", f"backbone.model={args.model}", f"train.max_steps={args.steps}",
        f"train.batch_size={args.batch_size}", "train.grad_accum=1", "train.num_workers=1", "train.use_gpu=true",
        "train.log_every=5", f"train.checkpoint_every={args.steps}",
        f"train.gradient_checkpointing={str(checkpointing).lower()}", *args.overrides])
    shutil.rmtree(out / "train", ignore_errors=True)
    run_local(recipe, progress=True)
    lines = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    later = lines[1:] or lines
    return (sum(x["tokens_per_s"] for x in later) / len(later), sum(x["samples_per_s"] for x in later) / len(later))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="backbone.model: the weights folder")
    parser.add_argument("--recipe", default="mellm_qwen2_5_vl_7b")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--gpu", default="a100-80gb", choices=list(GPUS), help="sets the peak FLOP/s (mellm plan's)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of one GPU (default: --gpu's)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.size <= 64:
        parser.error(f"--size must be more than 64 pixels (each map holds a 64-pixel patch of motion), got {args.size}")
    if not torch.cuda.is_available():
        raise SystemExit("train_mfu.py measures GPU training; no GPU is visible to torch here")
    peak = args.peak_tflops or GPUS[args.gpu][0] / 1e12
    out = Path(tempfile.mkdtemp(prefix="mellm-mfu-"))
    base = load_recipe(args.recipe, [f"backbone.model={args.model}", *args.overrides])
    write_rows(out, 8 * args.batch_size, args.size, base.instructions.prompt)
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(AutoConfig.from_pretrained(args.model))
    params = matmul_params(model)
    full = bool(base.backbone.params.get("train_base"))
    per_token = (6 if full else 4) * params
    print(f"model {args.model}: {params / 1e9:.2f} B parameters, {'full' if full else 'LoRA'} training, "
          f"{per_token // params} N FLOPs per token, one GPU of {peak:g} TFLOPS", flush=True)
    for checkpointing in (False, True):  # each line prints when measured: a time limit keeps what finished
        tokens, samples = measure(args, out, checkpointing)
        mfu = tokens * per_token / (peak * 1e12)
        print(f"gradient checkpointing {'on ' if checkpointing else 'off'}: tokens/s {tokens:.0f}  "
              f"samples/s {samples:.2f}  MFU {100 * mfu:.1f}%", flush=True)


if __name__ == "__main__":
    main()
