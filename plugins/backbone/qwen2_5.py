"""Qwen2.5 / Qwen3 instruct models, text only, with LoRA in the decoder: the flow-as-text path's backbone.

Models load through transformers' ``AutoModelForCausalLM`` (safetensors only, no remote code): a local folder, a
hub id (``Qwen/Qwen2.5-7B-Instruct``, ``Qwen/Qwen3-8B``), or ``tiny-random``, a tiny Qwen2 built locally once,
whose tokenizer learns the FGMU and flow-text prompts' texts. Prompts are written by the model's own chat template
with thinking off (Qwen3's empty ``<think></think>`` block), the answer trained after it; everything else
(collation, loss, adapters, batched greedy generation, export) is the Qwen2.5-VL backbone's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mellm_core import PluginSpec, hookimpl


@dataclass
class QwenTextParams:
    max_length: int = 4096  # tokens per training example; longer targets are cut at the end
    max_new_tokens: int = 512  # generation length cap
    system_prompt: str | None = None  # the system turn (null = the model's default: Qwen2.5's chat template's
    # "You are a helpful assistant.", none for Qwen3)
    lm_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )  # LoRA in these decoder projections
    train_base: bool = False  # train every base weight too (for tiny random models)
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2
    tiny_hidden_size: int = 128  # tiny-random: width
    tiny_layers: int = 2  # tiny-random: decoder layers
    tiny_vocab_size: int = 2048  # tiny-random: BPE vocabulary trained on the prompt plugins' texts
    tiny_rope_theta: float = 10000.0  # tiny-random: RoPE base

    def __post_init__(self) -> None:
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got '{self.dtype}'")
        if self.max_length < 16 or self.max_new_tokens < 1:
            raise ValueError("max_length must be at least 16 and max_new_tokens at least 1")


def create(params: QwenTextParams) -> Any:
    """The backbone, importing the model code (torch, transformers) only now."""
    from mellm_plugins.backbone.qwen2_5_model import Qwen25Text

    return Qwen25Text(params)


@hookimpl
def mellm_backbone():
    yield PluginSpec("qwen2_5", create, QwenTextParams,
                     "Qwen2.5 / Qwen3 instruct, text only, LoRA in the decoder (flow-text prompts; no thinking)")
