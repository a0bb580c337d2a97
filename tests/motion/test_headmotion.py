"""Head-motion compensation: the reference nose window, the robust similarity fit, and none."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import local_motion

from mellm_core import create
from mellm_core.errors import InputError
from mellm_core.motion.headmotion import compensate, face_polygon, head_motion_field
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


def _face_error(field: np.ndarray, head: np.ndarray, landmarks: np.ndarray) -> float:
    """Mean endpoint error of an estimated head field against the true one over the face polygon."""
    face = np.zeros(head.shape[:2], np.uint8)
    cv2.fillPoly(face, [np.round(face_polygon(landmarks)).astype(np.int32)], 1)
    return float(np.linalg.norm(np.broadcast_to(field, head.shape) - head, axis=-1)[face.astype(bool)].mean())


@pytest.mark.parametrize(("aus", "fooled"), [({6: "", 12: ""}, "similarity"), ({9: "", 10: "", 17: ""}, "nose"),
                                             ({1: "", 2: "", 5: "", 26: ""}, "similarity")])
def test_robust_recovers_head_motion_that_an_expression_fools_the_others_with(landmarks, aus, fooled):
    """SynthME's own AU motion (a smile lifts the cheeks and the face contour; disgust the nose; surprise the
    brows and the jaw) on top of a head similarity: the consensus fit finds the head, the named mode does not."""
    from mellm_plugins.dataset.synthme.motion import expression_field

    shape = (512, 512)
    head = similarity_flow(shape, 0.9, -0.6, 0.4, 1.004, centre=tuple(landmarks[30]))
    expression = expression_field(shape, landmarks, aus, dict.fromkeys(aus, 1.0), peak=2.5, kernel=0.15)
    flow = head + expression
    errors = {mode: _face_error(head_motion_field(flow, landmarks, mode), head, landmarks)
              for mode in ("robust", fooled)}
    assert errors["robust"] < 0.05 and errors[fooled] > 0.2, errors


def test_robust_is_deterministic_and_removes_a_pure_head_motion(landmarks):
    shape = (512, 512)
    head = similarity_flow(shape, -1.2, 0.7, -0.8, 0.99, centre=(200.0, 260.0))
    first, again = (head_motion_field(head, landmarks, "robust") for _ in range(2))
    assert np.array_equal(first, again)  # seeded hypotheses: the same flow always gives the same map
    compensated, at_nose = compensate(head, landmarks, "robust")
    assert float(np.abs(compensated).max()) < 1e-3
    np.testing.assert_allclose(at_nose, head[int(landmarks[30][1]), int(landmarks[30][0])], atol=1e-3)


def test_robust_refuses_a_face_too_small_to_fit_with_the_reason():
    points = np.full((68, 2), 10.0) + np.random.default_rng(0).normal(scale=0.5, size=(68, 2))
    with pytest.raises(InputError, match="too few to fit the head motion"):
        head_motion_field(np.zeros((40, 40, 2), np.float32), points, "robust")


def test_robust_through_tvl1_on_a_synthme_smile(landmarks, face_photos):
    """The real chain on a rendered pair: TV-L1 flow of a face warped by a head motion and a smile."""
    from mellm_core.motion.warp import warp_forward
    from mellm_plugins.dataset.synthme.motion import expression_field

    gray = cv2.cvtColor(face_photos["astronaut"], cv2.COLOR_BGR2GRAY)
    head = similarity_flow(gray.shape, 0.8, -0.5, 0.3, centre=tuple(landmarks[30]))
    smile = expression_field(gray.shape, landmarks, {6: "", 12: ""}, {6: 1.0, 12: 1.0}, peak=2.0, kernel=0.15)
    apex = np.clip(warp_forward(gray.astype(np.float32), head + smile), 0, 255).astype(np.uint8)
    flow = create("flow", "tvl1")(gray, apex)
    errors = {mode: _face_error(head_motion_field(flow, landmarks, mode), head, landmarks)
              for mode in ("robust", "similarity", "nose")}
    assert errors["robust"] < 0.1 and errors["robust"] < errors["similarity"] / 2, errors


def test_robust_fits_only_where_the_flow_was_computed(landmarks):
    """The flow is zero outside the region it was computed in (``flow_region: face``): those zeros are not still
    skin. Here the region is the face below the nose, so the zeros are most of the face polygon."""
    shape = (512, 512)
    head = similarity_flow(shape, 1.0, -0.8, 0.5, centre=tuple(landmarks[30]))
    region = (slice(int(landmarks[33][1]), shape[0]), slice(0, shape[1]))
    flow = np.zeros_like(head)
    flow[region] = head[region]
    assert _face_error(head_motion_field(flow, landmarks, "robust", region=region), head, landmarks) < 0.01
    assert _face_error(head_motion_field(flow, landmarks, "robust"), head, landmarks) > 0.5  # the zeros won
