"""The Middlebury colour wheel (Baker et al.), blended with the gray onset so that the face stays visible."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mellm_core import PluginSpec, hookimpl
from mellm_core.motion.mmc import wheel_colorize


@dataclass
class WheelParams:
    max_flow: float = 0.0  # magnitude shown fully saturated (0 = the largest magnitude in the map)
    face_weight: float = 0.5  # how much the gray onset darkens the colour (0 = pure flow colour)

    def __post_init__(self) -> None:
        if self.max_flow < 0:
            raise ValueError(f"max_flow must not be negative, got {self.max_flow}")
        if not 0 <= self.face_weight <= 1:
            raise ValueError(f"face_weight must be between 0 and 1, got {self.face_weight}")


class Wheel:
    """Standard optical-flow colour coding for side-by-side comparison with the MMC-map."""

    def __init__(self, params: WheelParams):
        self.params = params

    def __call__(self, flow: np.ndarray, onset_gray: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        colour = wheel_colorize(flow, self.params.max_flow).astype(np.float32)
        shade = 1 - self.params.face_weight + self.params.face_weight * onset_gray.astype(np.float32)[..., None] / 255
        return np.clip(colour * shade, 0, 255).astype(np.uint8)


@hookimpl
def mellm_colorizer():
    yield PluginSpec("wheel", Wheel, WheelParams, "Middlebury flow colour wheel over the gray onset")
