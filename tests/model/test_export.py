"""`mellm export --merge`: the folder's decoding settings, its loading without torchvision, and a model card that
states what the training run did, not what the recipe says a run would do."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from helpers import write_instructions

from mellm_core import create
from mellm_core.cli import main
from mellm_core.config import TrainConfig, load_recipe
from mellm_core.files.frames import read_rgb
from mellm_core.model.card import model_card
from mellm_core.model.training import run_local
from mellm_core.records import IMAGE_TAG

# The generation settings vLLM takes from a model folder's generation_config.json as its defaults.
VLLM_DEFAULTS = ("repetition_penalty", "temperature", "top_k", "top_p", "min_p", "max_new_tokens")
# A rate this high makes the answers swing: the best validation comes before the last step (step 2 of 6 here).
RUN = ["train.lora_rank=4", "train.lora_alpha=8", "train.lora_dropout=0.1", "train.lr=2.0", "train.batch_size=4",
       "train.num_workers=1", "train.log_every=3", "train.max_steps=6", "train.checkpoint_every=3",
       "train.val_fraction=0.25", "train.eval_every=2", "train.keep=best_val", "seed=1",
       "backbone.params={max_new_tokens: 4}"]


def front_matter(card: str) -> dict:
    """The card's YAML metadata block, as the Hub reads it."""
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_the_merged_folder_decodes_as_mellm_does_and_answers_as_base_plus_adapter(tmp_path, monkeypatch):
    """A base that ships sampling and penalty settings (as Qwen's instruct releases do) is exported with a
    generation_config.json that is mellm's greedy decoding with the recipe's answer cap; loaded with
    AutoModelForImageTextToText, AutoTokenizer and AutoImageProcessor (AutoProcessor needs torchvision) and asked
    through its own chat template with no decoding arguments, it gives base + adapter's answers word for word."""
    from PIL import Image
    from transformers import (
        AutoImageProcessor,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
        GenerationConfig,
        Qwen2_5_VLProcessor,
    )

    rows = write_instructions(tmp_path / "data", n=3)
    backbone = create("backbone", "qwen2_5_vl")
    base = tmp_path / "base"
    shutil.copytree(backbone.resolve("tiny-random"), base)
    ids = json.loads((base / "generation_config.json").read_text())
    GenerationConfig(eos_token_id=ids["eos_token_id"], pad_token_id=ids["pad_token_id"], do_sample=True,
                     temperature=0.7, top_k=20, top_p=0.8, repetition_penalty=1.5).save_pretrained(base)
    torch.manual_seed(0)
    module = backbone.load(str(base), train=TrainConfig(lora_rank=4, lora_alpha=8, lora_dropout=0.0))
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # enough for the tiny model to say words, not blank lines
    run = tmp_path / "run"
    backbone.save(module, run / "train" / "adapter")
    assert main(["export", "quickstart", f"output_dir={run}", f"backbone.model={base}", "eval.max_new_tokens=12",
                 "--merge"]) == 0
    merged = run / "train" / "merged"

    written = json.loads((merged / "generation_config.json").read_text())
    assert written["do_sample"] is False and written["max_new_tokens"] == 12
    assert written["eos_token_id"] == ids["eos_token_id"] and written["pad_token_id"] == ids["pad_token_id"]
    vllm = GenerationConfig.from_pretrained(merged).to_diff_dict()
    assert {k for k in VLLM_DEFAULTS if vllm.get(k) is not None} == {"max_new_tokens"}
    card = (merged / "README.md").read_text()
    assert "at most 12 new tokens" in card and "`temperature: 0`" in card

    if importlib.util.find_spec("torchvision") is None:  # what the card and docs/serving.md say
        with pytest.raises(ImportError, match="[Tt]orchvision"):
            AutoProcessor.from_pretrained(merged)
    tokenizer, images = AutoTokenizer.from_pretrained(merged), AutoImageProcessor.from_pretrained(merged)
    model = AutoModelForImageTextToText.from_pretrained(merged).eval()
    # Qwen's processor around the two parts, as AutoProcessor builds it; its class check demands the video
    # processor (torchvision), which images never reach
    monkeypatch.setattr(Qwen2_5_VLProcessor, "check_argument_for_proper_class", lambda self, name, arg: None)
    processor = Qwen2_5_VLProcessor(image_processor=images, tokenizer=tokenizer, video_processor=None)
    prompts = [r["messages"][0]["content"] for r in rows]
    pictures = [read_rgb(r["images"][0]) for r in rows]
    theirs = []
    for prompt, picture in zip(prompts, pictures, strict=True):
        before, after = prompt.split(IMAGE_TAG)
        parts = [{"type": "text", "text": before}, {"type": "image"}, {"type": "text", "text": after}]
        text = tokenizer.apply_chat_template([{"role": "user", "content": [p for p in parts if p.get("text") != ""]}],
                                             add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=[Image.fromarray(picture)], return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs)  # the folder's generation_config.json decides how
        theirs.append(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())

    ours = backbone.generate(backbone.load(str(base), adapter=str(run / "train" / "adapter")), prompts, pictures,
                             max_new_tokens=12)
    assert theirs == ours and all(ours)
    plain = create("backbone", "qwen2_5_vl")
    assert plain.generate(plain.load(str(base)), prompts, pictures, max_new_tokens=12) != ours  # the adapter counts


def test_the_card_states_what_the_run_did_and_only_that(tmp_path):
    """The card's training facts come from the run's train/summary.json: steps run, workers, the step whose adapter
    train.keep=best_val kept and its validation; the optimizer settings only while the recipe still has the run's
    settings; "not recorded" for an adapter no summary describes. Its metadata is what the Hub reads, and its
    snippet names the folder written."""
    write_instructions(tmp_path, n=12)
    args = [f"output_dir={tmp_path}", *RUN]
    summary = run_local(load_recipe("quickstart", args), progress=False)
    assert summary is not None and summary.kept and summary.end_step == 6

    assert main(["export", "quickstart", *args, "--merge"]) == 0
    merged = (tmp_path / "train" / "merged").resolve()
    card = (merged / "README.md").read_text()
    meta = front_matter(card)
    assert meta["license"] == "other" and meta["pipeline_tag"] == "image-text-to-text"
    assert meta["library_name"] == "transformers" and "base_model" not in meta  # tiny-random has no Hub id
    assert "- **Training**: 6 steps on 1 worker, final loss " in card
    assert "4 samples a step, AdamW lr 2.0 on a cosine schedule, weight decay 0.0, seed 1" in card
    kept = summary.kept
    assert (f"- **Adapter kept**: step {kept['step']} of 6, the best validation (val_loss {kept['val_loss']}, "
            f"val_acc {kept['val_acc']}) on 1 held-out training subject (`train.keep: best_val`)") in card
    assert "1200 steps" not in card and "1500" not in card  # neither TrainConfig's nor quickstart's max_steps
    assert f'AutoModelForImageTextToText.from_pretrained("{merged}", dtype="auto")' in card
    assert "PATH" not in card and "install the torchvision build that matches your torch" in card

    other = tmp_path / "other"
    assert main(["export", "quickstart", *args, "train.lr=0.5", "--out", str(other), "--merge"]) == 0
    card = (other / "README.md").read_text()
    assert "- **Training**: 6 steps on 1 worker" in card and "lr 0.5" not in card and "lr 2.0" not in card
    assert "does not give the run's settings digest" in card

    fresh = create("backbone", "qwen2_5_vl")
    fresh.save(fresh.load("tiny-random", train=TrainConfig(lora_rank=4, lora_alpha=8)), tmp_path / "untrained")
    assert main(["export", "quickstart", *args, "--adapter", str(tmp_path / "untrained"), "--out",
                 str(tmp_path / "third"), "--merge"]) == 0
    card = (tmp_path / "third" / "README.md").read_text()
    assert "- **Training**: not recorded: the adapter merged is not the one `mellm train` published" in card
    assert "6 steps" not in card and "Adapter kept" not in card and "lr 2.0" not in card

    # a run that published its last adapter (train.keep: last) is quoted with that step's validation
    record = tmp_path / "train" / "summary.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "kept": None}))
    last = json.loads((tmp_path / "train" / "metrics.jsonl").read_text().splitlines()[-1])
    assert main(["export", "quickstart", *args, "--out", str(tmp_path / "fourth"), "--merge"]) == 0
    card = (tmp_path / "fourth" / "README.md").read_text()
    assert (f"- **Validation** at step 6, the adapter's: val_loss {last['val_loss']}, val_acc {last['val_acc']} "
            "on 1 held-out training subject") in card and "Adapter kept" not in card


def test_a_card_names_the_hub_base_model_and_says_when_no_run_is_recorded(tmp_path):
    recipe = load_recipe("quickstart", [f"output_dir={tmp_path}", "backbone.model=Qwen/Qwen2.5-VL-7B-Instruct"])
    card = model_card(recipe, str(tmp_path / "adapter"), {"r": 8}, "bfloat16", Path("/models/merged"))
    assert front_matter(card)["base_model"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert "- **Training**: not recorded: there is no `train/summary.json` under" in card
    assert 'from_pretrained("/models/merged")' in card
    assert "generation_config.json" not in card  # no decoding settings given, none claimed
