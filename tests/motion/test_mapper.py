"""Mapper options: crop, size cap, plugin choice; the pair checks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mellm_core.config import MapsConfig
from mellm_core.errors import InputError
from mellm_core.motion.mapper import Mapper, face_box
from mellm_core.motion.mmc import mmc_colorize


@pytest.fixture(scope="module")
def gray_pair(motion_pair):
    to_gray = lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)  # noqa: E731
    return to_gray(motion_pair["onset"]), to_gray(motion_pair["apex"])


def test_default_mapper_composes_flow_head_motion_and_colour(gray_pair):
    onset, apex = gray_pair
    result = Mapper(MapsConfig(flow="dis"))(onset, apex)
    assert result.rgb.shape == (*onset.shape, 3) and result.rgb.dtype == np.uint8
    compensated = result.raw_flow - np.array(result.head_motion, np.float32)
    assert np.array_equal(result.rgb, mmc_colorize(compensated, onset))
    assert set(result.timings) == {"landmarks_s", "flow_s", "colorize_s", "total_s"}


def test_crop_gives_a_square_face_with_landmarks_inside(gray_pair):
    onset, apex = gray_pair
    result = Mapper(MapsConfig(flow="dis", crop=True, crop_size=160, crop_margin=0.1))(onset, apex)
    assert result.rgb.shape == (160, 160, 3)
    assert (result.landmarks >= 0).all() and (result.landmarks <= 160).all()
    span = result.landmarks.max(axis=0) - result.landmarks.min(axis=0)
    assert 120 <= span.max() <= 140  # the landmark box fills 1 / (1 + 2 * margin) of the crop


def test_size_cap_scales_image_and_landmarks(gray_pair):
    onset, apex = gray_pair
    full = Mapper(MapsConfig(flow="dis"))(onset, apex)
    capped = Mapper(MapsConfig(flow="dis", max_side=256))(onset, apex)
    assert capped.rgb.shape == (256, 256, 3)
    np.testing.assert_allclose(capped.landmarks, full.landmarks / 2, atol=1e-3)


def test_pair_of_different_sizes_is_refused(gray_pair):
    onset, _ = gray_pair
    with pytest.raises(InputError, match="differ in size"):
        Mapper(MapsConfig(flow="dis"))(onset, onset[:-1])


def test_zero_motion_map_is_the_gray_onset(gray_pair):
    onset, _ = gray_pair
    result = Mapper(MapsConfig(flow="dis"))(onset, onset)
    assert np.isfinite(result.raw_flow).all()
    assert np.array_equal(result.rgb, np.repeat(onset[..., None], 3, axis=-1))


def test_face_region_flow_matches_the_frame_flow_on_the_face_and_draws_no_motion_elsewhere(gray_pair):
    """flow_region face computes the flow in the landmark box plus margin only: the map there is the frame map's
    (up to the flow's border effects), outside it the gray onset."""
    onset, apex = gray_pair
    frame = Mapper(MapsConfig(flow="dis"))(onset, apex)
    face = Mapper(MapsConfig(flow="dis", flow_region="face", crop_margin=0.1))(onset, apex)
    rows, cols = face_box(face.landmarks, 0.1, onset.shape)
    assert (rows.stop - rows.start) * (cols.stop - cols.start) < 0.8 * onset.size  # the flow saw less than the frame
    outside = np.ones(onset.shape, bool)
    outside[rows, cols] = False
    assert outside.any() and not face.raw_flow[outside].any()
    inner = (slice(rows.start + 16, rows.stop - 16), slice(cols.start + 16, cols.stop - 16))
    moving = np.linalg.norm(frame.raw_flow[inner], axis=-1) > 0.5
    assert moving.sum() > 100
    error = np.linalg.norm(face.raw_flow[inner] - frame.raw_flow[inner], axis=-1)[moving]
    assert np.median(error) < 0.2


def test_face_box_adds_the_margin_and_stays_inside_the_image():
    points = np.array([[10, 20], [50, 100]], np.float32)
    rows, cols = face_box(points, 0.25, (110, 200))
    assert (cols.start, cols.stop) == (0, 61) and (rows.start, rows.stop) == (0, 110)
