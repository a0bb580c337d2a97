"""Qwen2.5-VL with LoRA in the vision encoder and the LM decoder (paper III-F): MELLM's backbone.

Models load with ``from_pretrained`` (safetensors only, no remote code): a local folder, a hub id, or
``tiny-random``, a tiny model of the same class built locally once (see ``tiny_qwen2_5_vl``). The chat format is
Qwen's: ``<|im_start|>`` turns with ``<|vision_start|><|image_pad|>...<|vision_end|>`` for the image. This module
holds what the registry reads (the parameters); the model code (``qwen2_5_vl_model``) and with it torch and
transformers load when a backbone is created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mellm_core import PluginSpec, hookimpl

TINY = "tiny-random"


@dataclass
class QwenParams:
    min_pixels: int | None = None  # image resize floor in pixels (null = the model's preprocessor setting)
    max_pixels: int | None = None  # image resize cap in pixels; fewer pixels = fewer image tokens
    max_length: int = 4096  # tokens per training example; longer targets are cut at the end, never in the image
    max_new_tokens: int = 512  # generation length cap
    system_prompt: str = "You are a helpful assistant."  # Qwen's default system turn ("" = none)
    lm_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )  # LoRA in these LM decoder projections
    vision_targets: list[str] = field(
        default_factory=lambda: ["qkv", "proj", "gate_proj", "up_proj", "down_proj"]
    )  # LoRA in these vision block projections ([] = vision encoder frozen)
    train_merger: bool = False  # also train the vision-language merger (frozen by default)
    train_base: bool = False  # train every base weight too (for tiny random models; the 7B recipe trains LoRA)
    gradient_checkpointing: bool = False  # trade compute for activation memory
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2
    tiny_hidden_size: int = 128  # tiny-random: width of the LM and the vision encoder
    tiny_layers: int = 2  # tiny-random: LM decoder layers
    tiny_vision_depth: int = 2  # tiny-random: vision blocks
    tiny_vocab_size: int = 2048  # tiny-random: BPE vocabulary trained on the prompt plugins' texts
    tiny_rope_theta: float = 10000.0  # tiny-random: RoPE base of the LM (its M-RoPE height and width positions)

    def __post_init__(self) -> None:
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got '{self.dtype}'")
        if self.max_length < 16 or self.max_new_tokens < 1:
            raise ValueError("max_length must be at least 16 and max_new_tokens at least 1")


def create(params: QwenParams) -> Any:
    """The backbone, importing the model code (torch, transformers) only now."""
    from mellm_plugins.backbone.qwen2_5_vl_model import Qwen25VL

    return Qwen25VL(params)


@hookimpl
def mellm_backbone():
    yield PluginSpec("qwen2_5_vl", create, QwenParams,
                     "Qwen2.5-VL with LoRA in vision encoder and LM decoder (local folder, hub id or tiny-random)")
