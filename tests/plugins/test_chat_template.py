"""What the model sees in training is what Hugging Face's chat template builds at inference (and so what vLLM and
LLaMA-Factory, which apply the same template, build): the token ids are compared for the same messages, for the
image backbone and for the text backbone on Qwen2.5's template and on Qwen3's with thinking off."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mellm_core import create
from mellm_core.config import TrainConfig
from mellm_core.records import FLOW_TAG, IMAGE_TAG
from mellm_core.text.fgmu import example_analyses
from mellm_core.text.labels import get_protocol

# Qwen3's chat template for text turns (its tools and tool-call branches left out): no default system turn; the
# last assistant turn after the last question carries its reasoning in a <think> block, empty when it has none;
# the generation prompt closes an empty block when thinking is off, so the model answers without thinking.
QWEN3_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- set ns = namespace(last_query_index=messages|length - 1) %}"
    "{%- for message in messages %}{%- if message.role == 'user' %}{%- set ns.last_query_index = loop.index0 %}"
    "{%- endif %}{%- endfor %}"
    "{%- for message in messages %}{%- set content = message.content %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}{%- set reasoning_content = '' %}"
    "{%- if '</think>' in content %}"
    "{%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}"
    "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n'"
    " + content.lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}{{- '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


@pytest.fixture(scope="module")
def backbone():
    model = create("backbone", "qwen2_5_vl")
    model.load("tiny-random")
    return model


def chat_template_ids(tokenizer, user: str, image_tokens: int, answer: str | None) -> list[int]:
    """The ids of Qwen's own chat template for one user turn (an image, then text) and the generation prompt or
    the assistant's answer."""
    before, after = user.split(IMAGE_TAG)
    content = [{"type": "text", "text": before}] if before else []
    content += [{"type": "image"}, {"type": "text", "text": after}]
    messages = [{"role": "user", "content": content}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=answer is None)
    text = text.replace("<|image_pad|>", "<|image_pad|>" * image_tokens)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("prompt", ["fgmu-en", "fgmu-zh"])
def test_prompts_and_answers_tokenize_as_the_chat_template_does(backbone, prompt):
    words = create("prompt", prompt)
    labels = list(get_protocol("dfme-7").classes)
    grid = torch.tensor([1, 8, 8])  # 16 image tokens after the 2 x 2 merge
    answers = [words.meu_target(a) for a in example_analyses()[:4]] + [words.mer_target("fear")]
    for task in ("meu", "mer"):
        user = words.user_prompt(task, labels)
        prompt_ids = backbone._encode_prompt(user, grid, "s")
        assert prompt_ids == chat_template_ids(backbone.tokenizer, user, 16, None)
        for answer in answers:  # a training sequence: prompt, answer, end of turn (the template adds a newline)
            target = backbone.tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
            full = chat_template_ids(backbone.tokenizer, user, 16, answer)
            assert full[: len(prompt_ids) + len(target)] == prompt_ids + target
            assert backbone.tokenizer.decode(full[len(prompt_ids) + len(target):]) == "\n"


@pytest.fixture(scope="module")
def tiny_qwen3(tmp_path_factory) -> Path:
    """A tiny random Qwen3 folder, loaded as a downloaded release is: ``Qwen3ForCausalLM`` saved with
    ``save_pretrained``, and the tiny text model's tokenizer with Qwen3's <think> tokens and chat template."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    folder = tmp_path_factory.mktemp("tiny-qwen3")
    tokenizer = AutoTokenizer.from_pretrained(create("backbone", "qwen2_5").resolve("tiny-random"))
    tokenizer.add_tokens(["<think>", "</think>"])
    tokenizer.chat_template = QWEN3_TEMPLATE
    tokenizer.save_pretrained(folder)
    end, pad = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    config = Qwen3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, vocab_size=len(tokenizer), max_position_embeddings=2048,
                         bos_token_id=pad, eos_token_id=end, pad_token_id=pad, tie_word_embeddings=True)
    torch.manual_seed(0)
    Qwen3ForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


def flow_questions(styles: tuple[str, ...] = ("full", "compact")) -> list[str]:
    """The flow-text prompt's questions (English and Chinese, in these styles) with a flow described in them."""
    labels = list(get_protocol("dfme-7").classes)
    regions = "Chin: mean 1.25 px, peak 2.50 px, up, medium\nRight mouth corner: mean 0.10 px, peak 0.20 px, down, weak"
    return [create("prompt", "flow-text", language=language, style=style).user_prompt(task, labels)
            .replace(FLOW_TAG, regions) for language in ("en", "zh") for style in styles
            for task in ("meu", "mer")]


@pytest.mark.parametrize("release", ["qwen2.5", "qwen3"])
def test_text_prompts_and_answers_tokenize_as_the_models_own_chat_template_does(release, tiny_qwen3):
    """Qwen2.5's template adds its default system turn; Qwen3's adds none and, thinking off, an empty think block
    before the answer: the prompt is the template's generation prompt, and prompt + answer + end of turn is the
    template's rendering of the answered conversation."""
    backbone = create("backbone", "qwen2_5")
    backbone.load("tiny-random" if release == "qwen2.5" else str(tiny_qwen3))
    tokenizer = backbone.tokenizer
    prompt = create("prompt", "flow-text")
    answers = [prompt.meu_target(a) for a in example_analyses()[:2]] + [prompt.mer_target("fear")]
    for user in flow_questions():
        asked = [{"role": "user", "content": user}]
        template = tokenizer.apply_chat_template(asked, tokenize=False, add_generation_prompt=True,
                                                 enable_thinking=False)
        prompt_ids = backbone._encode_prompt(user, None, "s")
        assert prompt_ids == tokenizer(template, add_special_tokens=False)["input_ids"]
        assert template.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n" if release == "qwen3"
                                 else "<|im_start|>assistant\n")
        assert template.startswith("<|im_start|>user\n" if release == "qwen3"
                                   else "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
        for answer in answers:
            target = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
            full = tokenizer(tokenizer.apply_chat_template([*asked, {"role": "assistant", "content": answer}],
                                                           tokenize=False), add_special_tokens=False)["input_ids"]
            assert full[: len(prompt_ids) + len(target)] == prompt_ids + target
            assert tokenizer.decode(full[len(prompt_ids) + len(target):]) == "\n"
    backbone.params.system_prompt = "You read facial motion."
    assert backbone._prompt("x").startswith("<|im_start|>system\nYou read facial motion.<|im_end|>\n")


def test_a_qwen3_model_trains_and_answers_without_thinking(tiny_qwen3, tmp_path):
    """A Qwen3 folder loads as a causal LM with LoRA in its decoder, learns two answers, and greedy generation
    (batched as one at a time) answers them directly: the prompt it generates after ends in the same empty think
    block training put before the answer. `mellm plan` counts the tokens training collates."""
    from transformers import AutoModelForCausalLM

    backbone = create("backbone", "qwen2_5", train_base=True, max_new_tokens=8)
    torch.manual_seed(0)
    module = backbone.load(str(tiny_qwen3), train=TrainConfig(lora_rank=4, lora_alpha=8, lora_dropout=0.0))
    assert type(module.get_base_model()).__name__ == "Qwen3ForCausalLM"
    assert any("lora_" in n and ".layers." in n for n, _ in module.named_parameters())
    questions = flow_questions(("compact",))
    rows = [{"sample_id": f"s{i}", "images": [], "messages": [
        {"role": "user", "content": question}, {"role": "assistant", "content": ("happiness", "sadness")[i % 2]}]}
        for i, question in enumerate(questions)]
    batch = backbone.collate(rows)
    planned = create("backbone", "qwen2_5").shape(str(tiny_qwen3), TrainConfig(lora_rank=4), None, questions[0],
                                                  "happiness")
    assert planned.seq_len_exact and planned.seq_len == len(backbone.collate(rows[:1])["input_ids"][0])
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=5e-3)
    for _ in range(25):
        loss, _ = backbone.loss(module, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    backbone.save(module, tmp_path / "adapter")
    trained = backbone.load(str(tiny_qwen3), adapter=str(tmp_path / "adapter"))
    answers = backbone.generate(trained, questions, [None] * len(questions))
    assert answers == ["happiness", "sadness"] * (len(questions) // 2)
    assert answers == [backbone.generate(trained, [q], [None])[0] for q in questions]
    backbone.merge(trained, tmp_path / "merged")
    assert type(AutoModelForCausalLM.from_pretrained(tmp_path / "merged")).__name__ == "Qwen3ForCausalLM"
