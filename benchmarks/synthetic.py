"""Seeded synthetic onset/apex pairs with exact ground-truth motion, built from real face photos.

Shared by the benchmarks in this folder (run them as ``python benchmarks/NAME.py``). A pair's forward field
is a similarity head motion (translation ~U(-1.5, 1.5) px, rotation ~U(-0.5, 0.5) deg about the face centre)
plus local micro-expression motions: smooth Gaussian bumps of 0.3-3 px peak centred on dlib68 landmarks of the
onset, some of them on the nose and upper lip (AU9/AU10-like). The apex is ``warp_forward(onset, field)``, so
the field is the exact ground truth of the onset -> apex flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
from matplotlib import cbook
from matplotlib import image as mpimg
from skimage import data as skdata

from mellm_core.motion.mapper import face_box
from mellm_core.motion.warp import similarity_flow, warp_forward
from mellm_core.plugins import create

# Landmark groups (dlib 68-point indices) that carry the local bumps.
EXPRESSION_POINTS = (
    tuple(range(17, 27))  # brows (AU1/AU2/AU4)
    + tuple(range(36, 48))  # eyelids (AU6/AU7)
    + (48, 54)  # lip corners (AU12/AU15)
    + (8, 57)  # chin and lower lip (AU17)
)
NOSE_POINTS = (31, 32, 33, 34, 35, 50, 51, 52)  # nostrils and upper lip (AU9/AU10)

HEAD_SHIFT_PX = 1.5  # head translation ~U(-x, x) per axis
HEAD_ANGLE_DEG = 0.5  # head rotation ~U(-x, x) about the face centre
BUMP_PEAK_PX = (0.3, 3.0)  # peak displacement of one local bump
BUMP_SIGMA_FACE = (0.05, 0.09)  # bump sigma as a fraction of the face width
BUMP_MAX_SLOPE = 0.25  # sigma >= peak / slope keeps the field's gradient small (warp_forward converges)


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> BGR -> gray, as the reference pipeline converts frames."""
    return cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), cv2.COLOR_BGR2GRAY)


@cache
def face_photos() -> dict[str, np.ndarray]:
    """The two real face photos shipped with scikit-image and matplotlib, as gray uint8 at native size."""
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = np.asarray(mpimg.imread(handle, format="jpg"))
    return {"astronaut": rgb_to_gray(skdata.astronaut()), "grace_hopper": rgb_to_gray(hopper)}


@cache
def landmarker():
    """One shared dlib68 landmarker."""
    return create("landmarker", "dlib68")


@dataclass
class SyntheticPair:
    """One onset/apex pair and its exact motion fields (HxWx2, onset -> apex)."""

    name: str
    onset: np.ndarray
    apex: np.ndarray
    landmarks: np.ndarray  # dlib68 on the onset
    head: np.ndarray  # true head-motion field
    local: np.ndarray  # true micro-expression field
    nose_au: bool  # whether a bump sits on the nose / upper lip

    @property
    def flow(self) -> np.ndarray:
        return self.head + self.local

    def box_mask(self) -> np.ndarray:
        """Boolean HxW mask of the face box."""
        mask = np.zeros(self.onset.shape, dtype=bool)
        mask[face_box(self.landmarks, 0.1, self.onset.shape)] = True
        return mask


def gaussian_bump(shape: tuple[int, int], centre: np.ndarray, vector: np.ndarray, sigma: float) -> np.ndarray:
    """HxWx2 field: ``vector`` at ``centre`` fading as a Gaussian of ``sigma`` pixels."""
    h, w = shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    weight = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    return (weight[..., None] * vector[None, None, :]).astype(np.float32)


def _bump(
    shape: tuple[int, int], landmarks: np.ndarray, index: int, up: bool, rng: np.random.Generator
) -> np.ndarray:
    face_width = float(np.ptp(landmarks[:, 0]))
    peak = rng.uniform(*BUMP_PEAK_PX)
    sigma = max(rng.uniform(*BUMP_SIGMA_FACE) * face_width, peak / BUMP_MAX_SLOPE)
    angle = np.deg2rad(270 + rng.uniform(-30, 30)) if up else rng.uniform(0, 2 * np.pi)
    vector = peak * np.array([np.cos(angle), np.sin(angle)])
    return gaussian_bump(shape, landmarks[index], vector, sigma)


def local_motion(
    shape: tuple[int, int], landmarks: np.ndarray, nose_au: bool, rng: np.random.Generator
) -> np.ndarray:
    """3-5 bumps on expression landmarks, plus 1-2 upward bumps on the nose / upper lip if ``nose_au``."""
    field = np.zeros((*shape, 2), dtype=np.float32)
    for index in rng.choice(EXPRESSION_POINTS, size=int(rng.integers(3, 6)), replace=False):
        field += _bump(shape, landmarks, int(index), up=False, rng=rng)
    if nose_au:
        for index in rng.choice(NOSE_POINTS, size=int(rng.integers(1, 3)), replace=False):
            field += _bump(shape, landmarks, int(index), up=True, rng=rng)
    return field


def head_motion(shape: tuple[int, int], landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A similarity head-motion field rotating about the face centre."""
    centre = (landmarks.min(axis=0) + landmarks.max(axis=0)) / 2
    dx, dy = rng.uniform(-HEAD_SHIFT_PX, HEAD_SHIFT_PX, size=2)
    angle = rng.uniform(-HEAD_ANGLE_DEG, HEAD_ANGLE_DEG)
    return similarity_flow(
        shape, float(dx), float(dy), float(angle), centre=(float(centre[0]), float(centre[1]))
    )


def make_pair(name: str, onset: np.ndarray, nose_au: bool, seed: Sequence[int]) -> SyntheticPair:
    """A synthetic pair from a gray onset frame; the same arguments give the same pair."""
    rng = np.random.default_rng(list(seed))
    landmarks = np.asarray(landmarker()(onset), dtype=np.float32)
    head = head_motion(onset.shape, landmarks, rng)
    local = local_motion(onset.shape, landmarks, nose_au, rng)
    apex = warp_forward(onset, head + local)
    return SyntheticPair(name, onset, apex, landmarks, head, local, nose_au)


def has_nose_au(index: int) -> bool:
    """Two pairs in three carry a nose / upper-lip bump."""
    return index % 3 != 2


def photo_pairs(count: int, seed: int = 0, scale: float = 1.0) -> list[SyntheticPair]:
    """``count`` pairs alternating between the two photos (optionally resized by ``scale``)."""
    photos = list(face_photos().items())
    pairs = []
    for i in range(count):
        name, gray = photos[i % len(photos)]
        if scale != 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        pairs.append(make_pair(f"{name}-{i:03d}", gray, has_nose_au(i), (seed, i, 1)))
    return pairs


@cache
def _photo_landmarks(name: str) -> np.ndarray:
    return np.asarray(landmarker()(face_photos()[name]), dtype=np.float32)


def face_crop(name: str, size: int, rng: np.random.Generator, context: float = 2.2) -> np.ndarray:
    """A ``size`` x ``size`` crop around the photo's face, with seeded jitter of scale and position."""
    gray = face_photos()[name]
    landmarks = _photo_landmarks(name)
    face = float(np.ptp(landmarks, axis=0).max())
    centre = (landmarks.min(axis=0) + landmarks.max(axis=0)) / 2 + rng.uniform(-0.05, 0.05, 2) * face
    side = face * context * rng.uniform(0.9, 1.1)
    scale = size / side
    matrix = np.array([[scale, 0, size / 2 - scale * centre[0]], [0, scale, size / 2 - scale * centre[1]]])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.warpAffine(gray, matrix, (size, size), flags=interp, borderMode=cv2.BORDER_REFLECT)


def crop_pairs(count: int, size: int, seed: int = 0) -> list[SyntheticPair]:
    """``count`` pairs on jittered ``size`` x ``size`` face crops of the two photos."""
    names = list(face_photos())
    pairs = []
    for i in range(count):
        name = names[i % len(names)]
        onset = face_crop(name, size, np.random.default_rng([seed, i, 0]))
        pairs.append(make_pair(f"{name}-{i:03d}", onset, has_nose_au(i), (seed, i, 1)))
    return pairs
