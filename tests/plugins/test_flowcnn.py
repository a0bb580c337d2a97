"""The flowcnn backbone: collation, per-sample loss, learning, saving, parsable answers, and `mellm train --local`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import CLASSES, write_instructions

from mellm_core import create
from mellm_core.config import TrainConfig
from mellm_core.errors import InputError
from mellm_core.files.frames import read_rgb
from mellm_core.text.labels import EMOTION_SYNONYMS, PROTOCOLS
from mellm_core.text.parse import parse_output

SMALL = {"image_size": 32, "channels": [8, 16], "dropout": 0.0}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    return write_instructions(tmp_path_factory.mktemp("flowcnn"), n=24)


def trainable(**params):
    torch.manual_seed(0)
    backbone = create("backbone", "flowcnn", **{**SMALL, **params})
    return backbone, backbone.load("flowcnn", train=TrainConfig(), labels=CLASSES)


def test_collate_gives_resized_pixels_and_class_indices_for_both_tasks(rows):
    backbone, _ = trainable(image_size=40)
    mixed = [rows[0], {**rows[1], "task": "meu"}, rows[2], rows[3]]
    batch = backbone.collate(mixed)
    assert batch["pixels"].shape == (4, 3, 40, 40) and batch["pixels"].dtype == torch.float32
    assert -1.0 <= float(batch["pixels"].min()) and float(batch["pixels"].max()) <= 1.0
    assert batch["labels"].tolist() == [CLASSES.index(r["label"]) for r in mixed]


def test_unknown_label_and_missing_classes_are_input_errors(rows):
    backbone, _ = trainable()
    with pytest.raises(InputError, match=r"sample s01: label 'contempt' is not one of the classes happiness"):
        backbone.collate([rows[0], {**rows[1], "label": "contempt"}])
    with pytest.raises(InputError, match="needs the protocol's classes"):
        create("backbone", "flowcnn").load("flowcnn")


def test_loss_is_the_mean_of_per_sample_cross_entropies(rows):
    backbone, module = trainable()
    module.eval()  # batch statistics aside, each sample's loss is independent of the others
    batch = backbone.collate(rows[:6])
    loss, tokens = backbone.loss(module, batch)
    assert tokens == 0
    assert torch.allclose(loss, F.cross_entropy(module(batch["pixels"]), batch["labels"]))
    singles = [backbone.loss(module, backbone.collate([row]))[0] for row in rows[:6]]
    assert torch.allclose(loss, torch.stack(singles).mean(), atol=1e-6)


def test_loss_falls_and_training_images_are_classified(rows):
    backbone, module = trainable()
    batch = backbone.collate(rows)
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, _ = backbone.loss(module, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    module.eval()
    texts = backbone.generate(module, ["<image>"] * len(rows), [read_rgb(r["images"][0]) for r in rows])
    assert [parse_output(t, CLASSES).emotion for t in texts] == [r["label"] for r in rows]


def test_save_then_load_gives_identical_logits(rows, tmp_path):
    backbone, module = trainable(image_size=48)
    batch = backbone.collate(rows[:5])
    module.eval()
    expected = module(batch["pixels"])
    backbone.save(module, tmp_path / "adapter")
    assert {p.name for p in (tmp_path / "adapter").iterdir()} == {"model.safetensors", "config.json",
                                                                   "adapter_config.json"}
    config = json.loads((tmp_path / "adapter" / "config.json").read_text())
    assert config["labels"] == CLASSES and config["params"]["image_size"] == 48
    # The folder's own params shape the network, whatever the recipe's say; its classes may come in any order.
    reloaded = create("backbone", "flowcnn")
    again = reloaded.load("flowcnn", adapter=str(tmp_path / "adapter"), labels=CLASSES[::-1])
    assert not again.training and reloaded.params.image_size == 48 and reloaded.labels == CLASSES
    assert torch.equal(again(reloaded.collate(rows[:5])["pixels"]), expected)
    reloaded.merge(again, tmp_path / "merged")
    from_model = create("backbone", "flowcnn").load(str(tmp_path / "merged"))
    assert torch.equal(from_model(batch["pixels"]), expected)
    with pytest.raises(InputError, match="was trained on classes"):
        create("backbone", "flowcnn").load("flowcnn", adapter=str(tmp_path / "adapter"), labels=["fear", "anger"])


@pytest.mark.parametrize("classes", [list(p.classes) for p in PROTOCOLS.values() if p.classes]
                         + [list(EMOTION_SYNONYMS)])
def test_generated_text_parses_back_to_each_class(classes):
    backbone = create("backbone", "flowcnn", **SMALL)
    module = backbone.load("flowcnn", labels=classes)
    image = np.zeros((20, 30, 3), np.uint8)
    head = module.head[-1]
    for k, label in enumerate(classes):
        with torch.no_grad():
            head.weight.zero_()
            head.bias.copy_(F.one_hot(torch.tensor(k), len(classes)).float())
        (text,) = backbone.generate(module, ["<image>"], [image])
        assert parse_output(text, classes).emotion == label, text
    with pytest.raises(InputError, match="2 prompts but 1 images"):
        backbone.generate(module, ["<image>", "<image>"], [image])


def test_mellm_train_local_writes_a_flowcnn_folder_that_eval_loads(tmp_path):
    from mellm_core.cli import main
    from mellm_core.config import load_recipe
    from mellm_core.model.predictor import Predictor, default_adapter
    from mellm_core.model.training import finished, plan

    write_instructions(tmp_path, n=12)
    recipe_path = str(Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml")
    overrides = [f"output_dir={tmp_path}", "backbone.name=flowcnn", "backbone.model=flowcnn",
                 "backbone.params.image_size=32", "train.max_steps=4", "train.batch_size=4", "train.num_workers=1",
                 "train.checkpoint_every=2", "train.log_every=2"]
    assert main(["train", recipe_path, *overrides, "--local", "--json"]) == 0
    adapter = tmp_path / "train" / "adapter"
    assert (adapter / "config.json").is_file() and (adapter / "model.safetensors").is_file()
    recipe = load_recipe(recipe_path, overrides)
    assert finished(plan(recipe)) is not None  # a rerun with the same settings is skipped
    predictor = Predictor(recipe, adapter=default_adapter(recipe))
    answers = predictor([np.full((64, 64, 3), 90, np.uint8)] * 2)
    assert all(a.emotion in CLASSES for a in answers)
