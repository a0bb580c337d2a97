"""The MMC-map against an independent restatement of the reference pipeline, and the colour table."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mellm_core import create
from mellm_core.cli import main
from mellm_core.motion.mmc import DIRECTIONS, hue_of_direction, mmc_colorize, quantize_angle, wheel_colorize

# Hue ranges (degrees on the 0..360 wheel) that each colour name of the prompt's colour table covers.
COLOUR_HUES = {
    "red": [(345, 360), (0, 15)],
    "orange-yellow": [(20, 62)],
    "yellow-green": [(62, 110)],
    "green": [(110, 160)],
    "cyan": [(160, 200)],
    "blue": [(200, 250)],
    "purple": [(250, 290)],
    "magenta": [(290, 345)],
}


def reference_map(onset_path: str, apex_path: str) -> np.ndarray:
    """The authors' preprocessing as the issue states it, written straight in OpenCV (BGR result)."""
    import importlib.util
    from pathlib import Path

    import dlib

    onset = cv2.cvtColor(cv2.imread(onset_path), cv2.COLOR_BGR2GRAY)
    apex = cv2.cvtColor(cv2.imread(apex_path), cv2.COLOR_BGR2GRAY)
    flow = cv2.optflow.DualTVL1OpticalFlow_create().calc(onset, apex, None)
    model = Path(list(importlib.util.find_spec("face_recognition_models").submodule_search_locations)[0])
    predictor = dlib.shape_predictor(str(model / "models" / "shape_predictor_68_face_landmarks.dat"))
    face = dlib.get_frontal_face_detector()(onset, 1)[0]
    nose = predictor(onset, face).part(30)
    nx, ny = int(nose.x), int(nose.y)
    h, w = onset.shape
    window = flow[max(ny - 5, 0) : min(ny + 6, h), max(nx - 5, 0) : min(nx + 6, w)]
    flow = flow - window.reshape(-1, 2).mean(axis=0)
    mag, ang = cv2.cartToPolar(flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32),
                               angleInDegrees=True)
    ang = np.round(ang / 30) * 30 % 360
    hsv = np.zeros((h, w, 3), np.uint8)
    hsv[..., 0] = ang / 2
    hsv[..., 1] = 255
    hsv[..., 2] = cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX)
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    bgr[mag <= np.percentile(mag, 0)] = 0
    return cv2.add(bgr, cv2.cvtColor(onset, cv2.COLOR_GRAY2BGR))


@pytest.mark.parametrize("photo", ["astronaut", "hopper"])
def test_default_map_reproduces_the_reference_pipeline(tmp_path, face_photos, photo):
    from helpers import local_motion

    from mellm_core.motion.warp import similarity_flow, warp_forward

    onset = face_photos[photo]
    shape = onset.shape[:2]
    flow = similarity_flow(shape, -0.7, 0.5, -0.3) + local_motion(shape, (shape[1] * 0.45, shape[0] * 0.4),
                                                                   (0.8, 1.6))
    onset_path, apex_path = str(tmp_path / "onset.jpg"), str(tmp_path / "apex.png")
    cv2.imwrite(onset_path, onset)
    cv2.imwrite(apex_path, warp_forward(onset, flow))
    out = tmp_path / "map.png"
    assert main(["map", onset_path, apex_path, "-o", str(out)]) == 0
    ours = cv2.imread(str(out)).astype(int)
    ref = reference_map(onset_path, apex_path).astype(int)
    close = (np.abs(ours - ref) <= 3).all(axis=-1)
    assert close.mean() >= 0.97
    assert not np.array_equal(ref, cv2.cvtColor(cv2.cvtColor(onset, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))


@pytest.mark.parametrize(("direction", "angle", "colour"), DIRECTIONS)
@pytest.mark.parametrize("step", [30, 45, 0])
def test_colour_table(direction, angle, colour, step):
    """Uniform motion in each direction, over a black face, shows the colour its table entry names."""
    rad = np.deg2rad(angle)
    flow = np.zeros((8, 8, 2), np.float32)
    flow[...] = (np.cos(rad), np.sin(rad))
    flow[0, 0] = 0  # one still pixel so that the min-max brightness has a range
    rgb = mmc_colorize(flow, np.zeros((8, 8), np.uint8), step=step)
    hue = int(cv2.cvtColor(rgb[4:5, 4:5], cv2.COLOR_RGB2HSV)[0, 0, 0]) * 2
    assert any(lo <= hue <= hi for lo, hi in COLOUR_HUES[colour]), (direction, hue)
    table_hue = hue_of_direction(angle, step) * 2
    assert any(lo <= table_hue <= hi for lo, hi in COLOUR_HUES[colour]), (direction, table_hue)
    assert rgb[0, 0].tolist() == [0, 0, 0]  # the minimum-magnitude pixel is masked


def test_down_is_yellow_green_not_purple():
    """Image coordinates: +y is down. A sign slip would swap up and down colours."""
    flow = np.zeros((4, 4, 2), np.float32)
    flow[..., 1] = 1.0
    flow[0, 0] = 0
    r, g, b = mmc_colorize(flow, np.zeros((4, 4), np.uint8))[2, 2].tolist()
    assert g == 255 and r > b


def test_quantization():
    angles = np.array([0.0, 14.9, 15.1, 344.0, 359.0, 100.0], np.float32)
    assert quantize_angle(angles, 30).tolist() == [0, 0, 30, 330, 0, 90]
    assert quantize_angle(angles, 45).tolist() == [0, 0, 0, 0, 0, 90]
    assert quantize_angle(angles, 0).tolist() == angles.tolist()


def test_zero_motion_gives_the_gray_onset():
    gray = (np.arange(64 * 48) % 251).astype(np.uint8).reshape(48, 64)
    rgb = mmc_colorize(np.zeros((48, 64, 2), np.float32), gray)
    assert rgb.dtype == np.uint8
    assert np.array_equal(rgb, np.repeat(gray[..., None], 3, axis=-1))


def test_brightness_is_min_max_magnitude_and_mask_percentile():
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0] = np.linspace(0, 2, 100, dtype=np.float32).reshape(10, 10)
    black = np.zeros((10, 10), np.uint8)
    rgb = mmc_colorize(flow, black, step=30)
    assert rgb[9, 9].tolist() == [255, 0, 0]  # the largest rightward motion is pure bright red
    assert rgb[0, 0].tolist() == [0, 0, 0]
    half = mmc_colorize(flow, black, step=30, mask_percentile=50)
    assert (half.reshape(-1, 3)[:50] == 0).all() and (half.reshape(-1, 3)[50:, 0] > 0).all()


def test_saturating_add_over_bright_faces():
    flow = np.zeros((4, 4, 2), np.float32)
    flow[..., 0] = 1.0
    flow[0, 0] = 0
    rgb = mmc_colorize(flow, np.full((4, 4), 200, np.uint8))
    assert rgb[2, 2].tolist() == [255, 200, 200]  # red 255 + 200 saturates; green/blue stay at the gray level


def test_wheel_colorizer_follows_middlebury():
    flow = np.zeros((3, 3, 2), np.float32)
    flow[1, 1] = (1.0, 0.0)
    colour = wheel_colorize(flow)
    assert colour[0, 0].tolist() == [255, 255, 255]  # no motion: white
    assert colour[1, 1].tolist() == [255, 0, 0]  # full rightward motion: red (start of the wheel)
    flow[1, 1] = (0.0, -1.0)  # up: the wheel's blue-magenta side
    r, g, b = wheel_colorize(flow)[1, 1].tolist()
    assert b > 200 and g < 60
    plugin = create("colorizer", "wheel", face_weight=0.0)
    assert np.array_equal(plugin(flow, np.zeros((3, 3), np.uint8), None), wheel_colorize(flow))


def test_map_json_and_save_flow(tmp_path, motion_pair, capsys):
    onset, apex = tmp_path / "on.png", tmp_path / "ap.png"
    cv2.imwrite(str(onset), motion_pair["onset"])
    cv2.imwrite(str(apex), motion_pair["apex"])
    code = main(["map", str(onset), str(apex), "-o", str(tmp_path / "m.png"), "--json",
                 "--save-flow", str(tmp_path / "f.npy"), "--flow", "dis", "--head-motion", "similarity"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"output", "head_motion", "nose", "timings"}
    raw = np.load(tmp_path / "f.npy")
    assert raw.dtype == np.float32 and raw.shape == (*motion_pair["onset"].shape[:2], 2)
    # the saved flow is the estimator's, before compensation: it still holds the head motion (~0.6, -0.4)
    nx, ny = (int(v) for v in result["nose"])
    assert abs(raw[ny, nx, 0] - motion_pair["flow"][ny, nx, 0]) < 0.3
    assert abs(result["head_motion"][0] - motion_pair["flow"][ny, nx, 0]) < 0.3


def test_face_brightness_region_ignores_motion_outside_the_face():
    flow = np.zeros((40, 40, 2), np.float32)
    flow[..., 0] = 0.1
    flow[10:20, 10:20, 0] = 1.0  # the face's own motion
    flow[0, :, 0] = 9.0  # a border artefact, larger than anything on the face
    face = np.zeros((40, 40), bool)
    face[5:25, 5:25] = True
    black = np.zeros((40, 40), np.uint8)
    reference = mmc_colorize(flow, black)
    assert reference[15, 15, 0] == int(255 * 0.9 / 8.9)  # the artefact dims the face to ~25 levels
    scaled = mmc_colorize(flow, black, region=face)
    assert scaled[15, 15].tolist() == [255, 0, 0] and scaled[6, 6].tolist() == [0, 0, 0]
    assert (scaled[0] == 0).all() and (scaled[30:] == 0).all()  # no colour off the face
    points = np.array([[5, 5], [24, 5], [24, 24], [5, 24]] * 17, np.float32)
    plugin = create("colorizer", "mmc", brightness_region="face", face_margin=0.0)
    assert plugin(flow, black, points)[15, 15].tolist() == [255, 0, 0]
    assert np.array_equal(create("colorizer", "mmc")(flow, black, points), reference)
