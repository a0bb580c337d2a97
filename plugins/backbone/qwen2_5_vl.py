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
from mellm_plugins.backbone.qwen2_5 import QwenTextParams

TINY = "tiny-random"


@dataclass
class QwenParams(QwenTextParams):
    """The text backbone's settings, and the image's."""

    min_pixels: int | None = None  # image resize floor in pixels (null = the model's preprocessor setting)
    max_pixels: int | None = None  # image resize cap in pixels; fewer pixels = fewer image tokens
    vision_targets: list[str] = field(
        default_factory=lambda: ["qkv", "proj", "gate_proj", "up_proj", "down_proj"]
    )  # LoRA in these vision block projections ([] = vision encoder frozen)
    train_merger: bool = False  # also train the vision-language merger (frozen by default)
    tiny_vision_depth: int = 2  # tiny-random: vision blocks


def create(params: QwenParams) -> Any:
    """The backbone, importing the model code (torch, transformers) only now."""
    from mellm_plugins.backbone.qwen2_5_vl_model import Qwen25VL

    return Qwen25VL(params)


@hookimpl
def mellm_backbone():
    yield PluginSpec("qwen2_5_vl", create, QwenParams,
                     "Qwen2.5-VL with LoRA in vision encoder and LM decoder (local folder, hub id or tiny-random)")
