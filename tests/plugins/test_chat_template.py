"""What the model sees in training is what Hugging Face's chat template builds at inference (and so what vLLM and
LLaMA-Factory, which apply the same template, build): the token ids are compared for the same messages."""

from __future__ import annotations

import pytest
import torch

from mellm_core import create
from mellm_core.records import IMAGE_TAG
from mellm_core.text.fgmu import example_analyses
from mellm_core.text.labels import get_protocol


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
