"""The MMC colorizer: quantized direction as hue, min-max magnitude as brightness, over the gray onset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mellm_core import PluginSpec, hookimpl
from mellm_core.mmc import mmc_colorize


@dataclass
class MMCParams:
    step: float = 30.0  # quantize directions to multiples of this many degrees (45: eight directions; 0: off)
    mask_percentile: float = 0.0  # keep colour only where magnitude exceeds this percentile

    def __post_init__(self) -> None:
        if self.step < 0 or self.step > 360:
            raise ValueError(f"step must be between 0 and 360 degrees, got {self.step}")
        if not 0 <= self.mask_percentile <= 100:
            raise ValueError(f"mask_percentile must be between 0 and 100, got {self.mask_percentile}")


class MMC:
    """Motion-enhanced colour map as in the MELLM paper (section III-C)."""

    def __init__(self, params: MMCParams):
        self.params = params

    def __call__(self, flow: np.ndarray, onset_gray: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return mmc_colorize(flow, onset_gray, self.params.step, self.params.mask_percentile)


@hookimpl
def mellm_colorizer():
    yield PluginSpec("mmc", MMC, MMCParams, "MELLM motion-enhanced colour map (hue = direction, value = magnitude)")
