"""The MMC colorizer: quantized direction as hue, min-max magnitude as brightness, over the gray onset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mellm_core import PluginSpec, hookimpl
from mellm_core.motion.mmc import mmc_colorize
from mellm_core.motion.regions import face_mask


@dataclass
class MMCParams:
    step: float = 30.0  # quantize directions to multiples of this many degrees (45: eight directions; 0: off)
    mask_percentile: float = 0.0  # keep colour only where magnitude exceeds this percentile
    brightness_region: str = "image"  # colour and min-max brightness over the whole image (the reference) or the face
    face_margin: float = 0.1  # with brightness_region=face: the landmark hull grown by this fraction of its size

    def __post_init__(self) -> None:
        if self.step < 0 or self.step > 360:
            raise ValueError(f"step must be between 0 and 360 degrees, got {self.step}")
        if not 0 <= self.mask_percentile <= 100:
            raise ValueError(f"mask_percentile must be between 0 and 100, got {self.mask_percentile}")
        if self.brightness_region not in ("image", "face"):
            raise ValueError(f"brightness_region must be image or face, got '{self.brightness_region}'")
        if self.face_margin < 0:
            raise ValueError(f"face_margin must not be negative, got {self.face_margin}")


class MMC:
    """Motion-enhanced colour map as in the MELLM paper (section III-C)."""

    def __init__(self, params: MMCParams):
        self.params = params

    def __call__(self, flow: np.ndarray, onset_gray: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        p = self.params
        region = face_mask(onset_gray.shape, landmarks, p.face_margin) if p.brightness_region == "face" else None
        return mmc_colorize(flow, onset_gray, p.step, p.mask_percentile, region)


@hookimpl
def mellm_colorizer():
    yield PluginSpec("mmc", MMC, MMCParams, "MELLM motion-enhanced colour map (hue = direction, value = magnitude)")
