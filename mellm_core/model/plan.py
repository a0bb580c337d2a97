"""What a training run will cost before any weights exist: parameters, tokens, memory per worker, step time.

The backbone plugin reports the model's shape (``ModelShape``: built on the meta device, its LoRA applied as
training applies it, counted); this module turns it into memory and time with the usual estimates for
transformer training in bf16 (activations per token and layer from the layer's widths; FLOPs from 2 x parameters
x tokens per matmul pass) on a named GPU at a stated utilisation of its peak. That utilisation counts the FLOPs
executed, recomputation included: ``benchmarks/train_mfu.py``'s MFU leaves recomputation out, so with gradient
checkpointing its figure is about 2/3 of the utilisation to give here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from mellm_core.config import Recipe
from mellm_core.errors import InputError
from mellm_core.files.layout import RunLayout
from mellm_core.kinds import PlannableBackbone
from mellm_core.motion.facs import PROTOTYPES
from mellm_core.plugins import get_registry
from mellm_core.text.fgmu import example_analyses, example_regions
from mellm_core.text.labels import get_protocol
from mellm_core.text.turns import takes_text, user_turn

GB = 1e9
OVERHEAD_GB = 1.0  # CUDA context, allocator slack and kernels' workspaces: a stated allowance, not a measurement
# Peak dense bf16 tensor FLOP/s (no sparsity) and memory of the GPUs users plan for, from the vendors' data sheets.
GPUS: dict[str, tuple[float, float]] = {
    "a100-40gb": (312e12, 40), "a100-80gb": (312e12, 80), "h100-80gb": (989e12, 80), "h200-141gb": (989e12, 141),
    "l40s-48gb": (362e12, 48), "l4-24gb": (121e12, 24), "a10-24gb": (125e12, 24),
}


@dataclass
class Tower:
    """A stack of transformer layers that activations are kept for: the vision encoder or the LM decoder."""

    name: str
    layers: int
    hidden: int
    intermediate: int
    params: int  # weights of its layers (what the matmuls multiply every token by)
    tokens: int  # tokens (or image patches) per sample through it
    trains: bool = True  # gradients flow through it (a frozen vision tower before frozen layers: no backward)
    dropout_inputs: int = 0  # per layer, the input widths of its LoRA-wrapped projections when LoRA has dropout


@dataclass
class ModelShape:
    """What a backbone plugin reports for one sample of the longest instruction."""

    params_total: int  # as peft counts them: the base model's and the adapter's
    params_trainable: int
    lora_targets: list[str]  # the module-name suffixes LoRA wraps
    train_base: bool  # every base weight trains (tiny models), not LoRA alone
    weight_bytes: int  # bytes per base weight (2 for bf16)
    vocab: int
    image_tokens: int
    seq_len: int  # tokens of the longest instruction, image included
    seq_len_exact: bool  # counted with the model's tokenizer (else estimated at 4 UTF-8 bytes a token)
    answer_tokens: int  # its target's tokens: the positions whose logits the loss needs
    towers: list[Tower]


@dataclass
class Plan:
    shape: ModelShape
    gpu: str
    mfu: float
    samples_per_worker: int  # per optimizer step
    micro_batch: int
    gradient_checkpointing: bool
    memory_gb: dict[str, float]
    step_s: dict[str, float]  # "plain" and "checkpointed"

    def summary(self) -> dict[str, Any]:
        """The ``--json`` record."""
        s = self.shape
        return {"params_total": s.params_total, "params_trainable": s.params_trainable,
                "lora_targets": s.lora_targets, "image_tokens": s.image_tokens, "seq_len": s.seq_len,
                "seq_len_exact": s.seq_len_exact, "memory_gb": self.memory_gb,
                "step_s": sig3(self.step_s[self.setting]),
                "step_s_by_setting": {k: sig3(v) for k, v in self.step_s.items()},
                "tokens_per_s": sig3(self.tokens_per_s), "gpu": self.gpu, "gpu_memory_gb": GPUS[self.gpu][1],
                "mfu": self.mfu, "gradient_checkpointing": self.gradient_checkpointing, "fits": self.fits}

    @property
    def setting(self) -> str:
        return "checkpointed" if self.gradient_checkpointing else "plain"

    @property
    def tokens_per_s(self) -> float:
        """Per worker, at the recipe's setting."""
        return self.samples_per_worker * self.shape.seq_len / self.step_s[self.setting]

    @property
    def fits(self) -> bool:
        """Training's peak fits the GPU, and so does loading."""
        return max(self.memory_gb["total"], self.memory_gb["load"]) <= GPUS[self.gpu][1]


def sig3(value: float) -> float:
    """``value`` to 3 significant digits: an estimate's honest precision."""
    return float(f"{value:.3g}")


def longest_instruction(recipe: Recipe) -> tuple[str, str, tuple[int, int] | None]:
    """(user prompt, target, its map's (height, width) when known) of the longest instruction: from the built
    instructions when they exist, else what the recipe's prompt plugin writes for each emotion's prototype
    analysis (an estimate of real data)."""
    layout = RunLayout(recipe.output_dir)
    if layout.train_rows.is_file():
        rows = [json.loads(line) for line in layout.train_rows.read_text().splitlines() if line.strip()]
        triples = [(r["messages"][0]["content"], r["messages"][1]["content"], (r.get("images") or [None])[0])
                   for r in rows]
    else:
        prompt = get_registry().create("prompt", recipe.instructions.prompt, **recipe.instructions.prompt_params)
        labels = list(get_protocol(recipe.instructions.protocol).classes or sorted(PROTOTYPES))
        regions = example_regions() if takes_text(prompt) else None
        triples = [(user_turn(prompt, "meu", labels, regions), prompt.meu_target(a), None) for a in example_analyses()]
        triples += [(user_turn(prompt, "mer", labels, regions), prompt.mer_target(e), None) for e in labels]
    if not triples:
        raise InputError(f"{layout.train_rows} holds no instructions to measure")
    user, target, image = max(triples, key=lambda t: len((t[0] + t[1]).encode()))
    size = None
    if image and Path(image).is_file():
        with Image.open(image) as opened:
            size = (opened.height, opened.width)
    elif recipe.maps.max_side:
        size = (recipe.maps.max_side, recipe.maps.max_side)
    return user, target, size


def activation_bytes(tower: Tower, micro_batch: int, checkpointed: bool) -> float:
    """bf16 activations kept for the backward pass: per token and layer the inputs of the norms, projections,
    attention output and the SwiGLU's three intermediate products, about 14 x hidden + 6 x intermediate bytes
    (memory-efficient attention keeps no tokens x tokens matrix), plus LoRA dropout's copy and mask of each wrapped
    projection's input (3 bytes an element). Checkpointing keeps each layer's input and recomputes one layer at a
    time. A tower no gradient flows through keeps nothing."""
    if not tower.trains:
        return 0.0
    per_layer = tower.tokens * micro_batch * (14 * tower.hidden + 6 * tower.intermediate + 3 * tower.dropout_inputs)
    if checkpointed:
        return tower.layers * tower.tokens * micro_batch * 2 * tower.hidden + per_layer
    return tower.layers * per_layer


def step_flops(shape: ModelShape, checkpointed: bool) -> float:
    """FLOPs one sample costs in a training step, as executed: per tower a forward pass (2 FLOPs per weight and
    token; in the LM also attention's two token-by-token products and the logits at the answer's positions), and
    where gradients flow, the input gradients (as much again), the weight gradients when every base weight trains,
    and with checkpointing a second forward pass."""
    total = 0.0
    for tower in shape.towers:
        forward = 2.0 * tower.params * tower.tokens
        if tower is shape.towers[-1]:
            forward += 4.0 * tower.layers * tower.tokens ** 2 * tower.hidden / 2  # causal: half the pairs
            forward += 2.0 * shape.answer_tokens * tower.hidden * shape.vocab
        passes = 1 + (1 + shape.train_base + checkpointed if tower.trains else 0)
        total += forward * passes
    return total


def make_plan(recipe: Recipe, gpu: str = "a100-80gb", mfu: float = 0.35) -> Plan:
    """The plan for ``recipe``'s training on ``gpu`` at ``mfu``."""
    if gpu not in GPUS:
        raise InputError(f"unknown GPU '{gpu}': choose one of {', '.join(GPUS)}")
    if not 0 < mfu <= 1:
        raise InputError(f"mfu must be in (0, 1], got {mfu}")
    backbone = get_registry().create("backbone", recipe.backbone.name, **recipe.backbone.params)
    if not isinstance(backbone, PlannableBackbone):
        raise InputError(f"backbone '{recipe.backbone.name}' cannot be planned: it reports no model shape")
    user, target, size = longest_instruction(recipe)
    shape = backbone.shape(recipe.backbone.model, recipe.train, size, user, target)
    train = recipe.train
    samples = train.batch_size // train.num_workers
    micro = samples // train.grad_accum
    checkpointing = train.gradient_checkpointing
    # LoRA weights live in fp32 beside the base's, with fp32 gradients (and AdamW moments); a base that trains
    # keeps its gradients and moments in its own dtype. DDP adds a bucket copy of the gradients; FSDP keeps a
    # 1/workers shard of weights, gradients and moments, and gathers two layers whole at a time (one prefetched).
    grad_bytes = shape.weight_bytes if shape.train_base else 4
    base, added = ((shape.params_total, grad_bytes) if shape.train_base
                   else (shape.params_total - shape.params_trainable, 4 + grad_bytes))
    sharded = train.strategy == "fsdp" and train.num_workers > 1
    share = 1 / train.num_workers if sharded else 1
    layer = max(t.params / t.layers for t in shape.towers)
    act = {c: sum(activation_bytes(t, micro, c) for t in shape.towers) for c in (False, True)}
    memory = {"weights": base * shape.weight_bytes * share,
              "trainable_weights_and_grads": shape.params_trainable * added * share,
              "ddp_buckets": shape.params_trainable * grad_bytes if train.num_workers > 1 and not sharded else 0,
              "fsdp_gathered": 2 * layer * (shape.weight_bytes + 4 * shape.params_trainable / shape.params_total)
              if sharded else 0,
              "optimizer": shape.params_trainable * 2 * grad_bytes * share,
              "activations": act[False], "activations_checkpointed": act[True],
              "logits": micro * shape.answer_tokens * shape.vocab * 4 * 2, "overhead": OVERHEAD_GB * GB}
    fixed = sum(v for k, v in memory.items() if not k.startswith("activations"))
    memory_gb = {k: round(v / GB, 3) for k, v in memory.items()}
    memory_gb["total"] = round((fixed + act[checkpointing]) / GB, 3)
    whole = base * shape.weight_bytes + shape.params_trainable * 4
    # FSDP loads sharded: rank 0 reads the weights into host memory and sends each worker its shard, one weight
    # at a time (the largest: the LM's embedding); otherwise every worker reads them whole, then moves them
    largest = shape.vocab * shape.towers[-1].hidden * shape.weight_bytes
    memory_gb["load"] = round(((whole * share + largest if sharded else whole) + OVERHEAD_GB * GB) / GB, 3)
    memory_gb["load_host"] = round(whole / GB, 3)
    peak = GPUS[gpu][0] * mfu
    step = {"plain": samples * step_flops(shape, False) / peak,
            "checkpointed": samples * step_flops(shape, True) / peak}
    return Plan(shape, gpu, mfu, samples, micro, checkpointing, memory_gb, step)


def describe(plan: Plan) -> list[str]:
    """The plan as lines for a terminal."""
    s, m = plan.shape, plan.memory_gb
    sync = f"FSDP's gathered layers {m['fsdp_gathered']}" if m["fsdp_gathered"] else f"DDP buckets {m['ddp_buckets']}"
    loading = (f"(rank 0 reads it into {m['load_host']} of host memory and sends each worker its shard)"
               if m["fsdp_gathered"] else f"(each worker reads it into {m['load_host']} of host memory first)")
    seq = "" if s.seq_len_exact else " (estimated: the tokenizer is not available here, 4 bytes a token)"
    return [
        f"parameters: {s.params_total:,} total, {s.params_trainable:,} trainable "
        f"({100 * s.params_trainable / s.params_total:.2f} %)",
        f"LoRA in: {', '.join(s.lora_targets) or '(none)'}"
        + ("; every base weight trains too" if s.train_base else ""),
        f"per sample: {s.image_tokens} image tokens, longest instruction {s.seq_len} tokens{seq}, "
        f"of which {s.answer_tokens} answer",
        f"per worker and step: {plan.samples_per_worker} samples in micro-batches of {plan.micro_batch}",
        f"memory per worker (GB){', weights sharded over the workers (FSDP)' if m['fsdp_gathered'] else ''}:",
        f"  weights {m['weights']}, trainable weights and grads {m['trainable_weights_and_grads']}, "
        f"{sync}, AdamW state {m['optimizer']}, logits {m['logits']}, "
        f"overhead {m['overhead']}",
        f"  activations {m['activations']} without gradient checkpointing, {m['activations_checkpointed']} with",
        f"  total {m['total']} ({'with' if plan.gradient_checkpointing else 'without'} checkpointing, as the "
        f"recipe sets); loading the model takes {m['load']} {loading}; "
        f"the {plan.gpu} has {GPUS[plan.gpu][1]:g} GB: " + ("fits" if plan.fits else "does NOT fit"),
        f"step time at {plan.mfu:.0%} of the peak: {sig3(plan.step_s['plain'])} s without checkpointing, "
        f"{sig3(plan.step_s['checkpointed'])} s with; {sig3(plan.tokens_per_s):,.0f} tokens/s per worker",
    ]


