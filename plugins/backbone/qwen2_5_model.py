"""The text-only Qwen backbone's model code: the Qwen2.5-VL backbone's, without the image, its prompts written by
the model's own chat template (Qwen2.5's or Qwen3's, thinking off)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

from mellm_core.errors import InputError
from mellm_core.records import IMAGE_TAG
from mellm_plugins.backbone.qwen2_5_vl import TINY
from mellm_plugins.backbone.qwen2_5_vl_model import Qwen25VL
from mellm_plugins.backbone.tiny_qwen2_5_vl import build_tiny_text


class Qwen25Text(Qwen25VL):
    """Load, collate, loss, save and generate for a text-only causal LM (see the backbone hook's contract)."""

    auto_class = "AutoModelForCausalLM"
    input = "text"  # prompts carry the flow as text; no image
    model_types = ("qwen2", "qwen3")
    lm_layers = "model.layers"

    def resolve(self, model: str) -> str:
        p = self.params
        if model == TINY:
            return str(build_tiny_text(p.tiny_hidden_size, p.tiny_layers, p.tiny_vocab_size, p.tiny_rope_theta))
        local = Path(model).expanduser()
        return str(local.resolve()) if local.exists() else model

    def _load_processors(self, path: str) -> None:
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        self.image_processor = None
        self.ids = {t: self.tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.ids[
            "<|endoftext|>"]

    def _prompt(self, user: str) -> str:
        """The chat turns around ``user`` up to the assistant's answer, as the tokenizer's chat template writes them
        with thinking off (Qwen3's template then closes an empty ``<think></think>`` block, so the answer comes
        first, as trained); Qwen2.5's hand-written turns when the tokenizer carries no template."""
        if not getattr(self.tokenizer, "chat_template", None):
            return super()._prompt(user)
        system = self.params.system_prompt
        messages = [{"role": "system", "content": system}] if system is not None else []
        return self.tokenizer.apply_chat_template(messages + [{"role": "user", "content": user}], tokenize=False,
                                                  add_generation_prompt=True, enable_thinking=False)

    def _plan_sources(self, model: str) -> tuple[Any, Any, Any]:
        """The base class's, its tokenizer kept as this backbone's: the planned prompt is then the model's own
        template's (None, when only a shipped configuration is at hand: Qwen2.5's turns, estimated)."""
        config, processor, tokenizer = super()._plan_sources(model)
        self.tokenizer = tokenizer
        return config, processor, tokenizer

    def _row_images(self, rows: list[dict]) -> list[np.ndarray | None]:
        return [None] * len(rows)  # the flow is in the prompt's text

    def _vision(self, images: list[np.ndarray | None]) -> tuple[list[Any], dict[str, torch.Tensor]]:
        return [None] * len(images), {}

    def _encode_prompt(self, user: str, grid: Any, sample: str | None) -> list[int]:
        """Token ids of the chat turns around ``user``, its special-token spellings split into plain characters."""
        if IMAGE_TAG in user:
            raise InputError(f"sample {sample}: the prompt asks for an image ({IMAGE_TAG}), and backbone qwen2_5 "
                             "reads text: use a prompt that gives the flow as text (instructions.prompt=flow-text)")
        head, tail = self._prompt("\0").split("\0")
        return self._tokens(head) + self._tokens(user, plain=True) + self._tokens(tail)

    def _model_inputs(self, ids: torch.Tensor, mask: torch.Tensor, vision: dict[str, torch.Tensor]
                      ) -> dict[str, torch.Tensor]:
        return {"input_ids": ids, "attention_mask": mask}

    def _plan_image(self, processor: Any, image_size: tuple[int, int] | None) -> tuple[int, int]:
        return 0, 0  # no image

    def _plan_processor(self, source: str | dict[str, Any] | None, local_only: bool = False) -> Any:
        return None
