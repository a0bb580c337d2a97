"""Head-motion compensation: the reference nose window, the robust similarity fit, and none."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import local_motion

from mellm_core import create
from mellm_core.errors import InputError
from mellm_core.motion.headmotion import compensate, head_motion_field
from mellm_core.motion.warp import similarity_flow


@pytest.fixture(scope="module")
def landmarks(face_photos):
    return create("landmarker", "dlib68")(cv2.cvtColor(face_photos["astronaut"], cv2.COLOR_BGR2GRAY))


def test_nose_mode_is_the_mean_of_the_inclusive_window(landmarks):
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(512, 512, 2)).astype(np.float32)
    nx, ny = int(landmarks[30][0]), int(landmarks[30][1])
    expected = flow[ny - 5 : ny + 6, nx - 5 : nx + 6].reshape(-1, 2).mean(axis=0)
    compensated, head = compensate(flow, landmarks, "nose", 5)
    np.testing.assert_allclose(head, expected, rtol=1e-5)
    np.testing.assert_allclose(compensated, flow - expected.astype(np.float32), atol=1e-6)


def test_nose_window_is_clipped_at_the_border():
    flow = np.zeros((20, 20, 2), np.float32)
    flow[:3, :3] = (1.0, 2.0)
    points = np.zeros((68, 2), np.float32)  # nose tip at the corner: window [0, 5] x [0, 5]
    _, head = compensate(flow, points, "nose", 5)
    np.testing.assert_allclose(head, [9 / 36, 18 / 36], rtol=1e-6)
    points[30] = (50, 50)
    with pytest.raises(InputError, match="outside the 20x20 image"):
        compensate(flow, points, "nose", 5)


def test_similarity_recovers_head_motion_despite_nose_wrinkler(landmarks):
    """AU9/AU10-like motion around the nose biases the nose window but not the rigid-point fit."""
    shape = (512, 512)
    head = similarity_flow(shape, 0.9, -0.6, 0.4, centre=tuple(landmarks[30]))
    au9 = local_motion(shape, tuple(landmarks[33]), (0.0, -2.0), sigma=10)
    flow = head + au9
    face = (slice(int(landmarks[:, 1].min()), int(landmarks[:, 1].max())),
            slice(int(landmarks[:, 0].min()), int(landmarks[:, 0].max())))
    errors = {}
    for mode in ("nose", "similarity", "none"):
        field = head_motion_field(flow, landmarks, mode)
        errors[mode] = float(np.linalg.norm((np.broadcast_to(field, flow.shape) - head)[face], axis=-1).mean())
    assert errors["similarity"] < 0.05
    assert errors["nose"] > 0.5 and errors["none"] > 0.5
    _, at_nose = compensate(flow, landmarks, "similarity")
    np.testing.assert_allclose(at_nose, [0.9, -0.6], atol=0.05)


def test_none_mode_leaves_the_flow(landmarks):
    flow = np.ones((512, 512, 2), np.float32)
    compensated, head = compensate(flow, landmarks, "none")
    assert head == [0.0, 0.0] and np.array_equal(compensated, flow)
