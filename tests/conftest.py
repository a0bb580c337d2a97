"""Shared fixtures: real face photos, synthetic pairs with exact motion, and one local Ray instance per session."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mellm_core.warp import similarity_flow, warp_forward


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def face_photos() -> dict[str, np.ndarray]:
    """Real face photographs (BGR uint8) shipped by scikit-image and matplotlib."""
    import skimage.data
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as img:
        hopper = np.array(img.convert("RGB"))
    return {"astronaut": _bgr(skimage.data.astronaut()), "hopper": _bgr(hopper)}


def local_motion(shape: tuple[int, int], centre: tuple[float, float], vector: tuple[float, float],
                 sigma: float = 12.0) -> np.ndarray:
    """A smooth Gaussian bump of motion (peak ``vector`` px at ``centre``)."""
    h, w = shape
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    g = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    return np.stack([g * vector[0], g * vector[1]], axis=-1).astype(np.float32)


@pytest.fixture(scope="session")
def motion_pair(face_photos) -> dict:
    """Astronaut onset, an apex moved by a known head motion plus a mouth-corner raise, and the exact flow."""
    onset = face_photos["astronaut"]
    shape = onset.shape[:2]
    flow = similarity_flow(shape, 0.6, -0.4, 0.2) + local_motion(shape, (250, 190), (1.2, -1.8))
    flow += local_motion(shape, (200, 95), (0.0, -1.5), sigma=9)
    return {"onset": onset, "apex": warp_forward(onset, flow), "flow": flow}


@pytest.fixture(scope="session")
def ray_local():
    """One local two-CPU Ray instance shared by every Ray test of the session."""
    import ray

    from mellm_core.stages.cluster import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture()
def fresh_registry(monkeypatch):
    """A registry rebuilt from entry points and the environment for this test only."""
    from mellm_core import plugins

    plugins.reset_registry()
    yield plugins
    plugins.reset_registry()
