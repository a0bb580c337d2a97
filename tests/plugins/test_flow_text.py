"""The flow-as-text path: the flow-text prompt (the regions' motion as text, English and Chinese), instructions
that carry text instead of a map, the text-only qwen2_5 backbone on its tiny model (loaded through
from_pretrained, LoRA in the decoder, adapters, merge), and the stages unchanged: train, eval, analyze."""

from __future__ import annotations

import json

import pytest
import requests
import torch

from mellm_core import create
from mellm_core.cli import main
from mellm_core.config import TrainConfig
from mellm_core.errors import InputError
from mellm_core.motion.regions import REGIONS, RegionMotion, regions_from_dict
from mellm_core.records import FLOW_TAG, IMAGE_TAG
from mellm_core.text.turns import takes_text, user_turn

FAST = ["maps.flow=dis", "train.max_steps=8", "train.num_workers=1", "train.batch_size=4", "train.curriculum_steps=4",
        "train.checkpoint_every=8", "train.log_every=4", "backbone.params.max_new_tokens=16"]


def motion(**magnitudes: float) -> dict[str, RegionMotion]:
    return {name: RegionMotion([0.0, -m], m, 1.5 * m, "up", "purple", "strong" if m > 1 else "weak", m > 1)
            for name, m in magnitudes.items()}


def test_the_prompt_describes_each_regions_motion_in_its_language():
    en, zh = create("prompt", "flow-text"), create("prompt", "flow-text", language="zh", style="compact")
    assert takes_text(en) and not takes_text(create("prompt", "fgmu-en"))
    question = en.user_prompt("meu", ["happiness", "sadness"])
    assert FLOW_TAG in question and IMAGE_TAG not in question and "colour" not in question.lower()
    # the preamble names no head-motion mode: it is true of whichever maps.head_motion measured the regions
    full_zh = create("prompt", "flow-text", language="zh").user_prompt("meu", ["happiness"])
    assert "the head's own motion removed" in question and "nose" not in question
    assert "去除了头部自身的运动" in full_zh and "鼻" not in full_zh
    regions = motion(**{"right mouth corner": 1.234, "chin": 0.05, "right inner brow": 0.456})
    text = en.describe(regions)
    assert text.splitlines() == ["Right inner brow: mean 0.46 px, peak 0.68 px, up, weak",
                                 "Right mouth corner: mean 1.23 px, peak 1.85 px, up, strong",
                                 "Chin: mean 0.05 px, peak 0.08 px, up, weak"]  # the regions' fixed order
    assert list(REGIONS).index("right inner brow") < list(REGIONS).index("right mouth corner")
    turn = user_turn(en, "mer", ["happiness", "sadness"], regions)
    assert text in turn and FLOW_TAG not in turn and turn.rstrip().endswith("happiness or sadness.")
    assert zh.describe(regions).splitlines()[0] == "右侧眉头：平均 0.46 像素，峰值 0.68 像素，向上，弱"
    assert zh.user_prompt("mer", ["happiness"]).startswith(FLOW_TAG)
    with pytest.raises(InputError, match="no region motion was measured"):
        user_turn(en, "mer", ["happiness"])
    with pytest.raises(Exception, match="language must be one of: en, zh"):
        create("prompt", "flow-text", language="fr")


@pytest.fixture(scope="module")
def text_backbone():
    return create("backbone", "qwen2_5")


def test_the_text_backbone_is_a_real_causal_lm_with_lora_in_its_decoder(text_backbone, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = text_backbone.resolve("tiny-random")
    plain = AutoModelForCausalLM.from_pretrained(folder)
    assert type(plain).__name__ == "Qwen2ForCausalLM" and not hasattr(plain.model, "visual")
    torch.manual_seed(0)
    module = text_backbone.load("tiny-random", train=TrainConfig(lora_rank=4, lora_alpha=8, lora_dropout=0.0))
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".layers." in n for n in trainable)
    rows = [{"sample_id": f"s{i}", "images": [], "messages": [
        {"role": "user", "content": f"Chin: mean {i}.00 px\nWhich micro-expression?"},
        {"role": "assistant", "content": ("happiness", "sadness")[i % 2]}]} for i in range(4)]
    batch = text_backbone.collate(rows)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    answer = [t for t, keep in zip(batch["input_ids"][0].tolist(), (batch["labels"][0] != -100).tolist(),
                                   strict=True) if keep]
    assert text_backbone.tokenizer.decode(answer) == "happiness<|im_end|>"
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(12):
        loss, _ = text_backbone.loss(module, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]  # it learns the two answers
    text_backbone.save(module, tmp_path / "adapter")
    again = text_backbone.load("tiny-random", adapter=str(tmp_path / "adapter"))
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), tmp_path / "adapter").eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        assert torch.allclose(again(**inputs).logits, reference(**inputs).logits, atol=1e-4)
    prompts = [r["messages"][0]["content"] for r in rows]
    together = text_backbone.generate(again, prompts, [None] * 4, 6)
    assert together == [text_backbone.generate(again, [p], [None], 6)[0] for p in prompts]
    text_backbone.merge(again, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        assert torch.allclose(merged(**inputs).logits, reference(**inputs).logits, atol=1e-4)
    with pytest.raises(InputError, match=r"asks for an image \(<image>\), and backbone qwen2_5 reads text"):
        text_backbone.generate(again, [IMAGE_TAG + "What is shown?"], [None])
    with pytest.raises(InputError, match="the prompt gives the flow as text .*use .* the text backbone qwen2_5"):
        vl = create("backbone", "qwen2_5_vl")
        vl.generate(vl.load("tiny-random"), ["Chin: mean 1.00 px"], [None])


def test_the_stages_train_evaluate_and_analyze_on_text(tmp_path, capsys):
    """recipes/flow_text.yaml through the unchanged stages: instructions carry the manifest's region motion as
    text and no image, training and evaluation run, `mellm analyze` asks about a pair's flow in words, the merged
    export loads as a causal LM with a card that says so, and the service answers."""
    from mellm_core.records import MapRecord

    out = tmp_path / "run"
    assert main(["synth", "--out", str(tmp_path / "data"), "--n", "8", "--seed", "1", "--json"]) == 0
    args = [f"output_dir={out}", f"data.root={tmp_path / 'data'}", *FAST]
    assert main(["train", "flow_text", *args, "--json"]) == 0
    rows = [json.loads(x) for x in (out / "instructions" / "train.jsonl").read_text().splitlines()]
    records = {r.sample_id: r for r in map(MapRecord.from_json, (out / "maps" / "manifest.jsonl").read_text()
                                            .splitlines())}
    prompt = create("prompt", "flow-text", style="compact")
    for row in rows:
        assert row["images"] == [] and IMAGE_TAG not in row["messages"][0]["content"]
        assert prompt.describe(regions_from_dict(records[row["sample_id"]].regions)) in row["messages"][0]["content"]
    capsys.readouterr()
    assert main(["eval", "flow_text", *args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["tasks"]) == {"meu", "mer"} and all(t["n"] > 0 for t in result["tasks"].values())
    predictions = [json.loads(x) for x in (out / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert predictions and not any(p["error"] for p in predictions)
    clip = sorted((tmp_path / "data" / "CASME2_RAW_selected" / "sub01" / "EP01").iterdir())
    assert main(["analyze", str(clip[0]), str(clip[-1]), "--recipe", "flow_text", *args,
                 "--map", str(tmp_path / "map.png"), "--json"]) == 0
    analysis = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "analysis" in analysis and analysis["adapter"]
    assert main(["export", "flow_text", *args, "--merge"]) == 0
    card = (out / "train" / "merged" / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "on the flow as text" in card
    assert "vision" not in card and "AutoModelForCausalLM" in card
    from transformers import AutoModelForCausalLM

    assert type(AutoModelForCausalLM.from_pretrained(out / "train" / "merged")).__name__ == "Qwen2ForCausalLM"
    served(args, clip, out)


def served(args: list[str], clip: list, out) -> None:
    """The trained text model behind `mellm serve`: /v1/analyze reads a pair's flow as text, and
    /v1/chat/completions takes the question alone (the flow described in it) and answers as evaluation did."""
    from serving import AUTH, KEY, start_serve, stop_serve

    row = json.loads((out / "instructions" / "test.jsonl").read_text().splitlines()[0])
    predictions = {(p["sample_id"], p["task"]): p["text"] for p in map(
        json.loads, (out / "eval" / "predictions.jsonl").read_text().splitlines())}
    question = row["messages"][0]["content"]
    server = start_serve(out.parent, args, KEY, recipe="flow_text")  # output_dir in args: the trained run
    try:
        files = {role: (f"{role}.png", path.read_bytes()) for role, path in (("onset", clip[0]), ("apex", clip[-1]))}
        answer = requests.post(server.url + "v1/analyze", files=files, headers=AUTH, timeout=120)
        assert answer.status_code == 200, answer.text
        assert {"emotion", "aus", "analysis", "mmc_map_png_base64"} <= answer.json().keys()
        body = {"model": "tiny-random", "max_tokens": 16, "messages": [{"role": "user", "content": question}]}
        chat = requests.post(server.url + "v1/chat/completions", json=body, headers=AUTH, timeout=120)
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["content"] == predictions[(row["sample_id"], row["task"])]
        png = "data:image/png;base64," + answer.json()["mmc_map_png_base64"]
        body["messages"][0]["content"] = [{"type": "text", "text": question},
                                          {"type": "image_url", "image_url": {"url": png}}]
        refused = requests.post(server.url + "v1/chat/completions", json=body, headers=AUTH, timeout=60)
        assert refused.status_code == 400 and "reads text only: send no image_url part" in refused.json()["error"]
        body["messages"][0]["content"] = "  "
        empty = requests.post(server.url + "v1/chat/completions", json=body, headers=AUTH, timeout=60)
        assert empty.status_code == 400 and "holds no text" in empty.json()["error"]
    finally:
        stop_serve(server.proc)
