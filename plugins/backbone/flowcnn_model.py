"""FlowCNN's network and training/generation code (torch loads with this module, when the backbone is created:
``flowcnn.create``). What it is and how a saved folder looks: ``flowcnn``'s docstring.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from mellm_core.errors import InputError
from mellm_core.files.frames import read_rgb
from mellm_plugins.backbone.flowcnn import NAME, FlowCNNParams

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
MARKER = "adapter_config.json"  # the stages treat a folder holding this file as a trained adapter


class FlowCNNNet(nn.Module):
    """Conv-BN-ReLU-max-pool blocks, global average pooling, dropout and one linear layer to class logits."""

    def __init__(self, channels: list[int], classes: int, dropout: float):
        super().__init__()
        blocks: list[nn.Module] = []
        width = 3
        for out in channels:
            blocks += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, classes))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels))


class FlowCNN:
    """Load, collate, loss, save and generate for the FlowCNN classifier (see the backbone hook's contract)."""

    def __init__(self, params: FlowCNNParams):
        self.params = params
        self.labels: list[str] = []

    # ------------------------------------------------------------------ loading

    def load(self, model: str, device: str = "cpu", adapter: str | None = None, train: Any = None,
             labels: tuple[str, ...] | list[str] = ()) -> torch.nn.Module:
        """The network on ``device``: from ``adapter`` (or a saved ``model`` folder) when given, else freshly
        initialised for ``labels``; trainable when ``train`` is given, else in eval mode."""
        folder = adapter or (model if Path(model, CONFIG).is_file() else None)
        if folder:
            module = self._load_folder(Path(folder), list(labels))
        else:
            self.labels = self._check_labels(list(labels))
            module = FlowCNNNet(self.params.channels, len(self.labels), self.params.dropout)
        module.to(device)
        if train is None:
            return module.eval()
        for param in module.parameters():
            param.requires_grad_(True)
        return module.train()

    @staticmethod
    def _check_labels(labels: list[str]) -> list[str]:
        if not labels:
            raise InputError("backbone flowcnn needs the protocol's classes (labels) to size its classifier; "
                             "build instructions first or set eval.protocol")
        if len(set(labels)) != len(labels):
            raise InputError(f"backbone flowcnn got repeated classes in labels {labels}")
        return labels

    def _load_folder(self, folder: Path, labels: list[str]) -> FlowCNNNet:
        """The network saved in ``folder`` with its own params and classes (checked against ``labels`` if given)."""
        if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
            raise InputError(f"{folder} is not a flowcnn folder (it needs {CONFIG} and {WEIGHTS})")
        config = json.loads((folder / CONFIG).read_text())
        if config.get("backbone") != NAME:
            raise InputError(f"{folder / CONFIG} was written by backbone '{config.get('backbone')}', not '{NAME}'")
        saved = self._check_labels(list(config["labels"]))
        if labels and set(labels) != set(saved):
            raise InputError(f"{folder} was trained on classes {saved}, not on the classes asked for {labels}")
        self.params = FlowCNNParams(**config["params"])
        self.labels = saved
        module = FlowCNNNet(self.params.channels, len(saved), self.params.dropout)
        module.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
        return module

    # ------------------------------------------------------------------ images

    def _pixels(self, images: list[np.ndarray]) -> torch.Tensor:
        """RGB uint8 images -> a float batch N x 3 x S x S in [-1, 1] (area-resized to ``image_size``)."""
        size = self.params.image_size
        out = np.empty((len(images), size, size, 3), np.float32)
        for i, img in enumerate(images):
            img = np.asarray(img)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise InputError(f"image #{i} must be an RGB uint8 HxWx3 array, got {img.dtype} {img.shape}")
            out[i] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(out / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()

    # ------------------------------------------------------------------ training

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        """Each row's map as pixels and its label as a class index (MEU and MER rows alike)."""
        index = {label: i for i, label in enumerate(self.labels)}
        images, targets = [], []
        for row in rows:
            sample = row.get("sample_id")
            if len(row.get("images") or []) != 1:
                raise InputError(f"sample {sample}: expected one image, got {row.get('images')}")
            if row.get("label") not in index:
                raise InputError(f"sample {sample}: label {row.get('label')!r} is not one of the classes "
                                 f"{', '.join(self.labels)}")
            images.append(read_rgb(row["images"][0]))
            targets.append(index[row["label"]])
        return {"pixels": self._pixels(images), "labels": torch.tensor(targets, dtype=torch.long)}

    def loss(self, module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Mean over samples of each sample's cross-entropy; no tokens."""
        logits = module(batch["pixels"]).float()
        return F.cross_entropy(logits, batch["labels"]), 0

    def save(self, module: torch.nn.Module, out_dir: str | Path, weights: dict[str, torch.Tensor] | None = None
             ) -> None:
        """All weights (safetensors), the params and class order, and the trained-folder marker. ``weights``: the
        weights gathered whole from a sharded model (FSDP)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = module.state_dict() if weights is None else weights
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(out / WEIGHTS))
        config = {"backbone": NAME, "params": asdict(self.params), "labels": self.labels}
        (out / CONFIG).write_text(json.dumps(config, indent=2))
        (out / MARKER).write_text(json.dumps({"backbone": NAME, "weights": WEIGHTS, "config": CONFIG}, indent=2))

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def generate(self, module: torch.nn.Module, prompts: list[str], images: list[np.ndarray | None],
                 max_new_tokens: int | None = None) -> list[str]:
        """The predicted class of each image as a conclusion the project's parser reads (prompts are not read)."""
        if len(prompts) != len(images):
            raise InputError(f"generate: {len(prompts)} prompts but {len(images)} images")
        if not images:
            return []
        maps = [image for image in images if image is not None]
        if len(maps) < len(images):
            raise InputError(f"backbone {NAME} reads MMC-maps, and the prompt gives the flow as text (no image): "
                             "use an image prompt (fgmu-en, fgmu-zh) or a text backbone")
        device = next(module.parameters()).device
        predicted = module(self._pixels(maps).to(device)).argmax(1).tolist()
        return [f"Final conclusion: the micro-expression is {self.labels[k]}." for k in predicted]

    def merge(self, module: torch.nn.Module, out_dir: str | Path) -> None:
        """The same folder as ``save``: FlowCNN has no adapter, all its weights are trained and saved."""
        self.save(module, out_dir)
