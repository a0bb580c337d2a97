"""OpenCV contrib Dual TV-L1 optical flow: the MELLM reference estimator."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mellm_core import PluginSpec, hookimpl
from mellm_core.files.frames import check_pair


@dataclass
class TVL1Params:
    tau: float = 0.25  # time step of the numerical scheme
    lambda_: float = 0.15  # weight of the data term (smaller = smoother flow)
    theta: float = 0.3  # tightness of the coupling
    nscales: int = 5  # pyramid levels
    warps: int = 5  # warpings per scale
    epsilon: float = 0.01  # stopping threshold
    inner_iterations: int = 30  # iterations per warp, between outer updates
    outer_iterations: int = 10  # outer (thresholding) iterations per warp
    scale_step: float = 0.8  # pyramid downscale factor
    median_filtering: int = 5  # median filter kernel size
    gamma: float = 0.0  # coefficient of the illumination variation term (0 = off)


class TVL1:
    """``cv2.optflow.DualTVL1OpticalFlow_create`` with the settings above (OpenCV's defaults by default)."""

    def __init__(self, params: TVL1Params):
        self.params = params
        self._impl = cv2.optflow.DualTVL1OpticalFlow_create(  # type: ignore[attr-defined]  # contrib: no stubs
            tau=params.tau,
            lambda_=params.lambda_,
            theta=params.theta,
            nscales=params.nscales,
            warps=params.warps,
            epsilon=params.epsilon,
            innnerIterations=params.inner_iterations,
            outerIterations=params.outer_iterations,
            scaleStep=params.scale_step,
            gamma=params.gamma,
            medianFiltering=params.median_filtering,
        )

    def __call__(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        check_pair(onset, apex)
        return self._impl.calc(onset, apex, None).astype(np.float32, copy=False)


@hookimpl
def mellm_flow():
    yield PluginSpec("tvl1", TVL1, TVL1Params, "OpenCV Dual TV-L1 (the MELLM reference flow)")
