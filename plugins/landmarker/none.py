"""Landmarker ``none`` for pre-aligned, cropped datasets: a mean 68-point face placed at a fixed position."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mellm_core import PluginSpec, hookimpl

# Mean iBUG-68 shape normalized to its bounding box (x, y in 0..1), measured with dlib68 on the photos that
# ship with scikit-image (astronaut) and matplotlib (grace_hopper).
# fmt: off
MEAN_SHAPE = np.array(
    [
    (0.0, 0.223), (0.006, 0.352), (0.022, 0.481), (0.044, 0.605), (0.088, 0.731), (0.151, 0.832),
    (0.247, 0.922), (0.357, 0.986), (0.488, 1.0), (0.615, 0.983), (0.73, 0.924), (0.828, 0.84),
    (0.896, 0.727), (0.943, 0.609), (0.97, 0.48), (0.989, 0.353), (1.0, 0.221), (0.074, 0.122),
    (0.129, 0.046), (0.213, 0.02), (0.304, 0.034), (0.389, 0.068), (0.608, 0.067), (0.693, 0.028),
    (0.781, 0.022), (0.868, 0.045), (0.92, 0.115), (0.504, 0.169), (0.502, 0.264), (0.507, 0.357),
    (0.51, 0.45), (0.392, 0.498), (0.447, 0.517), (0.505, 0.531), (0.559, 0.514), (0.611, 0.497),
    (0.181, 0.183), (0.23, 0.147), (0.296, 0.144), (0.353, 0.197), (0.293, 0.203), (0.233, 0.205),
    (0.636, 0.194), (0.696, 0.143), (0.762, 0.143), (0.811, 0.182), (0.762, 0.199), (0.701, 0.202),
    (0.275, 0.639), (0.357, 0.622), (0.442, 0.613), (0.496, 0.63), (0.559, 0.619), (0.627, 0.622),
    (0.707, 0.636), (0.63, 0.714), (0.557, 0.747), (0.494, 0.753), (0.434, 0.745), (0.354, 0.706),
    (0.302, 0.642), (0.442, 0.653), (0.496, 0.661), (0.554, 0.653), (0.682, 0.644), (0.554, 0.694),
    (0.496, 0.697), (0.439, 0.691),
    ],
    dtype=np.float32,
)
# fmt: on


@dataclass
class NoneParams:
    box: float = 0.8  # side of the landmark box as a fraction of the image (the face fills most of a crop)
    nose_x: float = 0.5  # nose-tip position (landmark 30) as a fraction of the image width
    nose_y: float = 0.46  # nose-tip position as a fraction of the image height

    def __post_init__(self) -> None:
        for key in ("box", "nose_x", "nose_y"):
            if not 0 < getattr(self, key) <= 1:
                raise ValueError(f"{key} must be in (0, 1], got {getattr(self, key)}")


class NoLandmarker:
    """Never fails: returns the mean shape scaled to the image, with the nose tip at (nose_x, nose_y)."""

    def __init__(self, params: NoneParams):
        self.params = params

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        h, w = gray.shape[:2]
        p = self.params
        points = MEAN_SHAPE * np.array([p.box * w, p.box * h], dtype=np.float32)
        return points + (np.array([p.nose_x * w, p.nose_y * h], dtype=np.float32) - points[30])


@hookimpl
def mellm_landmarker():
    yield PluginSpec("none", NoLandmarker, NoneParams, "no detection: a mean face at a fixed spot (aligned crops)")
