"""OpenCV DIS (dense inverse search) optical flow: much faster than TV-L1, a little less accurate."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mellm_core import PluginSpec, hookimpl
from mellm_core.files.frames import check_pair

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass
class DISParams:
    preset: str = "medium"  # ultrafast | fast | medium
    finest_scale: int = -1  # finest pyramid level (-1 = the preset's)
    patch_size: int = -1  # patch side in pixels (-1 = the preset's)
    patch_stride: int = -1  # stride between patches (-1 = the preset's)
    variational_iterations: int = -1  # variational refinement iterations (-1 = the preset's)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown DIS preset '{self.preset}' (choose one of: {', '.join(PRESETS)})")


class DIS:
    """``cv2.DISOpticalFlow`` from a preset, with optional overrides of its main settings."""

    def __init__(self, params: DISParams):
        self.params = params
        self._impl = cv2.DISOpticalFlow_create(PRESETS[params.preset])  # type: ignore[attr-defined]  # no stubs
        if params.finest_scale >= 0:
            self._impl.setFinestScale(params.finest_scale)
        if params.patch_size > 0:
            self._impl.setPatchSize(params.patch_size)
        if params.patch_stride > 0:
            self._impl.setPatchStride(params.patch_stride)
        if params.variational_iterations >= 0:
            self._impl.setVariationalRefinementIterations(params.variational_iterations)

    def __call__(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        check_pair(onset, apex)
        return self._impl.calc(onset, apex, None).astype(np.float32, copy=False)


@hookimpl
def mellm_flow():
    yield PluginSpec("dis", DIS, DISParams, "OpenCV DIS optical flow (presets ultrafast/fast/medium)")
