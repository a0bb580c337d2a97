"""Frame decoding, flow estimators and landmarkers on real photographs with exact synthetic motion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mellm_core import create
from mellm_core.errors import InputError, NoFaceError, PluginError
from mellm_core.files.frames import check_pair, decode_gray, read_gray
from mellm_core.motion.warp import similarity_flow, warp_forward


def test_read_gray_decodes_in_colour_then_converts(tmp_path, face_photos):
    path = tmp_path / "face.jpg"
    cv2.imwrite(str(path), face_photos["hopper"])
    ours = read_gray(path)
    assert np.array_equal(ours, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY))
    assert not np.array_equal(ours, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))  # the rounding that matters


def test_bad_frames_are_named(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_gray(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="bad.png is not a readable image"):
        read_gray(tmp_path / "bad.png")
    with pytest.raises(InputError, match="is empty"):
        decode_gray(b"", "upload")
    with pytest.raises(InputError, match="differ in size: onset 4x3, apex 5x3"):
        check_pair(np.zeros((3, 4), np.uint8), np.zeros((3, 5), np.uint8))


@pytest.mark.parametrize(("name", "params", "tolerance"), [
    ("tvl1", {}, 0.1), ("dis", {"preset": "medium"}, 0.25), ("dis", {"preset": "ultrafast"}, 0.5),
    ("farneback", {}, 0.25),
])
def test_flow_plugins_recover_known_subpixel_motion(face_photos, name, params, tolerance):
    gray = cv2.cvtColor(face_photos["astronaut"], cv2.COLOR_BGR2GRAY)
    truth = similarity_flow(gray.shape, 0.7, -0.45, 0.25)
    flow = create("flow", name, **params)(gray, warp_forward(gray, truth))
    assert flow.dtype == np.float32 and flow.shape == (*gray.shape, 2)
    epe = np.linalg.norm(flow - truth, axis=-1)[40:-40, 40:-40]
    assert float(np.median(epe)) < tolerance


def test_flow_plugin_params_change_the_result(face_photos):
    gray = cv2.cvtColor(face_photos["hopper"], cv2.COLOR_BGR2GRAY)[::2, ::2].copy()
    apex = warp_forward(gray, similarity_flow(gray.shape, 1.0, 0.0))
    coarse = create("flow", "tvl1", nscales=1, warps=1, outer_iterations=1)(gray, apex)
    default = create("flow", "tvl1")(gray, apex)
    assert not np.allclose(coarse, default)


def test_dlib68_finds_the_face(face_photos):
    gray = cv2.cvtColor(face_photos["astronaut"], cv2.COLOR_BGR2GRAY)
    points = create("landmarker", "dlib68")(gray)
    assert points.shape == (68, 2)
    nose, left_eye, right_eye, chin = points[30], points[36], points[45], points[8]
    assert left_eye[0] < nose[0] < right_eye[0] and left_eye[1] < nose[1] < chin[1]
    assert 150 < nose[0] < 300 and 60 < nose[1] < 200  # the astronaut's face, not the flag or the helmet


def test_dlib68_reports_no_face():
    with pytest.raises(NoFaceError, match="no face found in the 120x80 onset frame"):
        create("landmarker", "dlib68")(np.full((80, 120), 128, np.uint8))


def test_dlib68_missing_model_is_named(tmp_path):
    with pytest.raises(InputError, match="model .*missing.dat does not exist"):
        create("landmarker", "dlib68", model_path=str(tmp_path / "missing.dat"))


def test_none_landmarker_places_the_nose():
    points = create("landmarker", "none", nose_x=0.4, nose_y=0.6)(np.zeros((100, 200), np.uint8))
    np.testing.assert_allclose(points[30], [80, 60], atol=1e-4)
    assert points[8][1] > points[30][1] > points[19][1]  # chin below nose below brow


def test_dlib68_finds_a_large_face_on_a_reduced_copy_and_fits_it_at_full_size(face_photos):
    """detect_side bounds the detector's cost on large frames; the points match a full-size detection."""
    gray = cv2.resize(cv2.cvtColor(face_photos["astronaut"], cv2.COLOR_BGR2GRAY), None, fx=4, fy=4)
    full = create("landmarker", "dlib68", detect_side=0, upsample=0)(gray)
    reduced = create("landmarker", "dlib68", detect_side=512, upsample=1)(gray)
    assert np.median(np.linalg.norm(full - reduced, axis=1)) < 0.02 * (full[:, 0].max() - full[:, 0].min())


def test_dlib68_refuses_a_negative_detect_side():
    with pytest.raises(PluginError, match="detect_side must not be negative"):
        create("landmarker", "dlib68", detect_side=-1)
