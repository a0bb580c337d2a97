"""FlowCNN: a small CNN classifier on MMC-maps, the specialist baseline beside MELLM (paper Table I).

It trains with the same loop and is evaluated by the same parser as the multimodal backbones: ``generate`` writes
the predicted class as a one-line conclusion ("Final conclusion: the micro-expression is fear."), so a recipe
can swap ``backbone.name`` between ``qwen2_5_vl`` and ``flowcnn`` and compare both on identical splits.

``backbone.model`` names nothing to download: any string (``flowcnn`` by convention) builds the network from
``backbone.params`` with the loop's seeded initialisation; a folder written by ``save`` or ``merge`` (it holds
``config.json``) starts from its weights instead. A saved folder holds ``model.safetensors`` (all weights),
``config.json`` (params and class order; these, not the recipe's, shape the network its weights fit) and
``adapter_config.json``, the file by which the stages recognise a trained folder.

Batch normalisation uses each worker's micro-batch statistics, so N data-parallel workers match one worker up
to those statistics (the loss itself is the per-sample mean, as the loop requires).

This module holds what the registry reads (the parameters); the network (``flowcnn_model``) and torch load when
a backbone is created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mellm_core import PluginSpec, hookimpl

NAME = "flowcnn"


@dataclass
class FlowCNNParams:
    image_size: int = 64  # maps are resized to this square side (pixels) before the network
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])  # output channels of each conv-BN-ReLU-pool
    dropout: float = 0.2  # dropout before the linear classifier (training only)
    input: str = "map"  # what the network reads: "map" = the MMC-map's RGB pixels (the only choice)

    def __post_init__(self) -> None:
        if self.input != "map":
            raise ValueError(f"input must be 'map', got '{self.input}'")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"channels must be a non-empty list of positive widths, got {self.channels}")
        if self.image_size < 2 ** len(self.channels):
            raise ValueError(f"image_size {self.image_size} is too small for {len(self.channels)} pooling blocks "
                             f"(at least {2 ** len(self.channels)})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def create(params: FlowCNNParams) -> Any:
    """The backbone, importing the network code (torch) only now."""
    from mellm_plugins.backbone.flowcnn_model import FlowCNN

    return FlowCNN(params)


@hookimpl
def mellm_backbone():
    yield PluginSpec(NAME, create, FlowCNNParams,
                     "Small CNN classifier on MMC-maps: the specialist baseline (model: any name, or a saved folder)")
