"""The Qwen2.5-VL backbone's model code: loading with ``from_pretrained``, Qwen's chat format, LoRA, loss and
generation. Torch and transformers load with this module, when a backbone is created (``qwen2_5_vl.create``).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from PIL import Image

from mellm_core.errors import InputError
from mellm_core.files.frames import read_rgb
from mellm_core.model.adapters import BASE, anchor_adapter
from mellm_core.records import IMAGE_TAG
from mellm_plugins.backbone.qwen2_5_vl import TINY, QwenParams
from mellm_plugins.backbone.tiny_qwen2_5_vl import build_tiny

if TYPE_CHECKING:
    from mellm_core.model.plan import ModelShape

IGNORE = -100
VISION_BLOCKS = r"model\.visual\.blocks\.\d+\.(?:attn|mlp)"
SHIPPED_CONFIGS = Path(__file__).parent / "configs"  # public releases' config.json, for planning without weights

transformers.utils.logging.disable_progress_bar()  # per-file loading bars drown the stages' own progress
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)  # peft's call


def image_processor_class() -> type:
    """Qwen's image processor on its PIL backend (works without torchvision)."""
    return getattr(transformers, "Qwen2VLImageProcessorPil", None) or transformers.Qwen2VLImageProcessor


def patch_embed_as_matmul(model: torch.nn.Module) -> None:
    """Compute the vision patch embedding as the matrix product it is, with the same weights.

    Its Conv3d kernel covers each flattened patch exactly, so the convolution is one matrix multiply; oneDNN's
    conv3d takes about a third of a CPU training step of the tiny model for that product.
    """
    for module in model.modules():
        if type(module).__name__ == "Qwen2_5_VisionPatchEmbed":
            proj = module.proj

            def forward(hidden_states: torch.Tensor, proj: Any = proj) -> torch.Tensor:
                weight = proj.weight.reshape(proj.weight.shape[0], -1)
                return F.linear(hidden_states.to(weight.dtype).reshape(-1, weight.shape[1]), weight, proj.bias)

            module.forward = forward


def _targets(names: list[str], blocks: str) -> str | None:
    return rf"{blocks}\.(?:{'|'.join(re.escape(n) for n in names)})" if names else None


class Qwen25VL:
    """Load, collate, loss, save and generate for Qwen2.5-VL (see the backbone hook's contract)."""

    auto_class = "AutoModelForImageTextToText"  # transformers' class that loads and builds the model
    model_types = ("qwen2_5_vl",)  # the configurations' model_type it builds
    lm_layers = "model.language_model.layers"  # the LM decoder's layers (LoRA goes in their projections)

    def __init__(self, params: QwenParams):
        self.params = params
        self.tokenizer: Any = None
        self.image_processor: Any = None
        self.model_path: str = ""

    # ------------------------------------------------------------------ loading

    def resolve(self, model: str) -> str:
        """A loadable name: the tiny model's folder (built on first use), an absolute local folder, or a hub id."""
        p = self.params
        if model == TINY:
            return str(build_tiny(image_processor_class(), p.tiny_hidden_size, p.tiny_layers, p.tiny_vision_depth,
                                  p.tiny_vocab_size, p.tiny_rope_theta))
        local = Path(model).expanduser()
        return str(local.resolve()) if local.exists() else model

    def _auto(self) -> Any:
        return getattr(transformers, self.auto_class)

    def _dtype(self, device: str) -> torch.dtype:
        if self.params.dtype == "auto":
            return torch.bfloat16 if device.startswith("cuda") else torch.float32
        return getattr(torch, self.params.dtype)

    def _save_processors(self, out: Path) -> None:
        self.tokenizer.save_pretrained(out)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(out)

    def _load_processors(self, path: str) -> None:
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        kwargs = {k: v for k, v in (("min_pixels", self.params.min_pixels), ("max_pixels", self.params.max_pixels))
                  if v is not None}
        processor: Any = image_processor_class()
        self.image_processor = processor.from_pretrained(path, **kwargs)
        self.ids = {t: self.tokenizer.convert_tokens_to_ids(t)
                    for t in ("<|im_end|>", "<|endoftext|>", "<|image_pad|>")}
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.ids[
            "<|endoftext|>"]

    def load(self, model: str, device: str = "cpu", adapter: str | None = None, train: Any = None,
             labels: tuple[str, ...] | list[str] = (), place: str = "device") -> torch.nn.Module:
        """The model on ``device``: LoRA-wrapped and trainable when ``train`` is given, else ready for inference.

        For FSDP's sharded loading, ``place="host"`` leaves it in CPU memory and ``place="meta"`` builds the
        structure alone, reading no weights; both in the dtype and form it takes on ``device``."""
        from peft import PeftModel

        self.model_path = self.resolve(model)
        trained_base = Path(adapter, BASE) if adapter else None
        base_path = str(trained_base) if trained_base and trained_base.is_dir() else self.model_path
        if Path(base_path).is_dir() and not (Path(base_path) / "config.json").is_file():
            raise InputError(f"backbone.model '{model}': {base_path} is not a model folder (no config.json)")
        settings = {"dtype": self._dtype(device), "attn_implementation": self.params.attn_implementation}
        try:
            self._load_processors(base_path)
            if place == "meta":
                config = transformers.AutoConfig.from_pretrained(base_path, trust_remote_code=False)
                with torch.device("meta"):
                    base = self._auto().from_config(config, **settings)
            else:
                base = self._auto().from_pretrained(base_path, use_safetensors=True, trust_remote_code=False,
                                                    **settings)
        except (OSError, ValueError) as exc:
            raise InputError(f"backbone.model '{model}' could not be loaded from {base_path}: {exc}") from None
        base.config._name_or_path = self.model_path  # adapters name the model the user asked for
        base.generation_config = self._greedy(base.generation_config)
        if place == "device":
            base.to(device)
        if device == "cpu":
            patch_embed_as_matmul(base)
        if train is None:
            module = PeftModel.from_pretrained(base, adapter).merge_and_unload() if adapter else base
            return module.eval()
        meta = place == "meta"
        module = (PeftModel.from_pretrained(base, adapter, is_trainable=True, low_cpu_mem_usage=meta) if adapter
                  else self._lora(base, train, meta))
        if self.params.train_base:
            for param in module.parameters():
                param.requires_grad_(True)
        if train.gradient_checkpointing:
            module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            module.enable_input_require_grads()
        module.config.use_cache = False
        return module.train()

    def _lora(self, base: torch.nn.Module, train: Any, meta: bool = False) -> Any:
        """``base`` wrapped with a new LoRA adapter in the recipe's vision and LM projections."""
        from peft import LoraConfig, get_peft_model

        lm_blocks = rf"{re.escape(self.lm_layers)}\.\d+\.(?:self_attn|mlp)"
        targets = [t for t in (_targets(self.params.lm_targets, lm_blocks),
                               _targets(getattr(self.params, "vision_targets", []), VISION_BLOCKS)) if t]
        if not targets:
            raise InputError("backbone.params.lm_targets and vision_targets are both empty: nothing to train")
        return get_peft_model(base, LoraConfig(
            r=train.lora_rank, lora_alpha=train.lora_alpha, lora_dropout=train.lora_dropout,
            target_modules="|".join(f"(?:{t})" for t in targets),
            modules_to_save=["merger"] if getattr(self.params, "train_merger", False) and not self.params.train_base
            else None,
        ), low_cpu_mem_usage=meta)

    def _greedy(self, shipped: Any) -> Any:
        """Plain greedy decoding: generate() fills every setting left unset from the model's generation config,
        and instruct releases ship sampling and penalty settings (repetition_penalty, top_k, ...) that would
        still bend a greedy answer; only the special token ids are kept."""
        keep = {k: getattr(shipped, k, None) for k in ("bos_token_id", "decoder_start_token_id")}
        return transformers.GenerationConfig(
            **{k: v for k, v in keep.items() if v is not None}, do_sample=False, num_beams=1,
            eos_token_id=[self.ids["<|im_end|>"], self.ids["<|endoftext|>"]], pad_token_id=self.pad_id)

    # ------------------------------------------------------------------ planning

    def shape(self, model: str, train: Any, image_size: tuple[int, int] | None, user: str, target: str
              ) -> ModelShape:
        """Counts for ``mellm plan``, without weights: the model built on the meta device from its configuration
        (a local folder's, the tiny model's, or the shipped copy of a public release's), with training's LoRA."""
        from mellm_core.model.plan import ModelShape, Tower

        config, processor, tokenizer = self._plan_sources(model)
        with torch.device("meta"):
            base = self._auto().from_config(config)
        module = self._lora(base, train, meta=True)
        trainable, total = module.get_nb_trainable_parameters()
        wrapped = sorted({re.sub(r"^.*?((?:language_model|visual|layers)\.)", r"\1", re.sub(r"\.\d+\.", ".*.", name))
                          .removesuffix(".lora_A") for name, _ in module.named_modules() if name.endswith("lora_A")})
        patches, image_tokens = self._plan_image(processor, image_size)
        prompt = self._prompt(user.replace(IMAGE_TAG, "")) + ("<|vision_start|><|vision_end|>" if patches else "")
        answer = target + "<|im_end|>"
        if tokenizer is not None:
            text, answer_tokens = (len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (prompt, answer))
        else:
            text, answer_tokens = (-(-len(t.encode()) // 4) for t in (prompt, answer))
        prompt_len = text + image_tokens
        if prompt_len >= self.params.max_length:  # as collate refuses it
            raise InputError(f"the longest instruction's prompt (with its image) takes {prompt_len} tokens, not "
                             f"less than backbone.params.max_length={self.params.max_length}; raise max_length or "
                             "lower max_pixels (or maps.max_side)")
        seq_len = min(prompt_len + answer_tokens, self.params.max_length)  # collate cuts a long answer's end
        answer_tokens = seq_len - prompt_len
        lm = getattr(config, "text_config", config)

        def params(prefix: str) -> int:
            return sum(p.numel() for n, p in base.named_parameters() if n.startswith(prefix))

        def dropout_inputs(prefix: str, layers: int) -> int:
            if not train.lora_dropout:
                return 0
            widths = [m.base_layer.in_features for n, m in base.named_modules()
                      if n.startswith(prefix) and hasattr(m, "lora_A") and hasattr(m, "base_layer")]
            return sum(widths) // layers

        towers = []
        if patches:
            vision = config.vision_config
            vision_trains = any(p.requires_grad for n, p in module.named_parameters() if ".visual.blocks." in n) or \
                self.params.train_base
            towers.append(Tower("vision", vision.depth, vision.hidden_size, vision.intermediate_size,
                                params("model.visual.blocks"), patches, vision_trains,
                                dropout_inputs("model.visual.blocks", vision.depth)))
        towers.append(Tower("lm", lm.num_hidden_layers, lm.hidden_size, lm.intermediate_size, params(self.lm_layers),
                            seq_len, True, dropout_inputs(self.lm_layers, lm.num_hidden_layers)))
        full_precision = self.params.dtype == "float32" or (self.params.dtype == "auto" and not train.use_gpu)
        return ModelShape(total, total if self.params.train_base else trainable, wrapped, self.params.train_base,
                          4 if full_precision else 2, lm.vocab_size, image_tokens, seq_len, tokenizer is not None,
                          answer_tokens, towers)

    def _plan_image(self, processor: Any, image_size: tuple[int, int] | None) -> tuple[int, int]:
        """(vision patches, image tokens) of one map of ``image_size`` (else the largest square the processor
        takes)."""
        height, width = image_size or (math.isqrt(processor.size["longest_edge"]),) * 2
        grid = processor(images=[Image.new("RGB", (width, height))], return_tensors="pt")["image_grid_thw"][0]
        patches = int(grid.prod())
        return patches, patches // processor.merge_size ** 2

    def _plan_processor(self, source: str | dict[str, Any] | None, local_only: bool = False) -> Any:
        """The image processor at ``source`` (a folder or hub id; the class's defaults when it holds none), or
        one with a shipped release's pixel limits (a dict), with the recipe's limits over either."""
        sizes = {k: v for k, v in (("min_pixels", self.params.min_pixels), ("max_pixels", self.params.max_pixels))
                 if v is not None}
        processor_class: Any = image_processor_class()
        if isinstance(source, dict):
            return processor_class(**{**{k: source[k] for k in ("min_pixels", "max_pixels")}, **sizes})
        if source is not None and (local_only or (Path(source) / "preprocessor_config.json").is_file()):
            try:
                return processor_class.from_pretrained(source, local_files_only=local_only, **sizes)
            except (OSError, ValueError):
                pass
        return processor_class(**sizes)

    def _plan_sources(self, model: str) -> tuple[Any, Any, Any]:
        """(configuration, image processor or None, tokenizer or None) of ``model`` without its weights: from a
        local folder, the Hugging Face cache, or the configuration mellm ships for a public release."""
        if model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
            raise InputError(f"backbone.model '{model}': no such folder")
        if model == TINY or Path(model).expanduser().is_dir():
            path = self.resolve(model)
            if not (Path(path) / "config.json").is_file():
                raise InputError(f"backbone.model '{model}': {path} holds no config.json")
            config = self._plan_config(model, transformers.AutoConfig.from_pretrained(path))
            has_tokenizer = (Path(path) / "tokenizer_config.json").is_file()
            return (config, self._plan_processor(path),
                    transformers.AutoTokenizer.from_pretrained(path) if has_tokenizer else None)
        try:  # a release in the Hugging Face cache: its own configuration, processor and tokenizer when there
            config = transformers.AutoConfig.from_pretrained(model, local_files_only=True)
        except (OSError, ValueError):
            config = None
        if config is not None:
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(model, local_files_only=True)
            except (OSError, ValueError):
                tokenizer = None
            return self._plan_config(model, config), self._plan_processor(model, local_only=True), tokenizer
        releases = {p: json.loads(p.read_text()) for p in sorted(SHIPPED_CONFIGS.glob("*.json"))}
        ours = {p.stem: v for p, v in releases.items() if v["model_type"] in self.model_types}
        values = ours.get(model.rsplit("/", 1)[-1])
        if values is None:
            known = ", ".join(f"Qwen/{name}" for name in ours)
            raise InputError(f"backbone.model '{model}' is neither a local model folder, nor in the Hugging Face "
                             f"cache, nor a release whose configuration ships with mellm for this backbone "
                             f"({known}): point it at a folder with the model's config.json (weights are not "
                             "needed)")
        values = {k: v for k, v in values.items() if not k.startswith("_")}
        preprocessor = values.pop("preprocessor", None)
        config = transformers.AutoConfig.for_model(values.pop("model_type"), **values)
        return config, preprocessor and self._plan_processor(preprocessor), None  # no tokenizer: counts estimated

    def _plan_config(self, model: str, config: Any) -> Any:
        """``config``, when it is a model this backbone builds."""
        if config.model_type not in self.model_types:
            raise InputError(f"backbone.model '{model}' is a {config.model_type} model; this backbone builds "
                             f"{' and '.join(self.model_types)} models")
        return config

    # ------------------------------------------------------------------ text and images

    def _prompt(self, user: str) -> str:
        """Qwen's chat turns around ``user``, up to the assistant's answer; with no system prompt set, the system
        turn Qwen2.5's chat template writes when a conversation has none ("" leaves it out)."""
        system = self.params.system_prompt
        system = "You are a helpful assistant." if system is None else system
        head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
        return f"{head}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"

    def _images(self, images: list[np.ndarray]) -> dict[str, torch.Tensor]:
        pil = [Image.fromarray(np.asarray(img, dtype=np.uint8)).convert("RGB") for img in images]
        return dict(self.image_processor(images=pil, return_tensors="pt"))

    def _encode_prompt(self, user: str, grid: torch.Tensor, sample: str | None) -> list[int]:
        """Token ids of the chat turns around ``user``. The user's text is tokenized with special tokens split
        into plain characters: text that spells ``<|im_end|>``, ``<|image_pad|>`` ... reaches the model as the
        characters it is, so a prompt can neither open a turn nor fake an image slot."""
        if user.count(IMAGE_TAG) != 1:
            raise InputError(f"sample {sample}: the user prompt must hold exactly one {IMAGE_TAG} placeholder, "
                             f"found {user.count(IMAGE_TAG)}")
        n = int(grid.prod()) // self.image_processor.merge_size ** 2
        before, after = user.split(IMAGE_TAG)
        head, tail = self._prompt(IMAGE_TAG).split(IMAGE_TAG)
        return (self._tokens(head) + self._tokens(before, plain=True)
                + self._tokens("<|vision_start|>" + "<|image_pad|>" * n + "<|vision_end|>")
                + self._tokens(after, plain=True) + self._tokens(tail))

    def _tokens(self, text: str, plain: bool = False) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=plain)["input_ids"] if text else []

    # ------------------------------------------------------------------ training

    def _row_images(self, rows: list[dict]) -> list[np.ndarray | None]:
        """Each training row's one image."""
        images: list[np.ndarray | None] = []
        for row in rows:
            if len(row.get("images") or []) != 1:
                raise InputError(f"sample {row.get('sample_id')}: expected one image, got {row.get('images')}")
            images.append(read_rgb(row["images"][0]))
        return images

    def _vision(self, images: list[np.ndarray | None]) -> tuple[list[Any], dict[str, torch.Tensor]]:
        """(each image's patch grid, the batch's pixel inputs); every prompt of this backbone has an image."""
        maps = [image for image in images if image is not None]
        if len(maps) < len(images):
            raise InputError("backbone qwen2_5_vl answers on the MMC-map, and the prompt gives the flow as text (no "
                             "image): use an image prompt (fgmu-en, fgmu-zh) or the text backbone qwen2_5")
        vision = self._images(maps)
        return list(vision["image_grid_thw"]), vision

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        """Right-padded token ids, labels on the assistant's tokens only, and the images' patches."""
        grids, vision = self._vision(self._row_images(rows))
        sequences, labels = [], []
        for row, grid in zip(rows, grids, strict=True):
            sample = row.get("sample_id")
            roles = [m["role"] for m in row["messages"]]
            if roles != ["user", "assistant"]:
                raise InputError(f"sample {sample}: messages must be one user and one assistant turn, got {roles}")
            prompt = self._encode_prompt(row["messages"][0]["content"], grid, sample)
            target = self.tokenizer(row["messages"][1]["content"] + "<|im_end|>", add_special_tokens=False)[
                "input_ids"]
            limit = self.params.max_length
            if len(prompt) >= limit:
                raise InputError(f"sample {sample}: its prompt and image take {len(prompt)} tokens, not less than "
                                 f"backbone.params.max_length={limit}; raise max_length or lower max_pixels")
            target = target[: limit - len(prompt)]  # cut the end of a long target, never the image
            sequences.append(prompt + target)
            labels.append([IGNORE] * len(prompt) + target)
        width = max(len(s) for s in sequences)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        lab = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, (seq, lbl) in enumerate(zip(sequences, labels, strict=True)):
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            lab[i, : len(lbl)] = torch.tensor(lbl)
        return {**self._model_inputs(ids, mask, vision), "labels": lab}

    def _model_inputs(self, ids: torch.Tensor, mask: torch.Tensor, vision: dict[str, torch.Tensor]
                      ) -> dict[str, torch.Tensor]:
        """What Qwen's processor would hand the model for these tokens and images: ``mm_token_type_ids`` (1 on
        image tokens) is what makes the model give the image 3-D M-RoPE positions instead of 1-D text ones."""
        image = (ids == self.ids["<|image_pad|>"]).long()
        return {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": image,
                "pixel_values": vision["pixel_values"], "image_grid_thw": vision["image_grid_thw"]}

    def loss(self, module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean over samples of each sample's mean token loss, and the tokens in the batch (a device tensor).

        Logits are computed only at the columns that predict an answer token (the model's ``logits_to_keep``):
        at 7B a full fp32 copy of batch x length x 152k logits would take more memory than the rest of the step.
        """
        labels = batch["labels"]
        predicts = (labels[:, 1:] != IGNORE).any(0).nonzero().flatten()  # columns whose next token is a target
        out = module(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False, logits_to_keep=predicts)
        target = labels[:, predicts + 1]
        per_token = F.cross_entropy(out.logits.float().transpose(1, 2), target, ignore_index=IGNORE, reduction="none")
        counted = (target != IGNORE).float()
        per_sample = (per_token * counted).sum(1) / counted.sum(1).clamp(min=1)
        return per_sample.mean(), batch["attention_mask"].sum()

    def save(self, module: torch.nn.Module, out_dir: str | Path, weights: dict[str, torch.Tensor] | None = None
             ) -> None:
        """The PEFT adapter; with ``train_base`` also the trained base model under ``base/``. ``weights``: the
        trainable weights gathered whole from a sharded model (FSDP), by their names in ``module``."""
        out = Path(out_dir)
        peft_model: Any = module
        peft_model.save_pretrained(out, safe_serialization=True, state_dict=weights)
        if self.params.train_base:
            base = peft_model.get_base_model()
            prefix = "base_model.model."
            source = base.state_dict() if weights is None else {k.removeprefix(prefix): v for k, v in weights.items()}
            state = {k.replace(".base_layer.", "."): v for k, v in source.items() if "lora_" not in k}
            fresh = self._auto().from_config(base.config)
            fresh.load_state_dict(state, strict=True)
            fresh.generation_config = base.generation_config
            fresh.save_pretrained(out / BASE, safe_serialization=True)
            self._save_processors(out / BASE)
            anchor_adapter(out)

    # ------------------------------------------------------------------ inference

    def prompt_inputs(self, prompts: list[str], images: list[np.ndarray | None]) -> dict[str, torch.Tensor]:
        """Left-padded model inputs for a batch of (prompt, image) pairs, as Qwen's processor builds them."""
        if len(prompts) != len(images):
            raise InputError(f"generate: {len(prompts)} prompts but {len(images)} images")
        grids, vision = self._vision(images)
        encoded = [self._encode_prompt(p, g, f"#{i}") for i, (p, g) in enumerate(zip(prompts, grids, strict=True))]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, seq in enumerate(encoded):
            ids[i, width - len(seq):] = torch.tensor(seq)
            mask[i, width - len(seq):] = 1
        return self._model_inputs(ids, mask, vision)

    @torch.no_grad()
    def generate(self, module: torch.nn.Module, prompts: list[str], images: list[np.ndarray | None],
                 max_new_tokens: int | None = None) -> list[str]:
        """Greedy answers for a batch of (prompt, image) pairs (left-padded)."""
        if not prompts:
            return []
        inputs = self.prompt_inputs(prompts, images)
        device = next(module.parameters()).device
        dtype = next(module.parameters()).dtype
        inputs = {k: v.to(device, dtype) if k == "pixel_values" else v.to(device) for k, v in inputs.items()}
        model: Any = module
        out = model.generate(**inputs, max_new_tokens=max_new_tokens or self.params.max_new_tokens)
        width = inputs["input_ids"].shape[1]
        return [t.strip() for t in self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)]

    def merge(self, module: torch.nn.Module, out_dir: str | Path) -> None:
        """A full model (adapter merged) with its tokenizer, chat template and image processor, loadable by any
        server, in the dtype the base model was saved in (bf16 for the 7B: the merge itself runs in the dtype the
        model was loaded in, fp32 on a CPU, and rounds once)."""
        model: Any = getattr(module, "module", module)
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        shipped = transformers.AutoConfig.from_pretrained(self.model_path)
        dtype = getattr(shipped, "dtype", None) or getattr(shipped, "torch_dtype", None)
        if dtype is not None:
            model = model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        model.save_pretrained(out_dir, safe_serialization=True)
        self._save_processors(Path(out_dir))
