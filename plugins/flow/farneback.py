"""OpenCV Farnebäck polynomial-expansion optical flow."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mellm_core import PluginSpec, hookimpl
from mellm_core.files.frames import check_pair


@dataclass
class FarnebackParams:
    pyr_scale: float = 0.5  # pyramid downscale factor
    levels: int = 4  # pyramid levels
    winsize: int = 15  # averaging window
    iterations: int = 5  # iterations per level
    poly_n: int = 5  # neighbourhood of the polynomial expansion
    poly_sigma: float = 1.1  # Gaussian sigma of the polynomial expansion
    gaussian: bool = True  # Gaussian instead of box window


class Farneback:
    """``cv2.calcOpticalFlowFarneback`` with the settings above."""

    def __init__(self, params: FarnebackParams):
        self.params = params

    def __call__(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        check_pair(onset, apex)
        p = self.params
        flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if p.gaussian else 0
        flow = cv2.calcOpticalFlowFarneback(
            onset, apex, None, p.pyr_scale, p.levels, p.winsize, p.iterations, p.poly_n, p.poly_sigma, flags
        )
        return flow.astype(np.float32, copy=False)


@hookimpl
def mellm_flow():
    yield PluginSpec("farneback", Farneback, FarnebackParams, "OpenCV Farneback polynomial-expansion flow")
