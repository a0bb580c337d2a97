"""A tiny random Qwen2.5-VL, built locally once and cached, so the real loading code runs without any download.

The model is the real ``Qwen2_5_VLForConditionalGeneration`` with a small config; the tokenizer is a byte-level
BPE trained here on the installed prompt plugins' texts, carrying Qwen's special tokens and chat template. Both
are written with ``save_pretrained`` and then loaded through ``from_pretrained`` like any downloaded model.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from mellm_core.config import settings_hash
from mellm_core.errors import MellmError
from mellm_core.files.atomic import built_once
from mellm_core.files.storage import cache_dir
from mellm_core.motion.facs import PROTOTYPES
from mellm_core.plugins import get_registry
from mellm_core.text.fgmu import example_analyses
from mellm_core.text.labels import PROTOCOLS

TINY_VERSION = 1  # bump when the construction below changes
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]
# Qwen2.5-VL's chat template (images and text parts in user turns), so tools that apply it see the real format.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


CORPUS_PROMPTS = ("fgmu-en", "fgmu-zh")  # the paper's prompts: other plugins must not change the tiny model


def corpus(prompts: tuple[str, ...] = CORPUS_PROMPTS) -> list[str]:
    """Texts the tokenizer learns from: these prompt plugins' prompts and targets, for every protocol. A fixed
    set, so that installing a prompt plugin neither rebuilds the tiny model nor changes what it learns."""
    registry = get_registry()
    label_sets = [list(p.classes) for p in PROTOCOLS.values() if p.classes]
    emotions = sorted({label for labels in label_sets for label in labels} | set(PROTOTYPES))
    analyses = example_analyses()
    texts = []
    for name in prompts:
        prompt = registry.create("prompt", name)
        texts += [prompt.user_prompt(task, labels) for task in ("meu", "mer") for labels in label_sets]
        texts += [prompt.mer_target(e) for e in emotions] + [prompt.meu_target(a) for a in analyses]
    return texts


def tiny_key(hidden: int, layers: int, vision_depth: int, vocab: int, rope_theta: float = 10000.0) -> str:
    extra = () if rope_theta == 10000.0 else (rope_theta,)  # the folders built before the setting existed stay valid
    return settings_hash(TINY_VERSION, hidden, layers, vision_depth, vocab, *extra, corpus())


def build_tiny(image_processor: type, hidden: int = 128, layers: int = 2, vision_depth: int = 2, vocab: int = 2048,
               rope_theta: float = 10000.0) -> Path:
    """The folder of the tiny model with these sizes, building it on first use (one builder at a time per host)."""
    path = cache_dir() / f"tiny-random-qwen2_5_vl-{tiny_key(hidden, layers, vision_depth, vocab, rope_theta)}"

    def build(staging: Path) -> None:
        _write_tiny(staging, image_processor, hidden, layers, vision_depth, vocab, rope_theta)

    return built_once(path, _complete, build)


def _complete(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def _tokenizer(vocab: int, texts: list[str] | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts or corpus(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIAL_TOKENS[1:], chat_template=CHAT_TEMPLATE,
                                   model_max_length=32768)


def _write_tiny(out: Path, image_processor: type, hidden: int, layers: int, vision_depth: int, vocab: int,
                rope_theta: float) -> None:
    from transformers import GenerationConfig, Qwen2_5_VLConfig

    tokenizer = _tokenizer(vocab)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    heads = 4
    head_dim = hidden // heads
    unit = head_dim // 16  # mrope sections (temporal, height, width) 2:3:3 add up to half the head dimension
    config = Qwen2_5_VLConfig(
        text_config=dict(
            hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=4096, rope_theta=rope_theta,
            rope_scaling={"type": "mrope", "mrope_section": [2 * unit, 3 * unit, 3 * unit]},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=vision_depth, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=heads,
            out_hidden_size=hidden, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
            fullatt_block_indexes=[vision_depth - 1],
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    config.save_pretrained(out)
    GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"], do_sample=False
    ).save_pretrained(out)
    _write_weights(out)
    tokenizer.save_pretrained(out)
    image_processor(min_pixels=56 * 56, max_pixels=112 * 112).save_pretrained(out)


WRITE_WEIGHTS = """
import sys, torch, transformers
torch.manual_seed(0)
model = transformers.Qwen2_5_VLForConditionalGeneration(transformers.AutoConfig.from_pretrained(sys.argv[1]))
model.generation_config = transformers.GenerationConfig.from_pretrained(sys.argv[1])
model.save_pretrained(sys.argv[1], safe_serialization=True)
"""


def _write_weights(out: Path, script: str = WRITE_WEIGHTS) -> None:
    """Random weights for the configuration in ``out``, written by a fresh Python process: in a process of a
    torch.distributed group (a Ray Train worker), ``save_pretrained`` writes only on rank 0, and another rank
    that builds the model first would leave a folder without weights."""
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True)
    if done.returncode:
        raise MellmError(f"writing the tiny model's weights into {out} failed: {done.stderr.strip()[-2000:]}")


TEXT_CORPUS_PROMPTS = (*CORPUS_PROMPTS, "flow-text")
WRITE_TEXT_WEIGHTS = WRITE_WEIGHTS.replace("Qwen2_5_VLForConditionalGeneration", "AutoModelForCausalLM.from_config")


def text_corpus() -> list[str]:
    """The text model's corpus: the FGMU texts, and the flow-text prompt's with example flow descriptions."""
    from mellm_core.motion.regions import REGIONS, RegionMotion

    registry = get_registry()
    texts = corpus(TEXT_CORPUS_PROMPTS)
    for language in ("en", "zh"):
        prompt: Any = registry.create("prompt", "flow-text", language=language)
        for k in range(8):
            regions = {name: RegionMotion([0.0, 0.0], 0.1 * (i + k), 0.37 * (i + 2 * k), direction, "", intensity,
                                          False)
                       for i, name in enumerate(REGIONS)
                       for direction, intensity in [(("up", "down", "left", "right")[(i + k) % 4],
                                                     ("weak", "medium", "strong")[(i * k) % 3])]}
            texts.append(prompt.describe(regions))
    return texts


def build_tiny_text(hidden: int = 128, layers: int = 2, vocab: int = 2048, rope_theta: float = 10000.0) -> Path:
    """The folder of the tiny text-only Qwen2 with these sizes (the flow-text path's model), built on first use."""
    key = settings_hash(TINY_VERSION, "text", hidden, layers, vocab, rope_theta, text_corpus())
    path = cache_dir() / f"tiny-random-qwen2_5-{key}"

    def build(staging: Path) -> None:
        from transformers import GenerationConfig, Qwen2Config

        tokenizer = _tokenizer(vocab, text_corpus())
        tokenizer.chat_template = TEXT_CHAT_TEMPLATE
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        Qwen2Config(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=4096,
                    rope_theta=rope_theta, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                    pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=True,
                    architectures=["Qwen2ForCausalLM"]).save_pretrained(staging)
        GenerationConfig(eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"],
                         do_sample=False).save_pretrained(staging)
        _write_weights(staging, WRITE_TEXT_WEIGHTS)
        tokenizer.save_pretrained(staging)

    return built_once(path, _complete, build)


# Qwen2.5 instruct's chat template, text turns only.
TEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a "
    "helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
