"""`mellm plan`: the counts are the real architecture's (meta device, peft), and memory and time follow them."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from helpers import write_instructions
from peft import LoraConfig, get_peft_model

from mellm_core.cli import main
from mellm_core.config import load_recipe
from mellm_core.model.plan import make_plan
from mellm_core.plugins import get_registry
from mellm_plugins.backbone.qwen2_5_vl_model import SHIPPED_CONFIGS

SEVEN_B = "mellm_qwen2_5_vl_7b"
LM_WRAPPED = r".*language_model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)"
VISION_WRAPPED = r".*visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(gate|up|down)_proj)"


def plan_json(capsys, *args) -> dict:
    assert main(["plan", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_7b_counts_are_peft_own_count_on_the_meta_model(capsys):
    values = json.loads((SHIPPED_CONFIGS / "Qwen2.5-VL-7B-Instruct.json").read_text())
    config = transformers.Qwen2_5_VLConfig(**{k: v for k, v in values.items()
                                              if not k.startswith("_") and k != "preprocessor"})
    with torch.device("meta"):
        model = transformers.Qwen2_5_VLForConditionalGeneration(config)
    base = sum(p.numel() for p in model.parameters())
    lora = LoraConfig(r=64, lora_alpha=64, target_modules=f"(?:{LM_WRAPPED})|(?:{VISION_WRAPPED})")
    peft_model = get_peft_model(model, lora, low_cpu_mem_usage=True)
    trainable, total = peft_model.get_nb_trainable_parameters()
    plan = plan_json(capsys, SEVEN_B)
    assert (plan["params_total"], plan["params_trainable"]) == (total, trainable)
    assert round(base / 1e9, 2) == 8.29  # the published size of Qwen2.5-VL-7B
    # by hand: rank x (in + out) per wrapped Linear, 28 LM layers and 32 vision blocks
    lm = 2 * 3584 + 2 * (3584 + 512) + 2 * 3584 + 3 * (3584 + 18944)
    vision = (1280 + 3840) + 2 * 1280 + 3 * (1280 + 3420)
    assert trainable == 64 * (28 * lm + 32 * vision) == 206_086_144
    assert sorted(plan["lora_targets"]) == plan["lora_targets"] and len(plan["lora_targets"]) == 12
    assert "visual.blocks.*.attn.qkv" in plan["lora_targets"]
    assert "language_model.layers.*.self_attn.q_proj" in plan["lora_targets"]


def test_the_plan_follows_the_recipe(capsys):
    plan = plan_json(capsys, SEVEN_B, "--gpu", "h100-80gb")
    assert set(plan) >= {"params_total", "params_trainable", "lora_targets", "image_tokens", "seq_len", "memory_gb",
                         "step_s"}
    assert plan["image_tokens"] == 256  # maps at most 448 px a side: 16 x 16 tokens of 28 px
    memory = plan["memory_gb"]
    assert memory["weights"] == pytest.approx((plan["params_total"] - plan["params_trainable"]) * 2 / 1e9, abs=0.01)
    assert memory["activations_checkpointed"] < memory["activations"] / 5
    assert plan["gradient_checkpointing"] and plan["step_s"] == plan["step_s_by_setting"]["checkpointed"]
    assert plan["step_s_by_setting"]["plain"] < plan["step_s"] and plan["fits"]
    # a quarter of the rank, a quarter of the adapter; a slower GPU, a longer step; vision LoRA off, fewer targets
    small = plan_json(capsys, SEVEN_B, "train.lora_rank=16")
    assert small["params_trainable"] * 4 == plan["params_trainable"]
    a100 = plan_json(capsys, SEVEN_B, "--gpu", "a100-80gb")
    assert a100["step_s"] == pytest.approx(plan["step_s"] * 989 / 312, rel=0.01)
    lm_only = plan_json(capsys, SEVEN_B, "backbone.params.vision_targets=[]")
    assert not [t for t in lm_only["lora_targets"] if t.startswith("visual")]
    # a frozen vision tower keeps no activations and has no backward pass; LoRA dropout keeps a copy of inputs
    assert lm_only["memory_gb"]["activations"] < memory["activations"] and lm_only["step_s"] < a100["step_s"]
    no_dropout = plan_json(capsys, SEVEN_B, "train.lora_dropout=0.0")
    assert no_dropout["memory_gb"]["activations"] < memory["activations"]
    assert no_dropout["memory_gb"]["weights"] == memory["weights"]
    one_worker = plan_json(capsys, SEVEN_B, "train.num_workers=1")
    assert one_worker["memory_gb"]["ddp_buckets"] == 0 < memory["ddp_buckets"]
    # FSDP over 4 workers: a quarter of weights, grads and moments each, no buckets, two decoder layers gathered
    fsdp = plan_json(capsys, SEVEN_B, "train.strategy=fsdp", "train.num_workers=4", "train.grad_accum=1")["memory_gb"]
    for key in ("weights", "trainable_weights_and_grads", "optimizer"):
        assert fsdp[key] == pytest.approx(memory[key] / 4, abs=0.002)
    assert fsdp["ddp_buckets"] == 0 and 0.9 < fsdp["fsdp_gathered"] < 1.1  # 2 x 233M weights of a layer in bf16
    assert memory["fsdp_gathered"] == 0 and fsdp["total"] < memory["total"] - 10
    # loading: whole on each DDP worker's device; under FSDP rank 0's host memory holds it, a device its quarter
    # and the one weight in flight (the 152,064 x 3,584 embedding in bf16, 1.09 GB)
    assert fsdp["load_host"] == memory["load_host"] == pytest.approx(memory["load"] - memory["overhead"], abs=0.01)
    assert fsdp["load"] == pytest.approx(memory["load_host"] / 4 + 1.09 + fsdp["overhead"], abs=0.01)
    fewer = plan_json(capsys, SEVEN_B, "backbone.params.max_pixels=50176", "maps.max_side=224")
    assert fewer["image_tokens"] == 64 and fewer["seq_len"] == plan["seq_len"] - 192


def test_the_tiny_model_plan_counts_the_model_training_loads_and_the_tokens_it_collates(tmp_path, capsys):
    rows = write_instructions(tmp_path, n=6)
    recipe = load_recipe("quickstart", [f"output_dir={tmp_path}"])
    plan = make_plan(recipe)
    backbone = get_registry().create("backbone", "qwen2_5_vl", **recipe.backbone.params)
    module = backbone.load(recipe.backbone.model, train=recipe.train, labels=["a"])
    assert (plan.shape.params_trainable, plan.shape.params_total) == module.get_nb_trainable_parameters()
    longest = max(rows, key=lambda r: len(r["messages"][1]["content"]))
    assert plan.shape.seq_len_exact
    assert plan.shape.seq_len == backbone.collate([longest])["input_ids"].shape[1]


def test_plan_errors_name_the_problem(capsys):
    assert main(["plan", SEVEN_B, "backbone.model=org/unknown-model"]) == 1
    err = capsys.readouterr().err
    assert "'org/unknown-model' is neither a local model folder, nor in the Hugging Face cache, nor a release" in err
    assert "Qwen/Qwen2.5-VL-7B-Instruct" in err
    assert main(["plan", SEVEN_B, "backbone.model=/models/no-such-model"]) == 1
    assert "'/models/no-such-model': no such folder" in capsys.readouterr().err
    assert main(["plan", SEVEN_B, "backbone.params.max_length=200"]) == 1
    assert "not less than backbone.params.max_length=200" in capsys.readouterr().err
    assert main(["plan", SEVEN_B, "--mfu", "1.5"]) == 1
    assert "mfu must be in (0, 1]" in capsys.readouterr().err
    assert main(["plan", "flowcnn_baseline"]) == 1
    assert "backbone 'flowcnn' cannot be planned" in capsys.readouterr().err


def test_the_text_backbone_plans_its_decoder_alone(tmp_path, capsys):
    """The flow-as-text 7B recipe: Qwen2.5-7B-Instruct's shipped configuration counted by peft on the meta model,
    no image tokens; the tiny text model's plan counts what training loads and the tokens it collates."""
    values = json.loads((SHIPPED_CONFIGS / "Qwen2.5-7B-Instruct.json").read_text())
    config = transformers.Qwen2Config(**{k: v for k, v in values.items() if not k.startswith("_")})
    with torch.device("meta"):
        model = transformers.Qwen2ForCausalLM(config)
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == 7.62  # the published size of Qwen2.5-7B
    wrapped = r".*model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)"
    trainable, total = get_peft_model(model, LoraConfig(r=64, lora_alpha=64, target_modules=wrapped),
                                      low_cpu_mem_usage=True).get_nb_trainable_parameters()
    plan = plan_json(capsys, "flow_text_qwen2_5_7b")
    assert (plan["params_total"], plan["params_trainable"]) == (total, trainable)
    assert trainable == 64 * 28 * (2 * 3584 + 2 * (3584 + 512) + 2 * 3584 + 3 * (3584 + 18944))
    assert plan["image_tokens"] == 0 and len(plan["lora_targets"]) == 7
    assert all(t.startswith("layers.*.") for t in plan["lora_targets"])
    # the tiny text model, on instructions that carry the flow as text
    rows = [{"sample_id": f"s{i}", "images": [], "messages": [
        {"role": "user", "content": "Chin: mean 1.25 px, peak 2.50 px, up, medium\n" * (i + 1) + "Which emotion?"},
        {"role": "assistant", "content": "happiness" * (3 - i)}]} for i in range(3)]
    (tmp_path / "instructions").mkdir()
    (tmp_path / "instructions" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = load_recipe("flow_text", [f"output_dir={tmp_path}"])
    tiny = make_plan(recipe)
    backbone = get_registry().create("backbone", "qwen2_5", **recipe.backbone.params)
    module = backbone.load(recipe.backbone.model, train=recipe.train, labels=["a"])
    assert (tiny.shape.params_trainable, tiny.shape.params_total) == module.get_nb_trainable_parameters()
    longest = max(rows, key=lambda r: len(r["messages"][0]["content"] + r["messages"][1]["content"]))
    assert tiny.shape.seq_len_exact and [t.name for t in tiny.shape.towers] == ["lm"]
    assert tiny.shape.seq_len == backbone.collate([longest])["input_ids"].shape[1]
    # each backbone names the releases it builds
    assert main(["plan", SEVEN_B, "backbone.model=Qwen/Qwen2.5-7B-Instruct"]) == 1
    assert "ships with mellm for this backbone (Qwen/Qwen2.5-VL-7B-Instruct)" in capsys.readouterr().err
    assert main(["plan", "flow_text", "backbone.model=" + get_registry().create("backbone", "qwen2_5_vl")
                 .resolve("tiny-random")]) == 1
    assert "is a qwen2_5_vl model; this backbone builds qwen2 and qwen3 models" in capsys.readouterr().err
